"""Work orders in PostgreSQL: someone sent to a resident about an alert, and what came of it.

Steps, in this order and each once (派单 → 接单 → 回单 → 回访):
dispatched -> accepted -> reported (with an outcome) -> followed_up (the centre called the
resident back). A step out of order raises `AlertStateError`. An alert may have several
orders (nobody was home; send someone else). Only an unresolved alert gets a new order;
the later steps of an order go on after the alert is resolved, as visits and call-backs do.

Each step locks the alert first (alerts.store.lock_alert: an alert's changes queue up in
the order they happen), then the order, and writes the alert's history row in the same
transaction (alerts.store.record_change): the step is in the alert's history and on
carewatch.alerts.v1 exactly when it is committed.

An order is `overdue` while nobody has reported on it and its `due_at` has passed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from alerts.errors import AlertStateError, WorkOrderNotFound
from alerts.store import lock_alert, record_change

__all__ = [
    "ORDERS",
    "OUTCOMES",
    "STATUSES",
    "accept",
    "alert_of",
    "dispatch",
    "follow_up",
    "get_order",
    "orders_of_alert",
    "report",
    "search_orders",
]

STATUSES = ("dispatched", "accepted", "reported", "followed_up")
# What the visit found (migration 0012 checks them; docs/api.md explains each).
OUTCOMES = ("visited_ok", "assisted", "hospital", "not_home", "false_alarm", "other")

_FIELDS = (
    "order_id", "alert_id", "assignee", "phone", "status", "due_at", "outcome", "created_by",
    "created_at", "dispatch_note", "accepted_at", "accepted_by", "accept_note", "reported_at",
    "reported_by", "report_note", "followed_up_at", "followed_up_by", "follow_up_note",
)  # fmt: skip


def _columns(alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    fields = ", ".join(prefix + f for f in _FIELDS)
    overdue = f"({prefix}status IN ('dispatched', 'accepted') AND {prefix}due_at < now())"
    return f"{fields}, {overdue} AS overdue"


_ORDER = _columns()

_DISPATCH = f"""
INSERT INTO work_orders (alert_id, assignee, phone, due_at, dispatch_note, created_by)
VALUES ($1, $2, $3, now() + $4::interval, $5, $6)
RETURNING {_ORDER}
"""
_ACCEPT = f"""
UPDATE work_orders SET status = 'accepted', accepted_at = now(), accepted_by = $2,
    accept_note = $3
WHERE order_id = $1 RETURNING {_ORDER}
"""
_REPORT = f"""
UPDATE work_orders SET status = 'reported', reported_at = now(), reported_by = $2,
    report_note = $3, outcome = $4
WHERE order_id = $1 RETURNING {_ORDER}
"""
_FOLLOW_UP = f"""
UPDATE work_orders SET status = 'followed_up', followed_up_at = now(), followed_up_by = $2,
    follow_up_note = $3
WHERE order_id = $1 RETURNING {_ORDER}
"""
_LOCK = f"SELECT {_ORDER} FROM work_orders WHERE order_id = $1 FOR UPDATE"

# A list's items also say whom and what the order is about. The area rule is
# alerts/views.py's: an alert lies in its resident's area, '' without one.
_AREA = "coalesce(r.area, '')"
_ITEM = (
    f"{_columns('w')}, a.kind AS alert_kind, r.name AS resident_name, {_AREA} AS area"
)  # fmt: skip
_FROM = (
    "work_orders w JOIN alerts a ON a.alert_id = w.alert_id"
    " LEFT JOIN residents r ON r.resident_id = a.resident_id"
)
_OVERDUE = "(w.status IN ('dispatched', 'accepted') AND w.due_at < now())"

# Each list order: its sort key (the columns a cursor holds, and their types), direction.
# `newest`: the latest dispatched first; `due`: the soonest due (the most overdue) first.
ORDERS: dict[str, tuple[tuple[str, ...], tuple[type, ...], str]] = {
    "newest": (("w.order_id",), (int,), "DESC"),
    "due": (("w.due_at", "w.order_id"), (datetime, int), "ASC"),
}


async def dispatch(
    conn: asyncpg.Connection,
    alert_id: int,
    *,
    by: str,
    assignee: str,
    phone: str | None = None,
    due_in: timedelta,
    note: str | None = None,
) -> dict[str, Any]:
    """Send `assignee` to the alert's resident, to be there within `due_in`; returns the
    new order. A resolved alert raises `AlertStateError` (AlertNotFound: no alert)."""
    by = _required(by, "who dispatches it (by)")
    assignee = _required(assignee, "whom it is dispatched to")
    async with conn.transaction():
        alert = await lock_alert(conn, alert_id)
        if alert["status"] == "resolved":
            raise AlertStateError(f"alert {alert_id} is resolved: nobody can be sent any more")
        row = await conn.fetchrow(_DISPATCH, alert_id, assignee, phone, due_in, note, by)
        order = dict(row)
        due = order["due_at"].astimezone(UTC)
        to = f"{assignee} ({phone})" if phone else assignee
        text = f"order {order['order_id']}: {to}, on site by {due:%Y-%m-%d %H:%M} UTC"
        await record_change(conn, alert, "dispatched", by, _with(text, note))
    return order


async def accept(
    conn: asyncpg.Connection, order_id: int, *, by: str, note: str | None = None
) -> dict[str, Any]:
    """The assignee took the order on (as `by`, the operator who heard so, records it)."""
    return await _advance(
        conn, order_id, by=by, needs="dispatched", change="order_accepted",
        sql=_ACCEPT, args=(note,), text=_with(f"order {order_id} accepted", note),
    )  # fmt: skip


async def report(
    conn: asyncpg.Connection, order_id: int, *, by: str, outcome: str, note: str | None = None
) -> dict[str, Any]:
    """What the visit found (one of `OUTCOMES`), once the order was accepted."""
    if outcome not in OUTCOMES:
        raise AlertStateError(f"unknown outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
    return await _advance(
        conn, order_id, by=by, needs="accepted", change="order_reported",
        sql=_REPORT, args=(note, outcome), text=_with(f"order {order_id}: {outcome}", note),
    )  # fmt: skip


async def follow_up(
    conn: asyncpg.Connection, order_id: int, *, by: str, note: str
) -> dict[str, Any]:
    """The centre called back after the visit (回访), saying what it heard in `note`."""
    note = _required(note, "what the follow-up found (note)")
    return await _advance(
        conn, order_id, by=by, needs="reported", change="followed_up",
        sql=_FOLLOW_UP, args=(note,), text=f"order {order_id}: {note}",
    )  # fmt: skip


async def _advance(
    conn: asyncpg.Connection,
    order_id: int,
    *,
    by: str,
    needs: str,
    change: str,
    sql: str,
    args: tuple[Any, ...],
    text: str,
) -> dict[str, Any]:
    """Take an order from status `needs` one step on with `sql`, and write the alert's
    history row `change`; any other status raises `AlertStateError`."""
    by = _required(by, "who records it (by)")
    async with conn.transaction():
        alert = await lock_alert(conn, await alert_of(conn, order_id))
        order = dict(await conn.fetchrow(_LOCK, order_id))
        if order["status"] != needs:
            step = STATUSES[STATUSES.index(needs) + 1].replace("_", " ")
            raise AlertStateError(
                f"work order {order_id} cannot be {step}: it is {order['status']}"
                f" (it must be {needs} first)"
            )
        row = dict(await conn.fetchrow(sql, order_id, by, *args))
        await record_change(conn, alert, change, by, text)
    return row


async def alert_of(conn: asyncpg.Connection, order_id: int) -> int:
    """The alert an order is about; WorkOrderNotFound."""
    alert_id: int | None = await conn.fetchval(
        "SELECT alert_id FROM work_orders WHERE order_id = $1", order_id
    )
    if alert_id is None:
        raise WorkOrderNotFound(order_id)
    return alert_id


async def get_order(conn: asyncpg.Connection, order_id: int) -> dict[str, Any]:
    """One order; WorkOrderNotFound."""
    row = await conn.fetchrow(f"SELECT {_ORDER} FROM work_orders WHERE order_id = $1", order_id)
    if row is None:
        raise WorkOrderNotFound(order_id)
    return dict(row)


async def orders_of_alert(conn: asyncpg.Connection, alert_id: int) -> list[dict[str, Any]]:
    """Every order about an alert, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_ORDER} FROM work_orders WHERE alert_id = $1 ORDER BY order_id", alert_id
    )
    return [dict(r) for r in rows]


async def search_orders(
    conn: asyncpg.Connection,
    *,
    scope: str,
    status: str | None = None,
    overdue: bool | None = None,
    order: str = "newest",
    after: tuple[Any, ...] | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], tuple[Any, ...] | None]:
    """One page of the orders about alerts in `scope` (a user's area) that match; returns
    the items and, when more follow, the sort key of the last one (the next `after`)."""
    columns, _types, direction = ORDERS[order]
    args: list[Any] = [scope, status, overdue]
    where = [
        f"($1 = '' OR {_AREA} = $1 OR starts_with({_AREA}, $1 || '/'))",
        "($2::text IS NULL OR w.status = $2)",
        f"($3::boolean IS NULL OR {_OVERDUE} = $3)",
    ]
    if after is not None:
        args.extend(after)
        marks = ", ".join(f"${i}" for i in range(4, 4 + len(after)))
        where.append(f"({', '.join(columns)}) {'<' if direction == 'DESC' else '>'} ({marks})")
    args.append(limit + 1)
    sql = (
        f"SELECT {_ITEM} FROM {_FROM} WHERE {' AND '.join(where)}"
        f" ORDER BY {', '.join(f'{c} {direction}' for c in columns)} LIMIT ${len(args)}"
    )
    rows = [dict(r) for r in await conn.fetch(sql, *args)]
    more = len(rows) > limit
    rows = rows[:limit]
    names = [c.removeprefix("w.") for c in columns]
    return rows, (tuple(rows[-1][n] for n in names) if more else None)


def _required(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise AlertStateError(f"{what} must not be empty")
    return value.strip()


def _with(text: str, note: str | None) -> str:
    return f"{text}: {note}" if note else text
