"""The map page: where the residents of the user's area last were, and their safe zones.

Positions and zones are WGS-84 as carewatch stores them, moved onto the configured tiles'
datum here (console/maps.py) before the page is written; without tiles (a closed network)
they are drawn on a plain background with a scale.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from alerts import history_views
from api.deps import Conn
from api.routes import alerts as alert_routes
from api.routes import zones as zone_routes
from console import maps
from console.fleet import time_ago
from console.web import Page, Viewer, render

__all__ = ["MAP_LIMIT", "MAP_SINCE", "router"]

router = APIRouter(include_in_schema=False)

# The map shows the residents with a position this recent, at most this many (by name):
# each brings its zones, read through the API's zone route.
MAP_SINCE = timedelta(days=7)
MAP_LIMIT = 300
_SEVERITY = ("critical", "warning", "info")


@router.get("/map", response_class=HTMLResponse)
async def map_page(request: Request, conn: Conn, viewer: Page) -> HTMLResponse:
    now = datetime.now(UTC)
    found = await history_views.last_positions(
        conn, scope=viewer.user.area, since=now - MAP_SINCE, limit=MAP_LIMIT + 1
    )
    more, found = len(found) > MAP_LIMIT, found[:MAP_LIMIT]
    alarms = await _alarm_severity(conn, viewer)
    source = maps.tiles_of(request)
    points, zones = [], []
    for person in found:
        rid = person["resident_id"]
        person["severity"] = alarms.get(rid)
        points.append(maps.point(
            person["lat"], person["lon"], person["name"], source,
            severity=person["severity"], href=f"/residents/{rid}",
        ))  # fmt: skip
        items = (await zone_routes.get_zones(conn, viewer.user, rid))["items"]
        zones += maps.zone_shapes(
            [{**z, "name": f"{person['name']} · {z['name']}"} for z in items], source
        )
    return render(
        request, "map.html", viewer=viewer, people=found, more=more, now=now,
        map=maps.map_data(source, points, zones), ago=time_ago(viewer.language),
        days=MAP_SINCE.days, limit=MAP_LIMIT,
    )  # fmt: skip


async def _alarm_severity(conn: Conn, viewer: Viewer) -> dict[int, str]:
    """The severity of each resident's most severe unresolved alarm."""
    worst: dict[int, str] = {}
    for status in ("open", "acknowledged"):
        page: dict[str, Any] = await alert_routes.list_alerts(
            conn, viewer.user, status=status, order="urgent", limit=500
        )
        for alert in page["items"]:
            rid, severity = alert["resident_id"], alert["severity"]
            if rid is None or severity not in _SEVERITY:
                continue
            if rid not in worst or _SEVERITY.index(severity) < _SEVERITY.index(worst[rid]):
                worst[rid] = severity
    return worst
