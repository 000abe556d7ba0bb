"""Alerts in PostgreSQL: rule decisions and operator actions applied, and read back.

Lifecycle: open -> acknowledged -> resolved, or open -> resolved. A resolved alert is
final: a later alarm of the same subject and kind opens a new alert.

Subject: one unresolved alert per subject and kind. For the alarms (`PER_RESIDENT`) the
subject is the device's resident, so an SOS from a pendant and one from a watch of the same
person are one alert; for every other kind, and for devices without a resident, it is the
device, because those conditions clear per device.

Every change writes its `alert_history` row in the same transaction as the change. That
table is also the outbox of carewatch.alerts.v1 (alerts/outbox.py), so a change is
published if and only if it was committed, whatever crashes in between.

Idempotency: `alert_events` has one row per (decision key, alert kind), for raises and
resolutions alike. A key seen before (a Kafka redelivery, a device resending the same
message, a timer firing twice) changes nothing, so counts stay true and a replay after a
crash neither raises nor resolves anything twice. A resolution that found nothing to
resolve is remembered too (without an alert), so its replay cannot close a newer alert.
Keys are claimed (inserted) before anything is applied, so two transactions deciding the
same key at once (the alarm lane and the rules worker) apply it once: the second waits for
the first and then finds the key taken.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from alerts.errors import AlertNotFound, AlertStateError
from alerts.rules import Decision, RaiseAlert, ResolveAlert

__all__ = [
    "ALERT_COLUMNS",
    "LIFECYCLE_COLUMNS",
    "PER_RESIDENT",
    "RULES_ACTOR",
    "acknowledge",
    "alerts_of_device",
    "alerts_of_resident",
    "apply_decisions",
    "count_alerts",
    "get_alert",
    "list_alerts",
    "resolve",
    "sos_opened_at",
    "unalerted_alarms",
]

# What `alerts list` shows (its JSON lines are documented; keep them stable).
ALERT_COLUMNS = (
    "alert_id, kind, device_id, severity, status, count, first_ts, last_ts, "
    "opened_at, updated_at, lat, lon, summary, resident_id"
)
LIFECYCLE_COLUMNS = "acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution"
_FULL = f"{ALERT_COLUMNS}, {LIFECYCLE_COLUMNS}"

# The actor of automatic changes in the history.
RULES_ACTOR = "rules"

# Kinds with one alert per person rather than per device.
PER_RESIDENT = frozenset({"sos", "fall"})

_RESIDENT = "SELECT resident_id FROM devices WHERE device_id = $1"

# Claims every key of a batch at once, in a fixed order: a key another transaction is
# applying (the alarm lane and the rules worker decide the same alarm raises) makes this one
# wait for it and then skip the key; the fixed order keeps two claimers from deadlocking.
_CLAIM = """
INSERT INTO alert_events (event_id, kind, ts)
SELECT key, kind, ts FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS d(key, kind, ts)
ORDER BY key, kind
ON CONFLICT DO NOTHING
RETURNING event_id, kind
"""

_UPSERT = f"""
INSERT INTO alerts AS a (kind, device_id, severity, first_ts, last_ts, lat, lon, summary,
                         resident_id, subject)
VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)
ON CONFLICT (subject, kind) WHERE status <> 'resolved' DO UPDATE SET
    count = a.count + 1,
    -- a repeat may escalate (vitals: warning band, then critical), never de-escalate
    severity = CASE WHEN 'critical' IN (a.severity, EXCLUDED.severity) THEN 'critical'
                    WHEN 'warning' IN (a.severity, EXCLUDED.severity) THEN 'warning'
                    ELSE 'info' END,
    summary = CASE WHEN EXCLUDED.severity <> a.severity AND EXCLUDED.severity = 'critical'
                   THEN EXCLUDED.summary ELSE a.summary END,
    first_ts = least(a.first_ts, EXCLUDED.first_ts),
    last_ts = greatest(a.last_ts, EXCLUDED.last_ts),
    -- the newest known position wins; an event without one keeps the old one
    lat = CASE WHEN EXCLUDED.lat IS NOT NULL AND EXCLUDED.last_ts >= a.last_ts
               THEN EXCLUDED.lat ELSE coalesce(a.lat, EXCLUDED.lat) END,
    lon = CASE WHEN EXCLUDED.lon IS NOT NULL AND EXCLUDED.last_ts >= a.last_ts
               THEN EXCLUDED.lon ELSE coalesce(a.lon, EXCLUDED.lon) END,
    updated_at = now()
RETURNING {_FULL}, (xmax = 0) AS inserted
"""

# The partial unique index allows one unresolved alert per (subject, kind): at most one row.
_AUTO_RESOLVE = f"""
UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = '{RULES_ACTOR}',
    resolution = $3, updated_at = now()
WHERE subject = $1 AND kind = $2 AND status <> 'resolved'
RETURNING {_FULL}
"""

_LINK = "UPDATE alert_events SET alert_id = $3 WHERE event_id = $1 AND kind = $2"

_HISTORY = """
INSERT INTO alert_history (alert_id, change, actor, note, status, count)
VALUES ($1, $2, $3, $4, $5, $6)
"""

_LOCK = f"SELECT {_FULL} FROM alerts WHERE alert_id = $1 FOR UPDATE"

_ACKNOWLEDGE = f"""
UPDATE alerts SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = $2,
    updated_at = now()
WHERE alert_id = $1
RETURNING {_FULL}
"""

_RESOLVE = f"""
UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = $2, resolution = $3,
    updated_at = now()
WHERE alert_id = $1
RETURNING {_FULL}
"""


async def apply_decisions(
    conn: asyncpg.Connection, decisions: list[Decision]
) -> list[dict[str, Any]]:
    """Apply in one transaction, in order; returns the alerts that changed, each with its
    `change` ('opened', 'repeated', 'resolved') and the decision's key as `event_id`."""
    if not decisions:
        return []
    changes = []
    async with conn.transaction():
        claimed = await conn.fetch(
            _CLAIM,
            [d.key for d in decisions], [d.kind for d in decisions], [d.ts for d in decisions],
        )  # fmt: skip
        new = {(r["event_id"], r["kind"]) for r in claimed}
        for decision in decisions:
            if (decision.key, decision.kind) not in new:
                continue  # seen before
            new.discard((decision.key, decision.kind))  # the same key twice in one batch
            if isinstance(decision, ResolveAlert):
                change = await _auto_resolve(conn, decision)
            else:
                change = await _raise(conn, decision)
            if change is not None:
                changes.append(change)
    return changes


async def _raise(conn: asyncpg.Connection, d: RaiseAlert) -> dict[str, Any]:
    resident, subject = await _subject(conn, d.kind, d.device_id)
    row = await conn.fetchrow(
        _UPSERT, d.kind, d.device_id, d.severity, d.ts, d.lat, d.lon, d.summary, resident,
        subject,
    )  # fmt: skip
    await conn.execute(_LINK, d.key, d.kind, row["alert_id"])
    alert = dict(row)
    alert["change"] = "opened" if alert.pop("inserted") else "repeated"
    await _record(conn, alert, alert["change"], RULES_ACTOR, d.summary)
    alert["event_id"] = d.key
    return alert


async def _auto_resolve(conn: asyncpg.Connection, d: ResolveAlert) -> dict[str, Any] | None:
    _, subject = await _subject(conn, d.kind, d.device_id)
    row = await conn.fetchrow(_AUTO_RESOLVE, subject, d.kind, d.reason)
    if row is None:
        return None  # nothing open: the key is remembered (claimed), nothing else happens
    await conn.execute(_LINK, d.key, d.kind, row["alert_id"])
    alert = dict(row)
    await _record(conn, alert, "resolved", RULES_ACTOR, d.reason)
    alert["change"] = "resolved"
    alert["event_id"] = d.key
    return alert


async def _subject(conn: asyncpg.Connection, kind: str, device_id: str) -> tuple[int | None, str]:
    """The device's resident (None if it has none) and whom the alert is about."""
    resident = await conn.fetchval(_RESIDENT, device_id)
    if kind in PER_RESIDENT and resident is not None:
        return resident, f"resident:{resident}"
    return resident, f"device:{device_id}"


async def _record(
    conn: asyncpg.Connection, alert: dict[str, Any], change: str, actor: str, note: str | None
) -> None:
    await conn.execute(
        _HISTORY, alert["alert_id"], change, actor, note, alert["status"], alert["count"]
    )


async def acknowledge(
    conn: asyncpg.Connection, alert_id: int, *, by: str, note: str | None = None
) -> dict[str, Any]:
    """An operator takes an open alert on. Acknowledging an acknowledged alert changes
    nothing and returns it as it is; a resolved one raises `AlertStateError`."""
    by = _required(by, "who acknowledges it (by)")
    async with conn.transaction():
        alert = await _locked(conn, alert_id)
        if alert["status"] == "acknowledged":
            return alert
        if alert["status"] == "resolved":
            raise AlertStateError(f"alert {alert_id} cannot be acknowledged: {_resolved(alert)}")
        row = dict(await conn.fetchrow(_ACKNOWLEDGE, alert_id, by))
        await _record(conn, row, "acknowledged", by, note)
    return row


async def resolve(conn: asyncpg.Connection, alert_id: int, *, by: str, note: str) -> dict[str, Any]:
    """An operator closes an open or acknowledged alert, saying why (`note`). A resolved
    alert raises `AlertStateError`: it stays as it was closed."""
    by = _required(by, "who resolves it (by)")
    note = _required(note, "a resolution note")
    async with conn.transaction():
        alert = await _locked(conn, alert_id)
        if alert["status"] == "resolved":
            raise AlertStateError(f"alert {alert_id} is already resolved: {_resolved(alert)}")
        row = dict(await conn.fetchrow(_RESOLVE, alert_id, by, note))
        await _record(conn, row, "resolved", by, note)
    return row


async def get_alert(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any]:
    """One alert with its lifecycle columns, `events` (how many events and timer keys are
    linked to it) and `history` (its changes, oldest first). Raises `AlertNotFound`."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            f"SELECT {_FULL}, (SELECT count(*) FROM alert_events e"
            " WHERE e.alert_id = a.alert_id) AS events FROM alerts a WHERE alert_id = $1",
            alert_id,
        )
        if row is None:
            raise AlertNotFound(alert_id)
        history = await conn.fetch(
            "SELECT history_id, at, change, actor, note, status, count, published_at"
            " FROM alert_history WHERE alert_id = $1 ORDER BY history_id",
            alert_id,
        )
    return {**dict(row), "history": [dict(h) for h in history]}


async def list_alerts(
    conn: asyncpg.Connection, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first; `status` filters (open / acknowledged / resolved)."""
    rows = await conn.fetch(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE ($1::text IS NULL OR status = $1) "
        "ORDER BY opened_at DESC, alert_id DESC LIMIT $2",
        status,
        limit,
    )
    return [dict(r) for r in rows]


async def _locked(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(_LOCK, alert_id)
    if row is None:
        raise AlertNotFound(alert_id)
    return dict(row)


def _required(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise AlertStateError(f"{what} must not be empty")
    return value.strip()


def _resolved(alert: dict[str, Any]) -> str:
    at = alert["resolved_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"resolved by {alert['resolved_by']} at {at} ({alert['resolution']})"


# Stored alarms that no decision key links to an alert; a cancel (a `fall` with
# `cancelled`) raises nothing by itself. Uses the partial index events_alarms_received.
_UNALERTED = """
SELECT e.body::text AS body FROM events e
WHERE e.kind IN ('sos', 'fall') AND e.received_at >= $1 AND e.received_at < $2
  AND NOT coalesce((e.body ->> 'cancelled')::boolean, false)
  AND NOT EXISTS (SELECT 1 FROM alert_events a WHERE a.event_id = e.event_id AND a.kind = e.kind)
ORDER BY e.received_at
LIMIT $3
"""


async def unalerted_alarms(
    conn: asyncpg.Connection, *, since: datetime, until: datetime, limit: int
) -> list[str]:
    """The canonical JSON of stored sos/fall events received in [since, until) that raised
    no alert (alerts/reconcile.py), oldest first."""
    return [r["body"] for r in await conn.fetch(_UNALERTED, since, until, limit)]


async def alerts_of_device(conn: asyncpg.Connection, device_id: str) -> list[dict[str, Any]]:
    """Every alert raised for a device, oldest first, with its lifecycle columns."""
    rows = await conn.fetch(
        f"SELECT {_FULL} FROM alerts WHERE device_id = $1 ORDER BY alert_id", device_id
    )
    return [dict(r) for r in rows]


async def alerts_of_resident(conn: asyncpg.Connection, resident_id: int) -> list[dict[str, Any]]:
    """Every alert raised for a resident's devices, oldest first, with its lifecycle columns."""
    rows = await conn.fetch(
        f"SELECT {_FULL} FROM alerts WHERE resident_id = $1 ORDER BY alert_id", resident_id
    )
    return [dict(r) for r in rows]


async def count_alerts(conn: asyncpg.Connection, status: str) -> int:
    """How many alerts have this status (open / acknowledged / resolved)."""
    count: int = await conn.fetchval("SELECT count(*) FROM alerts WHERE status = $1", status)
    return count


async def sos_alert_counts(
    conn: asyncpg.Connection, device_ids: list[str]
) -> dict[str, tuple[int, datetime]]:
    """Per device with any: how many SOS alerts it raised, and when the first opened."""
    rows = await conn.fetch(
        "SELECT device_id, count(*) AS n, min(opened_at) AS opened_at FROM alerts"
        " WHERE kind = 'sos' AND device_id = ANY($1) GROUP BY device_id",
        device_ids,
    )
    return {r["device_id"]: (r["n"], r["opened_at"]) for r in rows}


async def sos_opened_at(conn: asyncpg.Connection, device_ids: list[str]) -> dict[str, Any]:
    """When each device's (first) SOS alert was opened: {device_id: opened_at}."""
    rows = await conn.fetch(
        "SELECT device_id, min(opened_at) AS opened_at FROM alerts"
        " WHERE kind = 'sos' AND device_id = ANY($1) GROUP BY device_id",
        device_ids,
    )
    return {r["device_id"]: r["opened_at"] for r in rows}
