"""The telemetry worker: stores every event in PostgreSQL, in batches, once.

Batches are COPYed into a per-connection staging table and moved with
`INSERT ... ON CONFLICT (event_id) DO NOTHING`: COPY is the fast path (DESIGN.md measures
~124k rows/s) but cannot skip duplicates itself.
"""

from __future__ import annotations

import asyncpg
import orjson

from alerts import metrics
from devices.events import Event
from plumbing.consumer import Batch

__all__ = ["COLUMNS", "TelemetryWriter", "prepare_connection"]

COLUMNS = ("event_id", "device_id", "kind", "ts", "received_at", "source", "body")
_COLS = ", ".join(COLUMNS)


async def prepare_connection(conn: asyncpg.Connection) -> None:
    """Pool `init`: the staging table lives as long as the connection."""
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS events_stage AS SELECT {_COLS} FROM events WITH NO DATA"
    )


# The registry's "last seen": when carewatch last heard from each device in the batch.
_LAST_SEEN = """
UPDATE devices d SET last_seen = s.seen
FROM (SELECT device_id, max(received_at) AS seen FROM events_stage GROUP BY device_id) s
WHERE d.device_id = s.device_id AND (d.last_seen IS NULL OR d.last_seen < s.seen)
"""


class TelemetryWriter:
    """The batch handler of the `telemetry` consumer group."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def handle(self, batch: Batch[Event]) -> None:
        rows = [_row(e) for e in batch.items]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("TRUNCATE events_stage")
            await conn.copy_records_to_table("events_stage", records=rows, columns=COLUMNS)
            status = await conn.execute(
                f"INSERT INTO events ({_COLS}) SELECT {_COLS} FROM events_stage "
                "ON CONFLICT (event_id) DO NOTHING"
            )
            await conn.execute(_LAST_SEEN)
        metrics.STORED.inc(int(status.rsplit(" ", 1)[1]))


def _row(event: Event) -> tuple[object, ...]:
    body = orjson.dumps(event.model_dump(mode="json", exclude_none=True)).decode()
    return (
        event.event_id,
        event.device_id,
        event.kind,
        event.ts,
        event.received_at,
        event.source,
        body,
    )
