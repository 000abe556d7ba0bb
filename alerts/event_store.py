"""Events in PostgreSQL: the stored history of every canonical event, once.

This module owns the `events` table. Telemetry writes batches with COPY into a
per-connection staging table and moves them with `INSERT ... ON CONFLICT (event_id) DO
NOTHING`: COPY is the fast path (DESIGN.md measures ~124k rows/s) but cannot skip
duplicates itself. The reads serve the CLI, the bench, the tests and the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from devices.events import Event

__all__ = [
    "COLUMNS",
    "count_by_device",
    "event_row",
    "events_of_device",
    "has_event",
    "latest_readings",
    "prepare_staging",
    "received_at",
    "sources",
    "store_rows",
]

COLUMNS = ("event_id", "device_id", "kind", "ts", "received_at", "source", "body")
_COLS = ", ".join(COLUMNS)

# The registry's "last seen": when carewatch last heard from each device in the batch.
_LAST_SEEN = """
UPDATE devices d SET last_seen = s.seen
FROM (SELECT device_id, max(received_at) AS seen FROM events_stage GROUP BY device_id) s
WHERE d.device_id = s.device_id AND (d.last_seen IS NULL OR d.last_seen < s.seen)
"""


async def prepare_staging(conn: asyncpg.Connection) -> None:
    """Pool `init` for writers: the staging table lives as long as the connection."""
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS events_stage AS SELECT {_COLS} FROM events WITH NO DATA"
    )


def event_row(event: Event) -> tuple[object, ...]:
    """An event as the row `store_rows` takes (COLUMNS order; the body is its JSON)."""
    body = orjson.dumps(event.model_dump(mode="json", exclude_none=True)).decode()
    return (event.event_id, event.device_id, event.kind, event.ts, event.received_at,
            event.source, body)  # fmt: skip


async def store_rows(conn: asyncpg.Connection, rows: Sequence[tuple[object, ...]]) -> int:
    """Store rows (in COLUMNS order) once each, in one transaction, and move the devices'
    last-seen times on; returns how many were new."""
    async with conn.transaction():
        await conn.execute("TRUNCATE events_stage")
        await conn.copy_records_to_table("events_stage", records=rows, columns=COLUMNS)
        status = await conn.execute(
            f"INSERT INTO events ({_COLS}) SELECT {_COLS} FROM events_stage "
            "ON CONFLICT (event_id) DO NOTHING"
        )
        await conn.execute(_LAST_SEEN)
    return int(status.rsplit(" ", 1)[1])


async def events_of_device(conn: asyncpg.Connection, device_id: str) -> list[dict[str, Any]]:
    """A device's stored events, by device time."""
    rows = await conn.fetch("SELECT * FROM events WHERE device_id = $1 ORDER BY ts", device_id)
    return [dict(r) for r in rows]


# The newest battery and worn reading of each device (index events_device_readings).
_READINGS = """
SELECT d.device_id, b.battery_pct, b.ts AS battery_at, w.worn, w.ts AS worn_at
FROM unnest($1::text[]) AS d (device_id)
LEFT JOIN LATERAL (
    SELECT (body->>'battery_pct')::float8 AS battery_pct, ts FROM events e
    WHERE e.device_id = d.device_id AND e.kind = 'battery' ORDER BY ts DESC LIMIT 1
) b ON true
LEFT JOIN LATERAL (
    SELECT (body->>'worn')::boolean AS worn, ts FROM events e
    WHERE e.device_id = d.device_id AND e.kind = 'worn' ORDER BY ts DESC LIMIT 1
) w ON true
"""


async def latest_readings(
    conn: asyncpg.Connection, device_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Each device's newest stored battery level and worn state, by device time:
    {device_id: {battery_pct, battery_at, worn, worn_at}} (None where it never said)."""
    rows = await conn.fetch(_READINGS, list(device_ids))
    return {r["device_id"]: dict(r) for r in rows}


async def has_event(conn: asyncpg.Connection, device_id: str, kind: str) -> bool:
    """Whether any event of this kind is stored for the device."""
    found = await conn.fetchval(
        "SELECT 1 FROM events WHERE device_id = $1 AND kind = $2 LIMIT 1", device_id, kind
    )
    return found is not None


async def count_by_device(
    conn: asyncpg.Connection, device_ids: list[str], kind: str | None = None
) -> dict[str, int]:
    """How many events (of `kind`, or of any) are stored per device (devices with none are
    left out)."""
    rows = await conn.fetch(
        "SELECT device_id, count(*) AS n FROM events"
        " WHERE device_id = ANY($1) AND ($2::text IS NULL OR kind = $2) GROUP BY 1",
        device_ids,
        kind,
    )
    return {r["device_id"]: r["n"] for r in rows}


async def sources(conn: asyncpg.Connection, device_ids: list[str]) -> list[str]:
    """The sources (ingest paths: native, owntracks, watch, ...) the devices' stored events
    came through, sorted."""
    rows = await conn.fetch(
        "SELECT DISTINCT source FROM events WHERE device_id = ANY($1) ORDER BY 1", device_ids
    )
    return [r["source"] for r in rows]


async def received_at(
    conn: asyncpg.Connection, device_ids: list[str], kind: str
) -> dict[str, datetime]:
    """When ingest received each device's (first) event of this kind."""
    rows = await conn.fetch(
        "SELECT device_id, min(received_at) AS at FROM events"
        " WHERE kind = $2 AND device_id = ANY($1) GROUP BY device_id",
        device_ids,
        kind,
    )
    return {r["device_id"]: r["at"] for r in rows}
