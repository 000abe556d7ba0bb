"""Alerts in PostgreSQL: applying rule decisions idempotently, and reading them back.

Idempotency: `alert_events` has one row per (event, alert kind). An event seen before
(a Kafka redelivery, a device resending the same message) changes nothing, so counts stay
true and a replay after a crash raises nothing twice.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from alerts.rules import Decision, RaiseAlert, ResolveAlert

__all__ = ["ALERT_COLUMNS", "apply_decisions", "list_alerts"]

ALERT_COLUMNS = (
    "alert_id, kind, device_id, severity, status, count, first_ts, last_ts, "
    "opened_at, updated_at, lat, lon, summary"
)

_SEEN = "SELECT 1 FROM alert_events WHERE event_id = $1 AND kind = $2"

_UPSERT = f"""
INSERT INTO alerts AS a (kind, device_id, severity, first_ts, last_ts, lat, lon, summary)
VALUES ($1, $2, $3, $4, $4, $5, $6, $7)
ON CONFLICT (device_id, kind) WHERE status <> 'resolved' DO UPDATE SET
    count = a.count + 1,
    first_ts = least(a.first_ts, EXCLUDED.first_ts),
    last_ts = greatest(a.last_ts, EXCLUDED.last_ts),
    -- the newest known position wins; an event without one keeps the old one
    lat = CASE WHEN EXCLUDED.lat IS NOT NULL AND EXCLUDED.last_ts >= a.last_ts
               THEN EXCLUDED.lat ELSE coalesce(a.lat, EXCLUDED.lat) END,
    lon = CASE WHEN EXCLUDED.lon IS NOT NULL AND EXCLUDED.last_ts >= a.last_ts
               THEN EXCLUDED.lon ELSE coalesce(a.lon, EXCLUDED.lon) END,
    updated_at = now()
RETURNING {ALERT_COLUMNS}, (xmax = 0) AS inserted
"""

_LINK = "INSERT INTO alert_events (event_id, kind, alert_id, ts) VALUES ($1, $2, $3, $4)"


async def apply_decisions(
    conn: asyncpg.Connection, decisions: list[Decision]
) -> list[dict[str, Any]]:
    """Apply in one transaction; returns the alerts that changed, each with its `change`."""
    changes = []
    async with conn.transaction():
        for decision in decisions:
            if isinstance(decision, ResolveAlert):
                continue  # the alert lifecycle (resolution) comes with issue 4's store
            change = await _raise(conn, decision)
            if change is not None:
                changes.append(change)
    return changes


async def _raise(conn: asyncpg.Connection, d: RaiseAlert) -> dict[str, Any] | None:
    if await conn.fetchval(_SEEN, d.key, d.kind):
        return None
    row = await conn.fetchrow(
        _UPSERT, d.kind, d.device_id, d.severity, d.ts, d.lat, d.lon, d.summary
    )
    await conn.execute(_LINK, d.key, d.kind, row["alert_id"], d.ts)
    alert = dict(row)
    alert["change"] = "opened" if alert.pop("inserted") else "repeated"
    alert["event_id"] = d.key
    return alert


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
