"""`/api/v1/schedules`: on-call schedules, their overrides, and who is on call at an
instant (what the notifier reaches for "whoever is on call", and, role `supervisors`, the
supervisor on duty when nobody acknowledges in time).

Schedules belong to an area (the creator's unless given): a user sees those in their area
or below it (outside: 403, unknown: 404). Anyone signed in reads; supervisors and admins
write. The contacts a schedule names must exist in the writer's area (422 naming those
that do not). Every change writes an audit row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query, Response

from api import audit
from api.cursors import decode_cursor, encode_cursor
from api.deps import Conn, CurrentUser, Supervisor, area_filter, area_param, forbid_outside
from api.models import Error
from api.routes import API_PREFIX
from api.schedule_models import (
    OnCall,
    OverrideIn,
    OverrideOut,
    ScheduleCreate,
    SchedulePage,
    SchedulePublic,
    ScheduleReplace,
    ScheduleRole,
    check_instant,
)
from api.users import User
from devices import contacts
from notifier import schedule_store

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (401, 403, 404, 409, 422)
}
router = APIRouter(prefix=f"{API_PREFIX}/schedules", tags=["schedules"], responses=_ERRORS)

ScheduleId = Annotated[int, Path(ge=1, le=2**63 - 1)]
OverrideId = Annotated[int, Path(ge=1, le=2**63 - 1)]
T = TypeVar("T")


@router.post("", response_model=SchedulePublic, status_code=201, summary="add a schedule")
async def create_schedule(conn: Conn, user: Supervisor, body: ScheduleCreate) -> dict[str, Any]:
    fields = _fields(user, body)
    rotations = [r.model_dump() for r in body.rotations]
    overrides = [o.model_dump() for o in body.overrides or []]
    async with conn.transaction():
        await _check_contacts(conn, user, rotations, overrides)
        schedule = await _racing(schedule_store.create_schedule(conn, fields, rotations, overrides))
        await _audit(conn, user, "schedule.create", schedule["schedule_id"], None, schedule)
    return schedule


@router.get("", response_model=SchedulePage, summary="the schedules in your area, by name")
async def list_schedules(
    conn: Conn,
    user: CurrentUser,
    area: Annotated[str | None, Query(max_length=200)] = None,
    role: ScheduleRole | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    wanted = area_filter(user, area)
    after = decode_cursor(cursor, "schedules", (str, int)) if cursor else None
    items, last = await schedule_store.list_schedules(
        conn, scope=user.area, area=wanted, role=role, after=after, limit=limit
    )
    return {"items": items, "next": encode_cursor("schedules", last) if last else None}


@router.get("/{schedule_id}", response_model=SchedulePublic, summary="one schedule")
async def get_schedule(conn: Conn, user: CurrentUser, schedule_id: ScheduleId) -> dict[str, Any]:
    return await _load(conn, user, schedule_id)


@router.put(
    "/{schedule_id}",
    response_model=SchedulePublic,
    summary="replace a schedule (its overrides only when given)",
)
async def replace_schedule(
    conn: Conn, user: Supervisor, schedule_id: ScheduleId, body: ScheduleReplace
) -> dict[str, Any]:
    fields = _fields(user, body)
    rotations = [r.model_dump() for r in body.rotations]
    overrides = None if body.overrides is None else [o.model_dump() for o in body.overrides]
    async with conn.transaction():
        before = await _load(conn, user, schedule_id, lock=True)
        await _check_contacts(conn, user, rotations, overrides or [])
        after = await _racing(
            schedule_store.replace_schedule(conn, schedule_id, fields, rotations, overrides)
        )
        assert after is not None  # locked: it exists
        await _audit(conn, user, "schedule.update", schedule_id, before, after)
    return after


@router.delete(
    "/{schedule_id}", status_code=204, summary="delete a schedule (not while a step names it)"
)
async def delete_schedule(conn: Conn, user: Supervisor, schedule_id: ScheduleId) -> Response:
    async with conn.transaction():
        before = await _load(conn, user, schedule_id, lock=True)
        try:
            await schedule_store.delete_schedule(conn, schedule_id)
        except asyncpg.ForeignKeyViolationError:
            raise HTTPException(
                409, f"schedule {schedule_id} is named by an escalation step: change that first"
            ) from None
        await _audit(conn, user, "schedule.delete", schedule_id, before, None)
    return Response(status_code=204)


@router.post(
    "/{schedule_id}/overrides",
    response_model=OverrideOut,
    status_code=201,
    summary="someone else on call for a while",
)
async def add_override(
    conn: Conn, user: Supervisor, schedule_id: ScheduleId, body: OverrideIn
) -> dict[str, Any]:
    override = body.model_dump()
    async with conn.transaction():
        await _load(conn, user, schedule_id, lock=True)
        await _check_contacts(conn, user, [], [override])
        added = await _racing(
            schedule_store.add_override(
                conn, schedule_id, override["contact_id"], override["starts_at"],
                override["ends_at"],
            )
        )  # fmt: skip
        await _audit(conn, user, "schedule.override_add", schedule_id, None, added)
    return added


@router.delete(
    "/{schedule_id}/overrides/{override_id}", status_code=204, summary="delete an override"
)
async def delete_override(
    conn: Conn, user: Supervisor, schedule_id: ScheduleId, override_id: OverrideId
) -> Response:
    async with conn.transaction():
        await _load(conn, user, schedule_id, lock=True)
        gone = await schedule_store.delete_override(conn, schedule_id, override_id)
        if gone is None:
            raise HTTPException(404, f"schedule {schedule_id} has no override {override_id}")
        await _audit(conn, user, "schedule.override_delete", schedule_id, gone, None)
    return Response(status_code=204)


@router.get("/{schedule_id}/on-call", response_model=OnCall, summary="who is on call at an instant")
async def on_call(
    conn: Conn,
    user: CurrentUser,
    schedule_id: ScheduleId,
    at: Annotated[datetime | None, Query(description="RFC 3339, with offset; default: now")] = None,
) -> dict[str, Any]:
    when = datetime.now(UTC) if at is None else _instant(at, "at")
    await _load(conn, user, schedule_id)
    # The notifier's own query, so this answers exactly what it would do.
    ids = (await schedule_store.on_call_now(conn, [schedule_id], when)).get(schedule_id, [])
    people = [await contacts.get_contact(conn, contact_id) for contact_id in ids]
    return {
        "schedule_id": schedule_id,
        "at": when,
        "contacts": [{"contact_id": c["contact_id"], "name": c["name"]} for c in people if c],
    }


async def _load(conn: Conn, user: User, schedule_id: int, *, lock: bool = False) -> dict[str, Any]:
    schedule = await schedule_store.get_schedule(conn, schedule_id, lock=lock)
    if schedule is None:
        raise HTTPException(404, f"no schedule {schedule_id}")
    forbid_outside(user, schedule["area"], f"schedule {schedule_id}")
    return schedule


def _fields(user: User, body: ScheduleCreate) -> dict[str, Any]:
    area = area_param(body.area if body.area is not None else user.area)
    forbid_outside(user, area, f"area {area!r}")
    return {"name": body.name, "area": area, "role": body.role, "time_zone": body.time_zone}


async def _check_contacts(
    conn: Conn,
    user: User,
    rotations: Sequence[dict[str, Any]],
    overrides: Sequence[dict[str, Any]],
) -> None:
    wanted = {c for r in rotations for c in r["contacts"]} | {o["contact_id"] for o in overrides}
    missing = sorted(wanted - await contacts.visible(conn, user.area, sorted(wanted)))
    if missing:
        raise HTTPException(
            422, f"contacts: no contact {', '.join(map(str, missing))} in your area"
        )


def _instant(value: datetime, name: str) -> datetime:
    try:
        return check_instant(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


async def _racing(pending: Awaitable[T]) -> T:
    # A contact deleted between the check above and the insert: its foreign key refuses.
    try:
        return await pending
    except asyncpg.ForeignKeyViolationError:
        raise HTTPException(409, "a contact changed meanwhile (deleted); try again") from None


async def _audit(
    conn: Conn,
    user: User,
    action: str,
    schedule_id: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    await audit.record(
        conn, actor=user.name, action=action, target=f"schedule:{schedule_id}",
        before=before, after=after,
    )  # fmt: skip
