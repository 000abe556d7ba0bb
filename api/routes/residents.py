"""`/api/v1/residents`: the people carewatch watches over, their rule overrides, and their
history (timeline, positions, vitals).

Anyone signed in reads the residents of their area; supervisors and admins create and
change them; admins delete them and set rule overrides (configuration). A resident
outside the user's area is 403, an unknown id 404. Every change writes an audit row with
the profile before and after, in the same transaction. Contacts and the ladder:
api/routes/contacts.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response

from alerts import history_views
from alerts.rules.config import DEFAULTS_PATH, check
from api import audit
from api.cursors import decode_cursor, encode_cursor
from api.deps import Admin, Conn, CurrentUser, Supervisor, area_filter, area_param, forbid_outside
from api.models import Error
from api.people_models import (
    Positions,
    ResidentCreate,
    ResidentDetail,
    ResidentPage,
    ResidentPatch,
    Rules,
    Timeline,
    Vitals,
)
from api.records import resident_record
from api.routes import API_PREFIX
from api.users import User
from devices import residents
from devices.errors import RegistryError

__all__ = ["ResidentId", "load_resident", "router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (401, 403, 404, 409, 422)
}
router = APIRouter(prefix=f"{API_PREFIX}/residents", tags=["residents"], responses=_ERRORS)

ResidentId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Since = Annotated[datetime | None, Query(description="from (RFC 3339); default: until - 24 h")]
Until = Annotated[datetime | None, Query(description="before (RFC 3339); default: now")]
MaxPoints = Annotated[int, Query(ge=1, le=5000, description="at most this many buckets")]
_MAX_TIMELINE = timedelta(days=31)
_MAX_CHART = timedelta(days=92)  # a chart reads every event of the range: keep it bounded


@router.get("", response_model=ResidentPage, summary="the residents in your area, by name")
async def list_residents(
    conn: Conn,
    user: CurrentUser,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="in the name, address or phone"),
    ] = None,
    area: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    wanted = area_filter(user, area)
    if q is not None and "\x00" in q:
        raise HTTPException(422, "q: no NUL characters")
    after = decode_cursor(cursor, "residents", (str, int)) if cursor else None
    rows, last = await residents.list_residents(
        conn,
        scope=user.area,
        area=wanted,
        q=q,
        after=after,
        limit=limit,
    )
    return {
        "items": [resident_record(r) for r in rows],
        "next": encode_cursor("residents", last) if last else None,
    }


@router.post("", response_model=ResidentDetail, status_code=201, summary="add a resident")
async def create_resident(conn: Conn, user: Supervisor, body: ResidentCreate) -> dict[str, Any]:
    columns = _columns(body.model_dump())
    columns["area"] = area_param(body.area if body.area is not None else user.area)
    forbid_outside(user, columns["area"], f"area {columns['area']!r}")
    async with conn.transaction():
        row = await _stored(residents.create_resident(conn, columns))
        await audit.record(
            conn, actor=user.name, action="resident.create",
            target=f"resident:{row['resident_id']}", before=None, after=resident_record(row),
        )  # fmt: skip
    return await _detail(conn, row)


@router.get("/{resident_id}", response_model=ResidentDetail, summary="one resident, in full")
async def get_resident(conn: Conn, user: CurrentUser, resident_id: ResidentId) -> dict[str, Any]:
    return await _detail(conn, await load_resident(conn, user, resident_id))


@router.patch("/{resident_id}", response_model=ResidentDetail, summary="change a resident")
async def update_resident(
    conn: Conn, user: Supervisor, resident_id: ResidentId, body: ResidentPatch
) -> dict[str, Any]:
    changes = _columns(body.model_dump(exclude_unset=True))
    if "area" in changes:
        changes["area"] = area_param(changes["area"])
        forbid_outside(user, changes["area"], f"area {changes['area']!r}")
    async with conn.transaction():
        before = await load_resident(conn, user, resident_id, lock=True)
        row = await _stored(residents.update_resident(conn, resident_id, changes))
        await audit.record(
            conn, actor=user.name, action="resident.update", target=f"resident:{resident_id}",
            before=resident_record(before), after=resident_record(row),
        )  # fmt: skip
    return await _detail(conn, row)


@router.delete("/{resident_id}", status_code=204, summary="delete a resident (admins)")
async def delete_resident(conn: Conn, user: Admin, resident_id: ResidentId) -> Response:
    async with conn.transaction():
        before = await load_resident(conn, user, resident_id, lock=True)
        why = await residents.why_in_use(conn, resident_id)
        if why is not None:
            raise HTTPException(409, f"resident {resident_id} cannot be deleted: {why}")
        await residents.delete_resident(conn, resident_id)
        await audit.record(
            conn, actor=user.name, action="resident.delete", target=f"resident:{resident_id}",
            before=resident_record(before), after=None,
        )  # fmt: skip
    return Response(status_code=204)


@router.put("/{resident_id}/rules", response_model=ResidentDetail, summary="set rule overrides")
async def set_rules(
    conn: Conn, user: Admin, resident_id: ResidentId, body: Rules
) -> dict[str, Any]:
    overrides = body.model_dump()
    # Exactly what `carewatch residents configure` checks, against the shipped defaults.
    problems = check(DEFAULTS_PATH.read_text(), {str(resident_id): overrides})
    if problems:
        raise HTTPException(422, "; ".join(problems))
    async with conn.transaction():
        row = await load_resident(conn, user, resident_id, lock=True)
        before = await residents.overrides_of(conn, resident_id)
        await residents.set_rule_overrides(conn, resident_id, overrides)
        await audit.record(
            conn, actor=user.name, action="resident.rules", target=f"resident:{resident_id}",
            before={"rules": before}, after={"rules": overrides},
        )  # fmt: skip
    return await _detail(conn, row)


@router.get(
    "/{resident_id}/timeline",
    response_model=Timeline,
    summary="recent events and alerts, newest first",
)
async def timeline(
    conn: Conn,
    user: CurrentUser,
    resident_id: ResidentId,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    await load_resident(conn, user, resident_id)
    start, end = _range(since, until, _MAX_TIMELINE)
    before = decode_cursor(cursor, "timeline", (datetime, str, str)) if cursor else None
    items, last = await history_views.timeline(
        conn, resident_id=resident_id, device_ids=await _device_ids(conn, resident_id),
        since=start, until=end, before=before, limit=limit,
    )  # fmt: skip
    for item in items:
        del item["id"]  # the key's tie-breaker, not for clients
    next_ = encode_cursor("timeline", last) if last else None
    return {"since": start, "until": end, "items": items, "next": next_}


@router.get(
    "/{resident_id}/positions",
    response_model=Positions,
    summary="positions for a map: the last per time bucket",
)
async def positions(
    conn: Conn,
    user: CurrentUser,
    resident_id: ResidentId,
    since: Since = None,
    until: Until = None,
    max_points: MaxPoints = 500,
) -> dict[str, Any]:
    window = await _chart_window(conn, user, resident_id, since, until, max_points)
    items = await history_views.positions(conn, **window.query)
    return {**window.answer, "items": items}


@router.get(
    "/{resident_id}/vitals",
    response_model=Vitals,
    summary="vital signs for charts: avg/min/max per bucket",
)
async def vitals(
    conn: Conn,
    user: CurrentUser,
    resident_id: ResidentId,
    since: Since = None,
    until: Until = None,
    max_points: MaxPoints = 500,
) -> dict[str, Any]:
    window = await _chart_window(conn, user, resident_id, since, until, max_points)
    series = await history_views.vitals(conn, **window.query)
    return {**window.answer, "series": series}


@dataclass(frozen=True)
class _Window:
    """A chart's time range, its bucket width and the resident's devices."""

    device_ids: list[str]
    since: datetime
    until: datetime
    width: timedelta

    @property
    def query(self) -> dict[str, Any]:
        return {"device_ids": self.device_ids, "since": self.since, "until": self.until,
                "width": self.width}  # fmt: skip

    @property
    def answer(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until,
                "bucket_s": int(self.width.total_seconds())}  # fmt: skip


async def _chart_window(
    conn: Conn,
    user: User,
    resident_id: int,
    since: datetime | None,
    until: datetime | None,
    max_points: int,
) -> _Window:
    await load_resident(conn, user, resident_id)
    start, end = _range(since, until, _MAX_CHART)
    width = history_views.bucket_width(start, end, max_points)
    return _Window(await _device_ids(conn, resident_id), start, end, width)


async def load_resident(
    conn: Conn, user: User, resident_id: int, *, lock: bool = False
) -> dict[str, Any]:
    """The resident's row: 404 if unknown, 403 outside the user's area."""
    row = await residents.get_resident(conn, resident_id, lock=lock)
    if row is None:
        raise HTTPException(404, f"no resident {resident_id}")
    forbid_outside(user, row["area"], f"resident {resident_id}")
    return row


async def _detail(conn: Conn, row: dict[str, Any]) -> dict[str, Any]:
    devices = await residents.devices_of(conn, [row["resident_id"]])
    battery = await history_views.latest_battery(conn, [d["device_id"] for d in devices])
    return {
        **resident_record(row),
        "devices": [{**d, "battery_pct": battery.get(d["device_id"])} for d in devices],
        "rules": await residents.overrides_of(conn, row["resident_id"]),
    }


async def _device_ids(conn: Conn, resident_id: int) -> list[str]:
    return [d["device_id"] for d in await residents.devices_of(conn, [resident_id])]


async def _stored(pending: Any) -> dict[str, Any]:
    try:
        row: dict[str, Any] | None = await pending
    except RegistryError as exc:  # a database check the model did not catch
        raise HTTPException(422, str(exc)) from None
    assert row is not None  # locked beforehand: it exists
    return row


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """A body's fields as profile columns: `home` and `gp` are two columns each."""
    columns = {k: v for k, v in fields.items() if k not in ("home", "gp")}
    if "home" in fields:
        home = fields["home"] or {}
        columns["home_lat"], columns["home_lon"] = home.get("lat"), home.get("lon")
    if "gp" in fields:
        gp = fields["gp"] or {}
        columns["gp_name"], columns["gp_phone"] = gp.get("name"), gp.get("phone")
    return columns


def _range(
    since: datetime | None, until: datetime | None, longest: timedelta
) -> tuple[datetime, datetime]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name}: give the time zone too (e.g. 2026-01-02T03:04:05Z)")
    end = until or datetime.now(UTC)
    try:
        start = since or end - timedelta(hours=24)
    except OverflowError:  # an `until` in year 1
        raise HTTPException(422, "until: too early") from None
    if not timedelta(0) < end - start <= longest:
        raise HTTPException(422, f"since must be before until, at most {longest.days} days apart")
    return start, end
