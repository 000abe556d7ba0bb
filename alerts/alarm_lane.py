"""The alarm lane: SOS and fall alerts raised as soon as ingest has the event.

The rules worker reads each partition of the events topic in order, in batches, and stores
a batch's rule state before it reads on; under load an SOS waits there behind thousands of
ordinary events and the batch before it. So ingest also writes every `sos` and `fall`
event to `carewatch.alarms.v1` (a copy: the events topic stays complete), and this lane,
in the rules process with a consumer group of its own, raises their alerts from there.

It only raises. Raising needs no rule state (an alarm always alerts); cancelling a fall
does, and stays with the rules worker, which sees every alarm on the events topic too and
decides the same raises again. The store applies a decision key once, so whichever lane
comes first raises the alert and the other changes nothing, in either order and after
any replay.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from alerts.rules import Decision
from alerts.rules.alarms import raised_by
from alerts.rules_worker import log_change
from alerts.store import apply_decisions
from devices.events import Event
from plumbing.consumer import Batch

__all__ = ["AlarmLane"]


class AlarmLane:
    """The batch handler of the alarm lane's consumer (on `carewatch.alarms.v1`)."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def handle(self, batch: Batch[Event]) -> None:
        await self.raise_alarms(batch.items)

    async def raise_alarms(self, events: list[Event]) -> list[dict[str, Any]]:
        """Raise the alerts of these events' alarms (in one transaction); returns the alerts
        that changed (none where another lane was first). The alarm fast path
        (ingest/alarm_reader.py) raises through here too."""
        decisions: list[Decision] = [d for d in map(raised_by, events) if d is not None]
        if not decisions:
            return []
        async with self._pool.acquire() as conn:
            changes = await apply_decisions(conn, decisions)
        for change in changes:
            log_change(change)
        return changes
