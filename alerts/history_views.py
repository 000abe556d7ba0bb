"""A resident's history as the API shows it: the timeline of events and alerts, and
positions and vitals downsampled for charts.

Read-only, over the `events` table (alerts/event_store.py writes it) and `alerts`. Events
are found by the resident's devices through `events_device_ts` (device_id, ts DESC), alerts
by the resident through `alerts_resident_opened`; so a timeline costs index range scans
however many events are stored. Charts are bucketed in SQL (`date_bin`), so at most
`max_points` rows per series leave the database whatever the range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from devices.events import COMMON_FIELDS

__all__ = [
    "VITALS",
    "bucket_width",
    "last_positions",
    "latest_battery",
    "positions",
    "timeline",
    "vitals",
]

VITALS = ("heart_rate_bpm", "spo2_pct", "systolic_mmhg", "diastolic_mmhg", "body_temp_c",
          "respiratory_rate_bpm")  # fmt: skip

# Keyset: newest first by (at, type, id), the same key for events and alerts, so one page
# continues exactly after the last item whichever kind it was. Text compares bytewise
# (COLLATE "C") as Python's sort of the merged page does.
_EVENTS = """
SELECT event_id, device_id, kind, ts, received_at, body FROM events
WHERE device_id = ANY($1) AND ts >= $2 AND ts < $3
  AND ($4::timestamptz IS NULL
       OR (ts, 'event' COLLATE "C", event_id COLLATE "C") < ($4, $5::text, $6::text))
ORDER BY ts DESC, event_id COLLATE "C" DESC LIMIT $7
"""
_ALERTS = """
SELECT alert_id, device_id, kind, severity, status, summary, opened_at, lat, lon FROM alerts
WHERE resident_id = $1 AND opened_at >= $2 AND opened_at < $3
  AND ($4::timestamptz IS NULL
       OR (opened_at, 'alert' COLLATE "C", lpad(alert_id::text, 19, '0') COLLATE "C")
          < ($4, $5::text, $6::text))
ORDER BY opened_at DESC, alert_id DESC LIMIT $7
"""
# The last position of each bucket, a real fix before a last-known one (`fix: false`).
_POSITIONS = """
SELECT DISTINCT ON (bucket) bucket, ts AS at, device_id, lat, lon, accuracy_m, fix FROM (
    SELECT date_bin($4::interval, ts, $2) AS bucket, ts, device_id,
           (body->>'lat')::float8 AS lat, (body->>'lon')::float8 AS lon,
           (body->>'accuracy_m')::float8 AS accuracy_m,
           coalesce((body->>'fix')::boolean, true) AS fix
    FROM events
    WHERE device_id = ANY($1) AND ts >= $2 AND ts < $3
      AND kind IN ('location', 'sos', 'fall') AND body ? 'lat'
) p ORDER BY bucket, fix DESC, ts DESC
"""
_VITALS = """
SELECT m.metric, date_bin($4::interval, e.ts, $2) AS bucket,
       avg((e.body->>m.metric)::float8) AS avg, min((e.body->>m.metric)::float8) AS min,
       max((e.body->>m.metric)::float8) AS max, count(*) AS n
FROM events e CROSS JOIN unnest($5::text[]) AS m(metric)
WHERE e.device_id = ANY($1) AND e.ts >= $2 AND e.ts < $3 AND e.kind = 'vitals'
  AND e.body ? m.metric
GROUP BY 1, 2 ORDER BY 1, 2
"""

# The latest battery report of each device within 30 days (the bound keeps the index walk
# short for a device that never reports one).
_BATTERY = """
SELECT d.device_id, b.battery_pct FROM unnest($1::text[]) AS d(device_id)
JOIN LATERAL (
    SELECT (e.body->>'battery_pct')::float8 AS battery_pct FROM events e
    WHERE e.device_id = d.device_id AND e.kind = 'battery' AND e.ts > now() - interval '30 days'
    ORDER BY e.ts DESC LIMIT 1
) b ON true
"""

# The newest position of each resident in a scope (of any of their devices), since a bound:
# one short walk of `events_device_positions` per device (migration 0013), however many
# other events a device sends.
_LAST_POSITIONS = """
SELECT * FROM (
    SELECT DISTINCT ON (r.resident_id) r.resident_id, r.name, r.area, d.device_id,
           p.ts AS at, p.lat, p.lon, p.fix
    FROM residents r
    JOIN devices d ON d.resident_id = r.resident_id
    JOIN LATERAL (
        SELECT e.ts, (e.body->>'lat')::float8 AS lat, (e.body->>'lon')::float8 AS lon,
               coalesce((e.body->>'fix')::boolean, true) AS fix
        FROM events e
        WHERE e.device_id = d.device_id AND e.ts >= $2
          AND e.kind IN ('location', 'sos', 'fall') AND e.body ? 'lat'
        ORDER BY e.ts DESC LIMIT 1
    ) p ON true
    WHERE ($1 = '' OR r.area = $1 OR starts_with(r.area, $1 || '/'))
      AND p.lat IS NOT NULL AND p.lon IS NOT NULL
    ORDER BY r.resident_id, p.ts DESC
) last ORDER BY name, resident_id LIMIT $3
"""

Key = tuple[datetime, str, str]


async def timeline(
    conn: asyncpg.Connection,
    *,
    resident_id: int,
    device_ids: Sequence[str],
    since: datetime,
    until: datetime,
    before: Key | None = None,
    limit: int = 200,
) -> tuple[list[dict[str, Any]], Key | None]:
    """Events of `device_ids` (device time in [since, until)) and alerts of the resident
    (opened in it), newest first, after the key `before`; returns a page and, when more
    follow, the key of its last item."""
    args = (since, until, *(before or (None, None, None)), limit + 1)
    events = await conn.fetch(_EVENTS, list(device_ids), *args)
    alerts = await conn.fetch(_ALERTS, resident_id, *args)
    items = sorted(
        [_event_item(r) for r in events] + [_alert_item(r) for r in alerts],
        key=_key, reverse=True,
    )  # fmt: skip
    more = len(items) > limit
    items = items[:limit]
    return items, (_key(items[-1]) if more else None)


async def latest_battery(conn: asyncpg.Connection, device_ids: Sequence[str]) -> dict[str, float]:
    """Each device's battery level as its latest report of the last 30 days said."""
    rows = await conn.fetch(_BATTERY, list(device_ids))
    return {r["device_id"]: r["battery_pct"] for r in rows}


async def last_positions(
    conn: asyncpg.Connection, *, scope: str, since: datetime, limit: int
) -> list[dict[str, Any]]:
    """The newest position since `since` of each resident in `scope` (an area and below),
    by name, at most `limit`: resident_id, name, area, device_id, at (device time), lat,
    lon, fix (false: a last-known position)."""
    rows = await conn.fetch(_LAST_POSITIONS, scope, since, limit)
    return [dict(r) for r in rows]


def bucket_width(since: datetime, until: datetime, max_points: int) -> timedelta:
    """The bucket width (whole seconds, at least 1) that splits [since, until) into at
    most `max_points` buckets."""
    span = (until - since).total_seconds()
    return timedelta(seconds=max(1, math.ceil(span / max_points)))


async def positions(
    conn: asyncpg.Connection,
    device_ids: Sequence[str],
    *,
    since: datetime,
    until: datetime,
    width: timedelta,
) -> list[dict[str, Any]]:
    """The last position per bucket of `width` (a fix if the bucket has one), oldest
    first: `bucket` (its start), `at` (the position's device time), lat, lon, accuracy_m,
    fix, device_id."""
    rows = await conn.fetch(_POSITIONS, list(device_ids), since, until, width)
    return [dict(r) for r in rows]


async def vitals(
    conn: asyncpg.Connection,
    device_ids: Sequence[str],
    *,
    since: datetime,
    until: datetime,
    width: timedelta,
) -> dict[str, list[dict[str, Any]]]:
    """Per vital sign with readings: avg, min, max and count per bucket, oldest first."""
    rows = await conn.fetch(_VITALS, list(device_ids), since, until, width, list(VITALS))
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        point = {"at": r["bucket"], "avg": r["avg"], "min": r["min"], "max": r["max"],
                 "n": r["n"]}  # fmt: skip
        series.setdefault(r["metric"], []).append(point)
    return series


def _event_item(row: asyncpg.Record) -> dict[str, Any]:
    body = row["body"]
    data: dict[str, Any] = orjson.loads(body) if isinstance(body, str | bytes) else dict(body)
    return {
        "type": "event", "at": row["ts"], "id": row["event_id"], "event_id": row["event_id"],
        "device_id": row["device_id"], "kind": row["kind"], "received_at": row["received_at"],
        "data": {k: v for k, v in data.items() if k not in COMMON_FIELDS},
    }  # fmt: skip


def _alert_item(row: asyncpg.Record) -> dict[str, Any]:
    # The id is zero-padded so that text order is number order (the keyset compares text).
    return {"type": "alert", "at": row["opened_at"], "id": f"{row['alert_id']:019d}",
            **{k: row[k] for k in ("alert_id", "device_id", "kind", "severity", "status",
                                   "summary", "lat", "lon")}}  # fmt: skip


def _key(item: dict[str, Any]) -> Key:
    return (item["at"], item["type"], item["id"])
