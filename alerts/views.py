"""Alerts as the monitoring centre's API shows them: with the resident's name and area,
filtered, ordered and paged, and one alert with everything recorded about it.

Read-only; the changes are alerts/store.py's. An alert's area is its resident's (an alert
of a device without a resident lies at the top, '': only users of the top area see it).
Areas are compared on `/` boundaries as api/areas.py explains; `_IN_SCOPE` is that rule in
SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from alerts.errors import AlertNotFound
from alerts.outbox import FIELDS, change_body
from alerts.store import ALERT_COLUMNS, get_alert
from alerts.work_orders import orders_of_alert

__all__ = [
    "ORDERS",
    "AlertFilter",
    "acknowledged",
    "alert_view",
    "area_of",
    "changes_after",
    "last_change_id",
    "search_alerts",
]

_AREA = "coalesce(r.area, '')"
_ITEM = ", ".join(f"a.{c.strip()}" for c in ALERT_COLUMNS.split(",")) + (
    f", r.name AS resident_name, {_AREA} AS area, a.assigned_to, a.held_until"
)
_FROM = "alerts a LEFT JOIN residents r ON r.resident_id = a.resident_id"
_STATUS_RANK = "CASE a.status WHEN 'open' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END"
_SEVERITY_RANK = "CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"

# Each order: its sort key (the columns a cursor holds, and their types) and direction.
# `urgent`: what nobody has taken on first, critical before warning, then the longest
# waiting; resolved alerts last. Only stored columns, so a page's key never moves.
ORDERS: dict[str, tuple[tuple[str, ...], tuple[type, ...], str]] = {
    "newest": (("a.opened_at", "a.alert_id"), (datetime, int), "DESC"),
    "urgent": (
        (_STATUS_RANK, _SEVERITY_RANK, "a.opened_at", "a.alert_id"),
        (int, int, datetime, int),
        "ASC",
    ),
}


@dataclass(frozen=True)
class AlertFilter:
    """What a list asks for; None: any. `area`: that area and below. Times are
    `opened_at` in [since, until)."""

    status: str | None = None
    kind: str | None = None
    severity: str | None = None
    resident_id: int | None = None
    area: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def search_alerts(
    conn: asyncpg.Connection,
    *,
    scope: str,
    filters: AlertFilter,
    order: str = "newest",
    after: tuple[Any, ...] | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], tuple[Any, ...] | None]:
    """One page of the alerts in `scope` (a user's area) that match; returns the items and,
    when more follow, the sort key of the last one (for the next page's `after`)."""
    columns, _types, direction = ORDERS[order]
    where, args = _conditions(scope, filters)
    if after is not None:
        marks = ", ".join(_arg(args, value) for value in after)
        where.append(f"({', '.join(columns)}) {'<' if direction == 'DESC' else '>'} ({marks})")
    keys = ", ".join(f"{c} AS _k{i}" for i, c in enumerate(columns))
    sql = (
        f"SELECT {_ITEM}, {keys} FROM {_FROM} WHERE {' AND '.join(where)}"
        f" ORDER BY {', '.join(f'{c} {direction}' for c in columns)} LIMIT {_arg(args, limit + 1)}"
    )
    rows = [dict(r) for r in await conn.fetch(sql, *args)]
    more = len(rows) > limit
    rows = rows[:limit]
    key_of = [tuple(row.pop(f"_k{i}") for i in range(len(columns))) for row in rows]
    return rows, (key_of[-1] if more else None)


def _conditions(scope: str, f: AlertFilter) -> tuple[list[str], list[Any]]:
    args: list[Any] = []
    where = [_in_scope(args, scope)]
    if f.area is not None:
        where.append(_in_scope(args, f.area))
    for column, value in (
        ("a.status", f.status),
        ("a.kind", f.kind),
        ("a.severity", f.severity),
        ("a.resident_id", f.resident_id),
    ):
        if value is not None:
            where.append(f"{column} = {_arg(args, value)}")
    if f.since is not None:
        where.append(f"a.opened_at >= {_arg(args, f.since)}")
    if f.until is not None:
        where.append(f"a.opened_at < {_arg(args, f.until)}")
    return where, args


def _in_scope(args: list[Any], area: str) -> str:
    mark = _arg(args, area)
    return f"({mark} = '' OR {_AREA} = {mark} OR starts_with({_AREA}, {mark} || '/'))"


def _arg(args: list[Any], value: Any) -> str:
    args.append(value)
    return f"${len(args)}"


async def acknowledged(
    conn: asyncpg.Connection, alert_ids: list[int]
) -> dict[int, tuple[datetime | None, str | None]]:
    """When and by whom each of these alerts was acknowledged: {alert_id: (at, by)}."""
    if not alert_ids:
        return {}
    found = await conn.fetch(
        "SELECT alert_id, acknowledged_at, acknowledged_by FROM alerts WHERE alert_id = ANY($1)",
        alert_ids,
    )
    return {r["alert_id"]: (r["acknowledged_at"], r["acknowledged_by"]) for r in found}


async def area_of(conn: asyncpg.Connection, alert_id: int) -> str:
    """The area an alert lies in (its resident's); AlertNotFound."""
    row = await conn.fetchrow(
        f"SELECT {_AREA} AS area FROM {_FROM} WHERE a.alert_id = $1", alert_id
    )
    if row is None:
        raise AlertNotFound(alert_id)
    area: str = row["area"]
    return area


async def alert_view(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any]:
    """One alert (alerts.store.get_alert: lifecycle, events, history) with its resident's
    name and area, its notes, calls and work orders, oldest first, all as of one moment."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        alert = await get_alert(conn, alert_id)
        resident = await conn.fetchrow(
            f"SELECT r.name, {_AREA} AS area FROM {_FROM} WHERE a.alert_id = $1", alert_id
        )
        notes = await conn.fetch(
            "SELECT note_id, at, author, text FROM alert_notes WHERE alert_id = $1"
            " ORDER BY note_id",
            alert_id,
        )
        calls = await conn.fetch(
            "SELECT call_id, at, caller, callee, number, outcome FROM alert_calls"
            " WHERE alert_id = $1 ORDER BY call_id",
            alert_id,
        )
        orders = await orders_of_alert(conn, alert_id)
    return {
        **alert,
        "resident_name": resident["name"],
        "area": resident["area"],
        "notes": [dict(n) for n in notes],
        "calls": [dict(c) for c in calls],
        "work_orders": orders,
    }


# Alert changes as the live stream sends them: carewatch.alerts.v1's shape, plus the
# resident's name and area (to filter by the user's area).
_CHANGES = f"""
SELECT h.history_id, h.at, h.change, h.actor, h.note,
       h.status AS change_status, h.count AS change_count,
       {", ".join(f"a.{c}" for c in FIELDS)}, r.name AS resident_name, {_AREA} AS area
FROM alert_history h JOIN {_FROM} ON a.alert_id = h.alert_id
WHERE h.history_id > $1
  AND (h.history_id > $2 OR (h.history_id < $2 AND h.at > now() - make_interval(secs => $3)))
ORDER BY h.history_id
LIMIT $4
"""


async def changes_after(
    conn: asyncpg.Connection,
    after_id: int,
    *,
    limit: int,
    overlap: int = 0,
    recent_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Alert changes after `after_id`, oldest first; with `overlap`, also those up to that
    many ids before it (not `after_id` itself) written in the last `recent_s` seconds.
    History ids are taken at insert, not at commit: a long transaction can commit id 104
    after id 105 was seen, and the overlap brings it back (readers skip the ids they have)."""
    rows = await conn.fetch(_CHANGES, after_id - overlap, after_id, recent_s, limit)
    return [
        {**change_body(r), "resident_name": r["resident_name"], "area": r["area"]} for r in rows
    ]


async def last_change_id(conn: asyncpg.Connection) -> int:
    """The newest alert change's history id (0 when there is none)."""
    return int(await conn.fetchval("SELECT coalesce(max(history_id), 0) FROM alert_history"))
