"""The device registry in PostgreSQL: which devices there are, how they speak, whose they
are (residents: devices/residents.py).

Every device is registered with its format (the codec that decodes it) and, if it logs in
to the broker itself, an MQTT account: a generated secret, stored only as its hash, shown
once to whoever registers the device. Ingest refuses devices that are unknown or disabled.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from devices.codecs import CODECS, get_codec
from devices.credentials import hash_secret, new_secret
from devices.errors import RegistryError

__all__ = [
    "Device",
    "DeviceExists",
    "DeviceNotFound",
    "add_device",
    "check_clock",
    "device_and_area",
    "get_device",
    "import_csv",
    "issue_secret",
    "list_devices",
    "search_devices",
    "set_clock",
    "set_status",
    "update_device",
]

DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_COLUMNS = "device_id, format, model, resident_id, status, mqtt_username, last_seen, clock_tz"
# A device lies in its resident's area; one without a resident at the top ('').
_AREA = "coalesce(r.area, '')"
_WITH_AREA = "devices d LEFT JOIN residents r ON r.resident_id = d.resident_id"
_D_COLUMNS = ", ".join(f"d.{c}" for c in _COLUMNS.split(", "))


class DeviceExists(RegistryError):
    """A device of that id (or its MQTT user) is registered already."""


class DeviceNotFound(RegistryError):
    """No device has that id."""


@dataclass(frozen=True)
class Device:
    device_id: str
    format: str
    model: str | None
    resident_id: int | None
    status: str
    mqtt_username: str | None
    last_seen: datetime | None = None
    # The zone the device's clock is set to (IANA name), for formats whose device time has
    # no offset (the watch protocol); None: UTC.
    clock_tz: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


async def add_device(
    conn: asyncpg.Connection,
    *,
    device_id: str,
    format: str,
    model: str | None = None,
    resident_id: int | None = None,
    clock_tz: str | None = None,
) -> tuple[Device, str | None]:
    """Register a device; returns it and its broker secret (None if it has no account)."""
    username = _check(device_id, format)
    clock_tz = check_clock(clock_tz)
    secret = new_secret() if username else None
    try:
        row = await conn.fetchrow(
            "INSERT INTO devices (device_id, format, model, resident_id, mqtt_username,"
            f" secret_hash, clock_tz) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}",
            device_id, format, model, resident_id, username,
            hash_secret(secret) if secret else None, clock_tz,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as exc:
        raise DeviceExists(f"device {device_id!r} (or its MQTT user) already exists") from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise RegistryError(f"device {device_id!r}: no resident {resident_id}") from exc
    return _device(row), secret


async def issue_secret(conn: asyncpg.Connection, device_id: str) -> str:
    """Replace a device's broker secret (the old one stops working once the broker's account
    has the new one: carewatch/broker_accounts.py)."""
    device = await get_device(conn, device_id)
    if device.mqtt_username is None:
        raise RegistryError(f"device {device_id!r} ({device.format}) has no broker account")
    secret = new_secret()
    await conn.execute(
        "UPDATE devices SET secret_hash = $2, updated_at = now() WHERE device_id = $1",
        device_id,
        hash_secret(secret),
    )
    return secret


async def get_device(conn: asyncpg.Connection, device_id: str) -> Device:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM devices WHERE device_id = $1", device_id)
    if row is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    return _device(row)


async def list_devices(conn: asyncpg.Connection) -> list[Device]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM devices ORDER BY device_id")
    return [_device(r) for r in rows]


async def device_and_area(
    conn: asyncpg.Connection, device_id: str, *, lock: bool = False
) -> tuple[Device, str]:
    """A device and the area it lies in; DeviceNotFound. `lock`: hold its row until the
    transaction ends, so a change checks the area of the device it changes."""
    row = await conn.fetchrow(
        f"SELECT {_D_COLUMNS}, {_AREA} AS area FROM {_WITH_AREA} WHERE d.device_id = $1"
        + (" FOR UPDATE OF d" if lock else ""),
        device_id,
    )
    if row is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    fields = dict(row)
    area: str = fields.pop("area")
    return Device(**fields), area


async def search_devices(
    conn: asyncpg.Connection,
    *,
    scope: str,
    resident_id: int | None = None,
    format: str | None = None,
    status: str | None = None,
    silent_since: datetime | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Up to `limit` devices lying in `scope` (an area and below, on `/` boundaries) that
    match, by id after `after`: each the device's columns with `area` and `resident_name`.
    `silent_since`: last seen before then, or never."""
    args: list[Any] = [scope, after, resident_id, format, status, silent_since, limit]
    rows = await conn.fetch(
        f"SELECT {_D_COLUMNS}, {_AREA} AS area, r.name AS resident_name FROM {_WITH_AREA}"
        f" WHERE ($1 = '' OR {_AREA} = $1 OR starts_with({_AREA}, $1 || '/'))"
        " AND ($2::text IS NULL OR d.device_id > $2)"
        " AND ($3::bigint IS NULL OR d.resident_id = $3)"
        " AND ($4::text IS NULL OR d.format = $4) AND ($5::text IS NULL OR d.status = $5)"
        " AND ($6::timestamptz IS NULL OR d.last_seen IS NULL OR d.last_seen < $6)"
        " ORDER BY d.device_id LIMIT $7",
        *args,
    )
    return [dict(r) for r in rows]


async def update_device(
    conn: asyncpg.Connection, device_id: str, changes: dict[str, Any]
) -> Device:
    """Change a device's `model`, `resident_id` and/or `clock_tz` (validated as
    `set_clock` does); DeviceNotFound, RegistryError for an unknown resident."""
    unknown = set(changes) - {"model", "resident_id", "clock_tz"}
    if unknown:
        raise RegistryError(f"cannot change {', '.join(sorted(unknown))}")
    if "clock_tz" in changes:
        changes = {**changes, "clock_tz": check_clock(changes["clock_tz"])}
    names = list(changes)
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    try:
        row = await conn.fetchrow(
            f"UPDATE devices SET {sets or 'device_id = device_id'}, updated_at = now()"
            f" WHERE device_id = $1 RETURNING {_COLUMNS}",
            device_id, *(changes[n] for n in names),
        )  # fmt: skip
    except asyncpg.ForeignKeyViolationError as exc:
        raise RegistryError(f"no resident {changes.get('resident_id')}") from exc
    if row is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    return _device(row)


async def set_status(conn: asyncpg.Connection, device_id: str, status: str) -> Device:
    if status not in ("active", "disabled"):
        raise RegistryError(f"status must be active or disabled, not {status!r}")
    row = await conn.fetchrow(
        f"UPDATE devices SET status = $2, updated_at = now() WHERE device_id = $1"
        f" RETURNING {_COLUMNS}",
        device_id,
        status,
    )
    if row is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    return _device(row)


async def set_clock(conn: asyncpg.Connection, device_id: str, clock_tz: str | None) -> Device:
    """Say which zone a device's clock runs on (None or "UTC": UTC)."""
    row = await conn.fetchrow(
        f"UPDATE devices SET clock_tz = $2, updated_at = now() WHERE device_id = $1"
        f" RETURNING {_COLUMNS}",
        device_id,
        check_clock(clock_tz),
    )
    if row is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    return _device(row)


def check_clock(clock_tz: str | None) -> str | None:
    """A known IANA zone name, or None for UTC."""
    if clock_tz is None or clock_tz.strip() in ("", "UTC"):
        return None
    try:
        ZoneInfo(clock_tz.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise RegistryError(
            f"clock time zone {clock_tz!r} unknown: want an IANA name such as Asia/Shanghai"
        ) from None
    return clock_tz.strip()


async def import_csv(conn: asyncpg.Connection, text: str) -> list[tuple[Device, str | None]]:
    """Register every row of a CSV (header: device_id,format[,model][,resident_id]
    [,clock_tz]).

    All or nothing: one bad row rolls the whole file back, and the error names its line.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = {"device_id", "format"} - set(reader.fieldnames or ())
    if missing:
        raise RegistryError(f"CSV header lacks {', '.join(sorted(missing))}")
    added = []
    async with conn.transaction():
        for row in reader:
            try:
                added.append(await add_device(conn, **_csv_fields(row)))
            except RegistryError as exc:
                raise RegistryError(f"line {reader.line_num}: {exc}") from exc
    return added


def _csv_fields(row: dict[str, Any]) -> dict[str, Any]:
    resident = (row.get("resident_id") or "").strip()
    if resident and not (resident.isascii() and resident.isdigit() and len(resident) <= 18):
        raise RegistryError(f"resident_id must be a number, not {resident!r}")
    return {
        "device_id": (row["device_id"] or "").strip(),
        "format": (row["format"] or "").strip(),
        "model": (row.get("model") or "").strip() or None,
        "resident_id": int(resident) if resident else None,
        "clock_tz": (row.get("clock_tz") or "").strip() or None,
    }


def _check(device_id: str, format: str) -> str | None:
    """Validate id and format; the device's MQTT username, if it logs in itself."""
    if format not in CODECS:
        raise RegistryError(f"unknown format {format!r}; known: {', '.join(sorted(CODECS))}")
    if not DEVICE_ID.fullmatch(device_id):
        raise RegistryError(
            f"device id {device_id!r}: 1-64 of letters, digits, '.', '_', ':', '-',"
            " starting with a letter or digit"
        )
    codec = get_codec(format)
    if codec.device_ids is not None and not codec.device_ids.fullmatch(device_id):
        raise RegistryError(
            f"device id {device_id!r} cannot be sent by a {format} device"
            f" (its ids match {codec.device_ids.pattern})"
        )
    if codec.broker_account is None:
        return None
    username, topics = codec.broker_account(device_id)
    if codec.device_from_topic(topics[0]) != device_id:
        raise RegistryError(f"device id {device_id!r} does not fit the {format} topics")
    return username


def _device(row: asyncpg.Record) -> Device:
    return Device(**dict(row))
