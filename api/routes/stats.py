"""`/api/v1/stats`: figures for supervisors about how the centre is doing.

`/stats/acknowledgement`: how fast alerts are taken on (alerts/ack_stats.py explains what
is counted), overall, per operator and per shift. Shifts are the centre's, from the
application's `centre_tz` and `shift_starts` (CAREWATCH_CENTRE_TZ, CAREWATCH_SHIFT_STARTS).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from alerts import ack_stats
from api.console_models import AckStats
from api.deps import Conn, Supervisor, area_filter
from api.models import Error
from api.routes import API_PREFIX

__all__ = ["router"]

router = APIRouter(
    prefix=f"{API_PREFIX}/stats",
    tags=["stats"],
    responses={code: {"model": Error} for code in (401, 403, 422)},
)

_DEFAULT = timedelta(hours=24)
_LONGEST = timedelta(days=92)  # every alert of the window is read: keep it bounded


@router.get(
    "/acknowledgement",
    response_model=AckStats,
    summary="time to acknowledge: overall, per operator, per shift (supervisors)",
)
async def acknowledgement(
    conn: Conn,
    user: Supervisor,
    request: Request,
    since: Annotated[datetime | None, Query(description="opened at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="opened before (RFC 3339)")] = None,
    area: Annotated[str | None, Query(max_length=200)] = None,
    kind: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,64}$")] = None,
) -> dict[str, Any]:
    wanted = area_filter(user, area)
    start, end = _window(since, until)
    try:
        shifts = ack_stats.shifts_between(
            start, end, request.app.state.centre_tz, request.app.state.shift_starts
        )
    except OverflowError:  # a window at the ends of the calendar
        raise HTTPException(422, "since, until: too far from today") from None
    figures = await ack_stats.acknowledgement(
        conn, scope=user.area, since=start, until=end, shifts=shifts, area=wanted, kind=kind
    )
    return {"since": start, "until": end, "targets_s": list(ack_stats.TARGETS_S), **figures}


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name}: give the time zone too (e.g. 2026-01-02T03:04:05Z)")
    end = until or datetime.now(UTC)
    try:
        start = since or end - _DEFAULT
    except OverflowError:  # an `until` in year 1
        raise HTTPException(422, "until: too early") from None
    if not timedelta(0) < end - start <= _LONGEST:
        raise HTTPException(422, f"since must be before until, at most {_LONGEST.days} days apart")
    return start, end
