"""The supervisor's pages: how fast alarms are taken on (against the centre's targets),
and the visits dispatched (派单) with how far each has got.

Read through the API's routes with the signed-in user; the statistics route needs the
supervisor role, which the API checks in its dependency, so this page checks it too.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from alerts import work_orders
from api.deps import Conn
from api.models import OrderStatus
from api.routes import stats as stat_routes
from api.routes import work_orders as order_routes
from console.web import Page, render

__all__ = ["TARGET_PCT", "WINDOWS", "below_target", "router"]

router = APIRouter(include_in_schema=False)

# The centre's targets (telecare practice): this share of alarms acknowledged within
# 60 s and within 180 s.
TARGET_PCT = {60: 97.5, 180: 99.0}
WINDOWS = ("today", "7d")
ORDERS_PER_PAGE = 100


def below_target(figures: dict[str, Any]) -> list[int]:
    """The targets (seconds) whose share `figures` misses; none where nothing counts."""
    missed = []
    for seconds, pct in TARGET_PCT.items():
        share = figures.get(f"within_{seconds}s_pct")
        if share is not None and share < pct:
            missed.append(seconds)
    return missed


@router.get("/stats", response_class=HTMLResponse)
async def stats_page(
    request: Request,
    conn: Conn,
    viewer: Page,
    window: Annotated[str, Query(max_length=10)] = "today",
) -> HTMLResponse:
    if not viewer.user.has_role("supervisor"):
        return render(request, "problem.html", viewer=viewer, status_code=403, problem="role")
    window = window if window in WINDOWS else "today"
    now = datetime.now(UTC)
    since = _window_start(window, now, getattr(request.app.state, "centre_tz", viewer.tz))
    answer = await stat_routes.acknowledgement(conn, viewer.user, request, since, now, None, None)
    for figures in (answer["overall"], *answer["by_operator"], *answer["by_shift"]):
        figures["below"] = below_target(figures)
    return render(
        request, "stats.html", viewer=viewer, stats=answer, window=window, windows=WINDOWS,
        targets=TARGET_PCT,
    )  # fmt: skip


def _window_start(window: str, now: datetime, zone: ZoneInfo) -> datetime:
    """Today: since midnight in the centre's time zone; 7d: the last 168 hours."""
    if window == "7d":
        return now - timedelta(days=7)
    midnight = datetime.combine(now.astimezone(zone).date(), time(), tzinfo=zone)
    return min(midnight.astimezone(UTC), now - timedelta(seconds=1))


@router.get("/work-orders", response_class=HTMLResponse)
async def work_orders_page(
    request: Request,
    conn: Conn,
    viewer: Page,
    status: Annotated[str, Query(max_length=20)] = "",
    overdue: Annotated[str, Query(max_length=5)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    wanted = cast(OrderStatus, status) if status in work_orders.STATUSES else None
    late = True if overdue == "1" else None
    page = await order_routes.list_orders(
        conn, viewer.user, status=wanted, overdue=late, order="due" if late else "newest",
        limit=ORDERS_PER_PAGE, cursor=cursor,
    )  # fmt: skip
    return render(
        request, "work_orders.html", viewer=viewer, orders=page["items"], next=page["next"],
        status=wanted or "", overdue=bool(late), statuses=work_orders.STATUSES,
        first=cursor is None,
    )  # fmt: skip
