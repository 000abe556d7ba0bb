"""The alarm queue and the alarm pop-up (弹屏): the pages an operator lives in.

Reads go through the API's own route functions, with the signed-in user, so a page shows
exactly what the API would answer that user (area checks included); the changes are the
browser's calls to the API (static/console.js).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from alerts import store, views
from api.deps import Conn
from api.routes import alerts as alert_routes
from api.routes import residents as resident_routes
from api.routes import users as user_routes
from console.fleet import resident_context
from console.geo import TileSource
from console.maps import alarm_map, tiles_of
from console.web import Page, Viewer, render

__all__ = ["QUEUE_LIMIT", "QUEUE_SHOWN", "router"]

router = APIRouter(include_in_schema=False)

AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]
# The queue shows the most urgent unresolved alarms, this many per status (all of them up
# to QUEUE_LIMIT on asking): a screen shows a few dozen, and in a mass event every change
# redraws the list, so it stays short enough to redraw in a blink on a modest PC.
QUEUE_SHOWN = 100
QUEUE_LIMIT = 500
_TIMELINE = 15


@router.get("/", response_class=HTMLResponse)
async def queue_page(request: Request, conn: Conn, viewer: Page, all: bool = False) -> HTMLResponse:
    return render(request, "queue.html", viewer=viewer, **await _queue(conn, viewer, all))


@router.get("/ui/queue", response_class=HTMLResponse)
async def queue_rows(request: Request, conn: Conn, viewer: Page, all: bool = False) -> HTMLResponse:
    return render(request, "_queue_rows.html", viewer=viewer, **await _queue(conn, viewer, all))


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
async def alarm_page(request: Request, conn: Conn, viewer: Page, alert_id: AlertId) -> HTMLResponse:
    context = await _queue(conn, viewer)
    alarm = await alarm_context(conn, viewer, alert_id, tiles_of(request))
    return render(request, "queue.html", viewer=viewer, **context, alarm=alarm)


@router.get("/ui/alerts/{alert_id}", response_class=HTMLResponse)
async def alarm_panel(
    request: Request, conn: Conn, viewer: Page, alert_id: AlertId
) -> HTMLResponse:
    alarm = await alarm_context(conn, viewer, alert_id, tiles_of(request))
    return render(request, "_alarm.html", viewer=viewer, alarm=alarm)


async def _queue(conn: Conn, viewer: Viewer, all: bool = False) -> dict[str, Any]:
    """Open alarms, then acknowledged ones, each most urgent first (critical before
    warning, then the longest waiting)."""
    rows: list[dict[str, Any]] = []
    more = False
    for status in ("open", "acknowledged"):
        found, last = await views.search_alerts(
            conn,
            scope=viewer.user.area,
            filters=views.AlertFilter(status=status),
            order="urgent",
            limit=QUEUE_LIMIT if all else QUEUE_SHOWN,
        )
        rows += found
        more = more or last is not None
    taken = await views.acknowledged(conn, [r["alert_id"] for r in rows if r["status"] != "open"])
    for row in rows:
        at, row["acknowledged_by"] = taken.get(row["alert_id"], (None, None))
        # Epoch milliseconds, for the browser's clocks.
        row["opened_ms"] = int(row["opened_at"].timestamp() * 1000)
        row["acked_ms"] = int(at.timestamp() * 1000) if at else None
    return {"alarms": rows, "more": more, "all": all, "now": datetime.now(UTC)}


async def alarm_context(
    conn: Conn, viewer: Viewer, alert_id: int, tiles: TileSource
) -> dict[str, Any]:
    """Everything the pop-up shows about one alarm, as the API answers it to the viewer;
    its map drawn for `tiles`."""
    user = viewer.user
    alert = await alert_routes.get_alert(conn, user, alert_id)
    context: dict[str, Any] = {
        "alert": alert,
        "resident": None,
        "contacts": [],
        "devices": [],
        "zones": [],
        "positions": [],
        "vitals": {},
        "timeline": [],
        "colleagues": [],
        "now_year": datetime.now(UTC).year,
        "map": None,
        "resolutions": store.RESOLUTION_CODES,
    }
    if user.has_role("supervisor"):
        listed = await user_routes.list_users(conn, user)
        context["colleagues"] = [u["name"] for u in listed["items"] if not u["disabled"]]
    resident_id = alert["resident_id"]
    if resident_id is not None:
        context.update(await resident_context(conn, viewer, resident_id))
        since = datetime.now(UTC) - timedelta(hours=24)
        vitals = await resident_routes.vitals(conn, user, resident_id, since, None, 24)
        context["vitals"] = _latest_vitals(vitals["series"])
    context["map"] = alarm_map(context, tiles)
    return context


def _latest_vitals(series: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The last hour's average of each vital sign measured in the window:
    {name: {"value", "at"}}."""
    return {
        name: {"value": points[-1]["avg"], "at": points[-1]["at"]}
        for name, points in series.items()
        if points
    }
