"""The telemetry worker: stores every event in PostgreSQL, in batches, once
(alerts/event_store.py owns the SQL), and keeps the day partitions of `events`: days added
ahead, days past retention dropped (alerts/partitions.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from alerts import metrics, partitions
from alerts.event_store import event_row, store_rows
from devices.events import Event
from plumbing.consumer import Batch

__all__ = ["MAINTENANCE_INTERVAL_S", "PartitionMaintenance", "TelemetryWriter"]

# How often the partitions are looked after. A round costs a catalog query when there is
# nothing to do; a day is added days ahead and dropped once, so minutes are plenty.
MAINTENANCE_INTERVAL_S = 600.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TelemetryWriter:
    """The batch handler of the `telemetry` consumer group (its pool's connections need
    `event_store.prepare_staging` as their `init`). Events dated on a day already past
    `retention_days` (0: keep everything) are counted, not stored."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        retention_days: int = 0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._pool = pool
        self._retention_days = retention_days
        self._clock = clock

    async def handle(self, batch: Batch[Event]) -> None:
        rows = [event_row(e, r.value) for e, r in zip(batch.items, batch.sources, strict=True)]
        keep_from = partitions.keep_from(self._clock(), self._retention_days)
        async with self._pool.acquire() as conn:
            metrics.STORED.inc(await store_rows(conn, rows, keep_from=keep_from))


class PartitionMaintenance:
    """The `tick` of the telemetry process's maintenance Ticker: one round of
    `partitions.maintain` (days ahead added, days past retention dropped)."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        retention_days: int,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._pool = pool
        self._retention_days = retention_days
        self._clock = clock

    async def tick(self) -> partitions.Maintenance:
        async with self._pool.acquire() as conn:
            return await partitions.maintain(
                conn, now=self._clock(), retention_days=self._retention_days
            )
