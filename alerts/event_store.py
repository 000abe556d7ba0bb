"""Events in PostgreSQL: the stored history of every canonical event, once.

This module owns the `events` table. Telemetry writes batches with COPY into a
per-connection staging table and moves them with `INSERT ... ON CONFLICT DO NOTHING`:
COPY is the fast path (DESIGN.md measures ~124k rows/s) but cannot skip duplicates
itself. The reads serve the CLI, the bench, the tests and the API.

The table is partitioned by UTC day of device time (migration 0017, alerts/partitions.py,
docs/events-storage.md). Each day's partition has a unique index on event_id, and the
bare ON CONFLICT DO NOTHING takes it as the arbiter, so an event is stored once per day.
A redelivery has the same event_id and device time, hence the same day, except where the
receive time stood in for the device's (no time, an alarm's invalid time salvaged, a time
too far ahead redated by ingest: then ts = received_at), which a redelivery received
later carries later: `store_rows` looks such events up in the days around them first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, cast

import asyncpg

from alerts import partitions
from devices.events import Event, event_to_json

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

log = logging.getLogger(__name__)

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


def event_row(event: Event, wire: bytes | None = None) -> tuple[object, ...]:
    """An event as the row `store_rows` takes (COLUMNS order; the body is its JSON).

    `wire`: the event as it came off carewatch.events.v1 (event_to_json's bytes, which it
    was validated from), stored as it is rather than written again: telemetry does this
    for every event, and writing it cost ~7 % of that process."""
    body = (event_to_json(event) if wire is None else wire).decode()
    return (event.event_id, event.device_id, event.kind, event.ts, event.received_at,
            event.source, body)  # fmt: skip


async def store_rows(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[object, ...]],
    *,
    keep_from: date | None = None,
) -> int:
    """Store rows (in COLUMNS order) once each, in one transaction, and move the devices'
    last-seen times on; returns how many were new.

    A row whose day has no partition yet (a late or early event) gets one added, and the
    batch is stored again: it is never refused for its date. Rows of days before
    `keep_from` (past retention) that have no partition any more are left out and counted
    in `carewatch_events_expired`."""
    rows = _once(rows)
    for _ in range(3):  # a day dropped by retention meanwhile costs one more round
        try:
            return await _store(conn, rows)
        except asyncpg.CheckViolationError:
            # "no partition of relation events found for row" (no SQLSTATE of its own):
            # add the missing days, or re-raise if none is missing.
            changed, rows = await _make_room(conn, rows, keep_from)
            if not changed:
                raise
    return await _store(conn, rows)


_INSERT = f"""
INSERT INTO events ({_COLS}) SELECT {_COLS} FROM events_stage WHERE event_id <> ALL($1::text[])
ON CONFLICT DO NOTHING
"""


async def _store(conn: asyncpg.Connection, rows: list[tuple[object, ...]]) -> int:
    async with conn.transaction():
        redelivered = await _redelivered(conn, rows)
        await conn.execute("TRUNCATE events_stage")
        await conn.copy_records_to_table("events_stage", records=rows, columns=COLUMNS)
        status = await conn.execute(_INSERT, redelivered)
        await conn.execute(_LAST_SEEN)
    return int(status.rsplit(" ", 1)[1])


def _once(rows: Sequence[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The first row of each event_id: a batch may hold an event and its redelivery, and
    when their device times fall on two days the partitions' indexes cannot see both."""
    first: dict[object, tuple[object, ...]] = {}
    for row in rows:
        first.setdefault(row[0], row)
    return list(first.values())


def _ts(row: tuple[object, ...]) -> datetime:
    return cast(datetime, row[3])


# How far apart in time an event and its redelivery may be received: the broker keeps an
# unacknowledged message for ingest's session for 7 days (plumbing/mqtt.py), plus a day.
REDELIVERY_WINDOW = timedelta(days=8)
_STORED_IDS = """
SELECT event_id FROM events WHERE event_id = ANY($1::text[]) AND ts >= $2 AND ts <= $3
"""


async def _redelivered(conn: asyncpg.Connection, rows: list[tuple[object, ...]]) -> list[str]:
    """The rows dated by their receive time (ts = received_at) whose event is already
    stored on a nearby day. Only those can land on another day than their first copy; the
    rest are the partitions' unique indexes' job. Normally there are none and this costs
    nothing; else one index probe per day of the window (pruned at run time)."""
    undated = [r for r in rows if r[3] == r[4]]
    if not undated:
        return []
    times = [_ts(r) for r in undated]
    found = await conn.fetch(
        _STORED_IDS,
        [r[0] for r in undated],
        min(times) - REDELIVERY_WINDOW,
        max(times) + REDELIVERY_WINDOW,
    )
    return [r["event_id"] for r in found]


async def _make_room(
    conn: asyncpg.Connection, rows: list[tuple[object, ...]], keep_from: date | None
) -> tuple[bool, list[tuple[object, ...]]]:
    """Add the partitions the rows' days lack, and leave out rows of days past retention
    that lack one; returns whether anything changed, and the rows to store."""
    days = {partitions.day_of(_ts(r)) for r in rows}
    missing = days - await partitions.existing_days(conn)
    expired = {d for d in missing if keep_from is not None and d < keep_from}
    if expired:
        kept = [r for r in rows if partitions.day_of(_ts(r)) not in expired]
        partitions.EXPIRED.inc(len(rows) - len(kept))
        log.warning(
            "events past retention not stored",
            extra={"events": len(rows) - len(kept), "days": sorted(str(d) for d in expired)},
        )
        rows = kept
    await partitions.add_days(conn, missing - expired, why="on_demand")
    return bool(missing), rows


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
