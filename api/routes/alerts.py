"""`/api/v1/alerts`: the alert queue and what operators do with an alert.

Every change goes through the alert lifecycle (alerts/store.py: a history row, published
on carewatch.alerts.v1) with the user as actor, and writes an audit row in the same
transaction. An alert outside the user's area is 403, an unknown id 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from alerts import store, views
from api import audit, users
from api.cursors import decode_cursor, encode_cursor
from api.deps import Conn, CurrentUser, Supervisor, area_filter, forbid_outside
from api.errors import UserNotFound
from api.models import (
    AckBody,
    AlertDetail,
    AlertPage,
    AssignBody,
    CallBody,
    CallOut,
    Error,
    HoldBody,
    NoteBody,
    NoteOut,
    ResolveBody,
    Severity,
    Status,
)
from api.routes import API_PREFIX
from api.users import User
from notifier import store as notifications

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (401, 403, 404, 409, 422)
}
router = APIRouter(prefix=f"{API_PREFIX}/alerts", tags=["alerts"], responses=_ERRORS)

AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_MAX_HOLD = timedelta(days=7)


@router.get("", response_model=AlertPage, summary="the alerts in your area, a page at a time")
async def list_alerts(
    conn: Conn,
    user: CurrentUser,
    status: Status | None = None,
    kind: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,64}$")] = None,
    severity: Severity | None = None,
    resident: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    area: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="opened at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="opened before (RFC 3339)")] = None,
    order: Literal["newest", "urgent"] = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    wanted = area_filter(user, area)
    filters = views.AlertFilter(
        status=status, kind=kind, severity=severity, resident_id=resident, area=wanted,
        since=_aware(since, "since"), until=_aware(until, "until"),
    )  # fmt: skip
    list_name = f"alerts:{order}"
    after = decode_cursor(cursor, list_name, views.ORDERS[order][1]) if cursor else None
    items, last = await views.search_alerts(
        conn, scope=user.area, filters=filters, order=order, after=after, limit=limit
    )
    return {"items": items, "next": encode_cursor(list_name, last) if last else None}


@router.get("/{alert_id}", response_model=AlertDetail, summary="one alert with its history")
async def get_alert(conn: Conn, user: CurrentUser, alert_id: AlertId) -> dict[str, Any]:
    forbid_outside(user, await views.area_of(conn, alert_id), f"alert {alert_id}")
    return await _detail(conn, alert_id)


@router.post("/{alert_id}/ack", response_model=AlertDetail, summary="take an alert on")
async def acknowledge(
    conn: Conn, user: CurrentUser, alert_id: AlertId, body: AckBody | None = None
) -> dict[str, Any]:
    note = body.note if body is not None else None

    async def change(before: dict[str, Any]) -> dict[str, Any]:
        taken_by = before["acknowledged_by"]
        if before["status"] == "acknowledged" and taken_by != user.name:
            raise HTTPException(409, f"alert {alert_id} is already acknowledged by {taken_by}")
        return await store.acknowledge(conn, alert_id, by=user.name, note=note)

    return await _change(conn, user, alert_id, "alert.ack", change)


@router.post("/{alert_id}/resolve", response_model=AlertDetail, summary="close an alert")
async def resolve(
    conn: Conn, user: CurrentUser, alert_id: AlertId, body: ResolveBody
) -> dict[str, Any]:
    note = body.note or body.resolution

    async def change(_before: dict[str, Any]) -> dict[str, Any]:
        return await store.resolve(conn, alert_id, by=user.name, note=note, code=body.resolution)

    return await _change(conn, user, alert_id, "alert.resolve", change)


@router.post("/{alert_id}/assign", response_model=AlertDetail, summary="give it to a user")
async def assign(
    conn: Conn, user: Supervisor, alert_id: AlertId, body: AssignBody
) -> dict[str, Any]:
    try:
        assignee = await users.get_user(conn, body.user)
    except UserNotFound as exc:
        raise HTTPException(422, str(exc)) from None

    async def change(_before: dict[str, Any]) -> dict[str, Any]:
        area = await views.area_of(conn, alert_id)
        if not assignee.sees(area):
            raise HTTPException(
                409, f"{assignee.name}'s area ({assignee.area or '(top)'}) does not include"
                f" alert {alert_id}'s ({area or '(top)'})",
            )  # fmt: skip
        return await store.assign(conn, alert_id, by=user.name, user=assignee.name)

    return await _change(conn, user, alert_id, "alert.assign", change)


@router.post("/{alert_id}/hold", response_model=AlertDetail, summary="hold it until a time")
async def hold(conn: Conn, user: CurrentUser, alert_id: AlertId, body: HoldBody) -> dict[str, Any]:
    now = datetime.now(UTC)
    if not now < body.until <= now + _MAX_HOLD:
        raise HTTPException(422, "until: must be in the future and at most 7 days ahead")

    async def change(_before: dict[str, Any]) -> dict[str, Any]:
        return await store.hold(conn, alert_id, by=user.name, reason=body.reason, until=body.until)

    return await _change(conn, user, alert_id, "alert.hold", change)


@router.post("/{alert_id}/notes", response_model=NoteOut, status_code=201, summary="add a note")
async def add_note(conn: Conn, user: CurrentUser, alert_id: AlertId, body: NoteBody) -> Any:
    async def change(_before: dict[str, Any]) -> dict[str, Any]:
        return await store.add_note(conn, alert_id, by=user.name, text=body.text)

    return await _record(conn, user, alert_id, "alert.note", change)


@router.post("/{alert_id}/calls", response_model=CallOut, status_code=201, summary="log a call")
async def add_call(conn: Conn, user: CurrentUser, alert_id: AlertId, body: CallBody) -> Any:
    async def change(_before: dict[str, Any]) -> dict[str, Any]:
        return await store.add_call(
            conn, alert_id, by=user.name, callee=body.to, number=body.number, outcome=body.outcome
        )

    return await _record(conn, user, alert_id, "alert.call", change)


Change = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def _change(
    conn: Conn, user: User, alert_id: int, action: str, change: Change
) -> dict[str, Any]:
    """Apply a change of the alert itself and audit it (before and after), in one
    transaction; answers the alert as it now is."""
    async with conn.transaction():
        before = await _locked(conn, user, alert_id)
        after = await change(before)
        if after != before:  # a repeat (acknowledging twice) changes nothing
            await audit.record(
                conn, actor=user.name, action=action, target=f"alert:{alert_id}",
                before=before, after=after,
            )  # fmt: skip
    return await _detail(conn, alert_id)


async def _detail(conn: Conn, alert_id: int) -> dict[str, Any]:
    """The alert as the API answers it: the alert's own view and its notification log."""
    detail = await views.alert_view(conn, alert_id)
    return {**detail, "notifications": await notifications.log_of(conn, alert_id)}


async def _record(conn: Conn, user: User, alert_id: int, action: str, change: Change) -> Any:
    """Attach a record to the alert (a note, a call) and audit it, in one transaction."""
    async with conn.transaction():
        await _locked(conn, user, alert_id)
        added = await change({})
        await audit.record(
            conn, actor=user.name, action=action, target=f"alert:{alert_id}",
            before=None, after=added,
        )  # fmt: skip
    return added


async def _locked(conn: Conn, user: User, alert_id: int) -> dict[str, Any]:
    # Locked first: the area checked is the one the change applies to.
    alert = await store.lock_alert(conn, alert_id)
    forbid_outside(user, await views.area_of(conn, alert_id), f"alert {alert_id}")
    return alert


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(422, f"{name}: give the time zone too (e.g. 2026-01-02T03:04:05Z)")
    return value
