"""The telemetry worker: stores every event in PostgreSQL, in batches, once
(alerts/event_store.py owns the SQL)."""

from __future__ import annotations

import asyncpg

from alerts import metrics
from alerts.event_store import event_row, store_rows
from devices.events import Event
from plumbing.consumer import Batch

__all__ = ["TelemetryWriter"]


class TelemetryWriter:
    """The batch handler of the `telemetry` consumer group (its pool's connections need
    `event_store.prepare_staging` as their `init`)."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def handle(self, batch: Batch[Event]) -> None:
        rows = [event_row(e) for e in batch.items]
        async with self._pool.acquire() as conn:
            metrics.STORED.inc(await store_rows(conn, rows))
