"""The devices' health and the residents' directory: the pages an operator checks between
alarms (which watch has gone quiet, whose battery is low) and looks people up in.

Reads go through the API's own route functions with the signed-in user, as the alarm
queue's do (console/queue.py), so each page shows exactly what the API answers that user.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from babel.dates import format_timedelta
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse

from api.deps import Conn
from api.routes import alerts as alert_routes
from api.routes import contacts as contact_routes
from api.routes import devices as device_routes
from api.routes import residents as resident_routes
from api.routes import zones as zone_routes
from api.users import User
from console import i18n, maps
from console.web import Page, Viewer, render

__all__ = [
    "LOW_BATTERY_PCT",
    "MAX_DEVICES",
    "OFFLINE_AFTER",
    "PROBLEMS",
    "contacts_in_ladder_order",
    "health",
    "router",
    "time_ago",
]

router = APIRouter(include_in_schema=False)

# A device not heard from for longer is offline (the rules' device_offline alert waits
# longer: this page shows it first). At or below this battery level, it needs charging.
OFFLINE_AFTER = timedelta(minutes=15)
LOW_BATTERY_PCT = 15
# The health problems, worst first: the page lists devices in this order.
PROBLEMS = ("offline", "never_heard", "battery_low", "not_worn", "disabled")
STATES = ("all", "problems", *PROBLEMS, "ok")
# The device page reads at most this many devices (in pages of the API's largest).
MAX_DEVICES = 5000
_PAGE = 500
RESIDENTS_PER_PAGE = 50
_RECENT_ALERTS = 20
_TIMELINE = 30

ResidentId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def health(device: dict[str, Any], now: datetime) -> list[str]:
    """A device's problems (of PROBLEMS, worst first), [] when it is well. A disabled
    device is only that: it is meant to be silent."""
    if device["status"] == "disabled":
        return ["disabled"]
    problems = []
    if device["last_seen"] is None:
        problems.append("never_heard")
    elif now - device["last_seen"] > OFFLINE_AFTER:
        problems.append("offline")
    if device["battery_pct"] is not None and device["battery_pct"] <= LOW_BATTERY_PCT:
        problems.append("battery_low")
    if device["worn"] is False:
        problems.append("not_worn")
    return problems


def _rank(problems: list[str]) -> int:
    return PROBLEMS.index(problems[0]) if problems else len(PROBLEMS)


def time_ago(language: str) -> Callable[[datetime | None, datetime], str]:
    """How long ago, in words of `language` ('3 hours')."""
    locale = i18n.LANGUAGES[language]

    def ago(then: datetime | None, now: datetime) -> str:
        if then is None:
            return ""
        return format_timedelta(now - then, threshold=1.0, locale=locale)

    return ago


@router.get("/devices", response_class=HTMLResponse)
async def devices_page(
    request: Request,
    conn: Conn,
    viewer: Page,
    state: Annotated[str, Query(max_length=20)] = "all",
) -> HTMLResponse:
    now = datetime.now(UTC)
    found, more = await _all_devices(conn, viewer.user)
    rows = [{**d, "problems": health(d, now)} for d in found]
    rows.sort(key=lambda d: (_rank(d["problems"]), d["resident_name"] or "\uffff", d["device_id"]))
    counts: Counter[str] = Counter(p for d in rows for p in d["problems"])
    counts.update(all=len(rows), problems=sum(1 for d in rows if d["problems"]),
                  ok=sum(1 for d in rows if not d["problems"]))  # fmt: skip
    state = state if state in STATES else "all"
    shown = [d for d in rows if _in_state(d["problems"], state)]
    return render(
        request, "devices.html", viewer=viewer, devices=shown, counts=counts, state=state,
        states=STATES, more=more, now=now, ago=time_ago(viewer.language),
        offline_min=int(OFFLINE_AFTER.total_seconds() // 60), low_pct=LOW_BATTERY_PCT,
    )  # fmt: skip


def _in_state(problems: list[str], state: str) -> bool:
    if state == "all":
        return True
    if state == "problems":
        return bool(problems)
    if state == "ok":
        return not problems
    return state in problems


async def _all_devices(conn: Conn, user: User) -> tuple[list[dict[str, Any]], bool]:
    """The user's devices with their readings, through the API's list, page by page;
    and whether there were more than MAX_DEVICES."""
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < MAX_DEVICES:
        page = await device_routes.list_devices(conn, user, limit=_PAGE, cursor=cursor)
        found += page["items"]
        cursor = page["next"]
        if cursor is None:
            return found, False
    return found, True


@router.get("/residents", response_class=HTMLResponse)
async def residents_page(
    request: Request,
    conn: Conn,
    viewer: Page,
    q: Annotated[str, Query(max_length=100)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    search = "".join(c for c in q if c.isprintable()).strip()
    page = await resident_routes.list_residents(
        conn, viewer.user, q=search or None, area=None, limit=RESIDENTS_PER_PAGE, cursor=cursor
    )
    return render(
        request, "residents.html", viewer=viewer, residents=page["items"], q=search,
        next=page["next"], first=cursor is None, now_year=datetime.now(UTC).year,
    )  # fmt: skip


@router.get("/residents/{resident_id}", response_class=HTMLResponse)
async def resident_page(
    request: Request, conn: Conn, viewer: Page, resident_id: ResidentId
) -> HTMLResponse:
    try:
        context = await resident_context(conn, viewer, resident_id)
    except HTTPException as exc:
        if exc.status_code not in (403, 404):
            raise
        return render(
            request, "problem.html", viewer=viewer, status_code=exc.status_code,
            problem="outside" if exc.status_code == 403 else "missing",
        )  # fmt: skip
    context["map"] = maps.resident_map(
        context["resident"]["name"], context["positions"], context["zones"],
        maps.tiles_of(request),
    )  # fmt: skip
    return render(request, "resident.html", viewer=viewer, **context)


async def resident_context(conn: Conn, viewer: Viewer, resident_id: int) -> dict[str, Any]:
    """Everything the resident page shows, as the API answers it to the viewer (403
    outside their area, 404 unknown, as HTTPException)."""
    user = viewer.user
    resident = await resident_routes.get_resident(conn, user, resident_id)
    now = datetime.now(UTC)
    devices = await device_routes.list_devices(conn, user, resident=resident_id, limit=_PAGE)
    since = now - timedelta(hours=24)
    where = await resident_routes.positions(conn, user, resident_id, since, None, 50)
    alerts = await alert_routes.list_alerts(conn, user, resident=resident_id, limit=_RECENT_ALERTS)
    recent = await resident_routes.timeline(conn, user, resident_id, None, None, _TIMELINE, None)
    return {
        "resident": resident,
        "now": now,
        "now_year": now.year,
        "contacts": await contacts_in_ladder_order(conn, user, resident_id),
        "devices": [{**d, "problems": health(d, now)} for d in devices["items"]],
        "zones": (await zone_routes.get_zones(conn, user, resident_id))["items"],
        "positions": where["items"],
        "alerts": alerts["items"],
        "timeline": recent["items"],
    }


async def contacts_in_ladder_order(
    conn: Conn, user: User, resident_id: int
) -> list[dict[str, Any]]:
    """The resident's contacts in the order of the escalation ladder (its steps, then the
    others, by name), each with `step` (1, 2, ...; None off the ladder)."""
    found = await contact_routes.resident_contacts(conn, user, resident_id)
    ladder = await contact_routes.get_escalation(conn, user, resident_id)
    order = {cid: i for i, step in enumerate(ladder["steps"]) for cid in step["contacts"]}
    items = [{**c, "step": order[c["contact_id"]] + 1 if c["contact_id"] in order else None}
             for c in found["items"]]  # fmt: skip
    return sorted(items, key=lambda c: (order.get(c["contact_id"], len(order)), c["name"]))
