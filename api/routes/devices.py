"""`/api/v1/devices`: register, list, disable, enable, re-key and change devices, and
import them from CSV: what `carewatch devices ...` does, over HTTP.

A device lies in its resident's area; one without a resident lies at the top, so only
top-area users see it (as its alerts), and an admin of a district registers devices for
the residents of the district. Reading needs any role; changing needs admin.

Each change runs in one transaction: the registry row, the audit row, and then the
device's broker account (created, re-keyed, enabled or disabled through the broker's
dynamic-security plugin), confirmed by the broker before the commit. A broker that does
not confirm rolls the whole change back (503), so the registry and the broker never
disagree because of an answer we gave.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import ValidationError

from alerts.event_store import latest_readings
from api import audit
from api.cursors import decode_cursor, encode_cursor
from api.deps import Admin, Conn, CurrentUser, forbid_outside
from api.device_models import (
    DEVICE_ID,
    DeviceCreate,
    DeviceCreated,
    DevicePage,
    DevicePatch,
    DevicePublic,
    ImportResult,
)
from api.models import Error
from api.records import device_record
from api.routes import API_PREFIX
from api.users import User
from devices import registry, residents
from devices.broker_auth import Account, device_account
from devices.errors import RegistryError
from devices.registry import Device, DeviceExists, DeviceNotFound
from plumbing.dynsec import DynsecRefused
from plumbing.mqtt import MqttError

__all__ = ["AccountChanges", "router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (401, 403, 404, 409, 422, 502, 503)
}
router = APIRouter(prefix=f"{API_PREFIX}/devices", tags=["devices"], responses=_ERRORS)

DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID)]
# Each row is two broker commands, each rewriting the broker's whole accounts file: 500 rows
# took ~5 s into an empty broker, ~53 s into one holding 4,000 (docs/broker-accounts.md).
MAX_IMPORT_ROWS = 500
_CSV_COLUMNS = {"device_id", "format", "model", "resident_id", "clock_tz"}


class AccountChanges(Protocol):
    """What the API needs of the broker's accounts (carewatch.broker_accounts.
    BrokerAccounts): entered for one change, which returns once the broker confirmed it."""

    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def put(self, accounts: Sequence[tuple[Account, str]]) -> None: ...
    async def set_enabled(self, usernames: list[str], enabled: bool) -> None: ...


BrokerFactory = Callable[[], AccountChanges | None]


def _broker(request: Request) -> BrokerFactory:
    # Set by the process that serves the app (carewatch.processes.build_api).
    factory: BrokerFactory = getattr(request.app.state, "broker_accounts", lambda: None)
    return factory


Broker = Annotated[BrokerFactory, Depends(_broker)]


@router.post("", status_code=201, response_model=DeviceCreated, summary="register a device")
async def create_device(conn: Conn, user: Admin, broker: Broker, body: DeviceCreate) -> Any:
    async with conn.transaction():
        area = await _resident_area(conn, body.resident_id)
        forbid_outside(user, area, f"resident {body.resident_id}" if body.resident_id else
                       "a device without a resident")  # fmt: skip
        with _registry_answers():
            device, secret = await registry.add_device(conn, **body.model_dump())
        item = device_record(device, area)
        await _audit(conn, user, "device.create", None, item)
        await _put_accounts(broker, [(device, secret)])
    return {**await _with_readings(conn, item), "mqtt_secret": secret}


@router.get("", response_model=DevicePage, summary="the devices in your area, by id")
async def list_devices(
    conn: Conn,
    user: CurrentUser,
    resident: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    format: Annotated[str | None, Query(pattern=r"^[a-z0-9_-]{1,32}$")] = None,
    status: Literal["active", "disabled"] | None = None,
    silent_for_s: Annotated[
        int | None, Query(ge=0, le=10 * 365 * 86400, description="not heard from for this long")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    after = decode_cursor(cursor, "devices", (str,))[0] if cursor else None
    silent_since = datetime.now(UTC) - timedelta(seconds=silent_for_s) if silent_for_s else None
    rows = await registry.search_devices(
        conn, scope=user.area, resident_id=resident, format=format, status=status,
        silent_since=silent_since, after=after, limit=limit + 1,
    )  # fmt: skip
    rows, more = rows[:limit], len(rows) > limit
    readings = await latest_readings(conn, [r["device_id"] for r in rows])
    items = [{**row, **readings[row["device_id"]]} for row in rows]
    last = [items[-1]["device_id"]] if more else None
    return {"items": items, "next": encode_cursor("devices", last) if last else None}


@router.get("/{device_id}", response_model=DevicePublic, summary="one device")
async def get_device(conn: Conn, user: CurrentUser, device_id: DeviceIdPath) -> Any:
    device, area = await _device(conn, user, device_id)
    return await _with_readings(conn, device_record(device, area))


@router.patch("/{device_id}", response_model=DevicePublic, summary="assign, set model or clock")
async def update_device(conn: Conn, user: Admin, device_id: DeviceIdPath, body: DevicePatch) -> Any:
    changes = body.model_dump(exclude_unset=True)
    async with conn.transaction():
        before, area = await _device(conn, user, device_id, lock=True)
        if "resident_id" in changes:
            area = await _resident_area(conn, changes["resident_id"])
            forbid_outside(user, area, "the new resident" if changes["resident_id"] else
                           "a device without a resident")  # fmt: skip
        with _registry_answers():
            after = await registry.update_device(conn, device_id, changes)
        if after != before:
            await _audit(
                conn, user, "device.update", device_record(before, area), device_record(after, area)
            )
    return await _with_readings(conn, device_record(after, area))


@router.post("/{device_id}/disable", response_model=DevicePublic, summary="refuse it")
async def disable(conn: Conn, user: Admin, broker: Broker, device_id: DeviceIdPath) -> Any:
    return await _set_status(conn, user, broker, device_id, "disabled")


@router.post("/{device_id}/enable", response_model=DevicePublic, summary="admit it again")
async def enable(conn: Conn, user: Admin, broker: Broker, device_id: DeviceIdPath) -> Any:
    return await _set_status(conn, user, broker, device_id, "active")


@router.post("/{device_id}/rekey", response_model=DeviceCreated, summary="a new broker secret")
async def rekey(conn: Conn, user: Admin, broker: Broker, device_id: DeviceIdPath) -> Any:
    async with conn.transaction():
        device, area = await _device(conn, user, device_id, lock=True)
        if device.mqtt_username is None:
            raise HTTPException(409, f"{device_id!r} ({device.format}) has no broker account")
        secret = await registry.issue_secret(conn, device_id)
        item = device_record(device, area)
        await _audit(conn, user, "device.rekey", item, item)  # the secret is never recorded
        await _put_accounts(broker, [(device, secret)])
    return {**await _with_readings(conn, item), "mqtt_secret": secret}


@router.post(
    "/import",
    response_model=ImportResult,
    summary="register devices from CSV, row by row",
    responses={code: {"model": Error} for code in (413, 415)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "header device_id,format[,model][,resident_id][,clock_tz]",
        }
    },
)
async def import_devices(conn: Conn, user: Admin, broker: Broker, request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "text/csv":
        raise HTTPException(415, "send the CSV as Content-Type: text/csv")
    try:
        text = (await request.body()).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(422, "the CSV is not UTF-8") from None
    rows = _csv_rows(text)
    created: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    added: list[tuple[Device, str | None]] = []
    async with conn.transaction():
        for line, fields in rows:
            try:
                device, secret, item = await _import_row(conn, user, fields)
            except (ValueError, RegistryError, HTTPException) as exc:
                detail = exc.detail if isinstance(exc, HTTPException) else _problem(exc)
                errors.append({"line": line, "detail": detail})
                continue
            added.append((device, secret))
            created.append({**item, "mqtt_secret": secret})
        await _put_accounts(broker, added)
    readings = await latest_readings(conn, [c["device_id"] for c in created])
    created = [{**c, **readings[c["device_id"]]} for c in created]
    return {"created": created, "errors": errors}


async def _import_row(
    conn: asyncpg.Connection, user: User, fields: dict[str, Any]
) -> tuple[Device, str | None, dict[str, Any]]:
    """One CSV row, checked as a POST body is; in a savepoint, so a bad row undoes only
    itself."""
    if "_extra" in fields:
        raise RegistryError("more values than the header has columns")
    body = DeviceCreate.model_validate(fields)
    area = await _resident_area(conn, body.resident_id)
    forbid_outside(user, area, f"resident {body.resident_id}" if body.resident_id else
                   "a device without a resident")  # fmt: skip
    async with conn.transaction():
        device, secret = await registry.add_device(conn, **body.model_dump())
        item = device_record(device, area)
        await _audit(conn, user, "device.import", None, item)
    return device, secret, item


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line, fields) of each data row: the non-empty values by column."""
    reader = csv.DictReader(io.StringIO(text), restkey="_extra")
    try:
        header = set(reader.fieldnames or ())
        if missing := {"device_id", "format"} - header:
            raise HTTPException(422, f"the CSV header lacks {', '.join(sorted(missing))}")
        if unknown := header - _CSV_COLUMNS:
            raise HTTPException(422, f"unknown CSV columns: {', '.join(sorted(unknown))}")
        rows: list[tuple[int, dict[str, Any]]] = []
        for row in reader:
            if len(rows) == MAX_IMPORT_ROWS:
                raise HTTPException(413, f"at most {MAX_IMPORT_ROWS} rows per import")
            fields = {k: v.strip() if isinstance(v, str) else v for k, v in row.items()}
            rows.append((reader.line_num, {k: v for k, v in fields.items() if v not in ("", None)}))
    except csv.Error as exc:
        raise HTTPException(422, f"line {reader.line_num}: not CSV ({exc})") from None
    return rows


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    return str(exc)


async def _set_status(
    conn: asyncpg.Connection, user: User, broker: BrokerFactory, device_id: str, status: str
) -> Any:
    async with conn.transaction():
        before, area = await _device(conn, user, device_id, lock=True)
        after = await registry.set_status(conn, device_id, status)
        if after != before:
            action = "device.enable" if after.active else "device.disable"
            await _audit(
                conn, user, action, device_record(before, area), device_record(after, area)
            )
        username = after.mqtt_username
        if username is not None:  # sent even when unchanged: a repeat brings the broker in line
            await _change_broker(broker, lambda b: b.set_enabled([username], after.active))
    return await _with_readings(conn, device_record(after, area))


async def _device(
    conn: asyncpg.Connection, user: User, device_id: str, *, lock: bool = False
) -> tuple[Device, str]:
    """The device and its area: 404 when unknown, 403 outside the user's area."""
    try:
        device, area = await registry.device_and_area(conn, device_id, lock=lock)
    except DeviceNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    forbid_outside(user, area, f"device {device_id}")
    return device, area


async def _resident_area(conn: asyncpg.Connection, resident_id: int | None) -> str:
    """Where a device of this resident lies; 422 for a resident that does not exist."""
    if resident_id is None:
        return ""
    resident = await residents.get_resident(conn, resident_id)
    if resident is None:
        raise HTTPException(422, f"no resident {resident_id}")
    area: str = resident["area"]
    return area


async def _with_readings(conn: asyncpg.Connection, item: dict[str, Any]) -> dict[str, Any]:
    readings = await latest_readings(conn, [item["device_id"]])
    return {**item, **readings[item["device_id"]]}


async def _audit(
    conn: asyncpg.Connection,
    user: User,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    target = f"device:{(after or before or {})['device_id']}"
    await audit.record(
        conn, actor=user.name, action=action, target=target, before=before, after=after
    )


@contextlib.contextmanager
def _registry_answers() -> Iterator[None]:
    """The registry's refusals as HTTP answers."""
    try:
        yield
    except DeviceExists as exc:
        raise HTTPException(409, str(exc)) from None
    except DeviceNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except RegistryError as exc:
        raise HTTPException(422, str(exc)) from None


async def _put_accounts(broker: BrokerFactory, devices: list[tuple[Device, str | None]]) -> None:
    """The broker accounts of these devices, created or re-keyed (as the CLI does it)."""
    accounts = []
    for device, secret in devices:
        if device.mqtt_username is None or secret is None:
            continue
        account = device_account(
            device.device_id, device.format, device.mqtt_username, enabled=device.active
        )
        if account is not None:
            accounts.append((account, secret))
    if accounts:
        await _change_broker(broker, lambda b: b.put(accounts))


async def _change_broker(
    broker: BrokerFactory, change: Callable[[AccountChanges], Awaitable[None]]
) -> None:
    """Apply a change to the broker's accounts, confirmed; raised inside the change's
    transaction, the refusal rolls the registry back too."""
    accounts = broker()
    if accounts is None:
        raise HTTPException(
            503, "no broker admin account to change device accounts with (set "
            "CAREWATCH_MQTT_ADMIN_URL, or run under `carewatch up`); nothing was changed",
        )  # fmt: skip
    try:
        async with accounts:
            await change(accounts)
    except DynsecRefused as exc:
        raise HTTPException(502, f"the broker refused: {exc}; nothing was changed") from exc
    except MqttError as exc:
        raise HTTPException(
            503, f"the broker did not confirm the change ({exc}); nothing was changed"
        ) from exc
