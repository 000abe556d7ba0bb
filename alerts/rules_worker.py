"""The rules worker: runs every rule over each event, and the timer rules on a clock
(`tick`, called by a plumbing.ticker.Ticker).

Rule state is per device, kept by the worker that owns the device's partition, and stored
in PostgreSQL with the alert changes it caused and the offsets consumed, in one
transaction (alerts/rule_state.py). Rules work on copies; the copies replace the state
only once stored, so a failed, retried batch starts from the state it started from.
Publishing the changes on carewatch.alerts.v1 is the outbox's job (alerts/outbox.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from alerts import metrics
from alerts.resident_config import ResidentConfigs
from alerts.rule_state import RuleStateStore
from alerts.rules import RULES, Context, Decision, Rule
from alerts.store import apply_decisions
from devices.events import ALARM_KINDS, Event
from plumbing.consumer import YIELD_EVERY, Batch

__all__ = ["RulesWorker", "log_change"]

log = logging.getLogger(__name__)

States = dict[str, dict[str, Any]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RulesWorker:
    """The batch handler of the `rules` consumer group, and its timer."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        store: RuleStateStore,
        configs: ResidentConfigs,
        rules: tuple[Rule, ...] = RULES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._pool = pool
        self._store = store
        self._configs = configs
        self._rules = rules
        self._clock = clock or _utcnow

    async def handle(self, batch: Batch[Event]) -> None:
        async with self._store.lock:
            now = self._clock()
            work: States = {}
            contexts: dict[str, Context] = {}
            decisions: list[Decision] = []
            owned = self._store.owned  # a rebalance may have taken partitions since the fetch
            applied = self._store.applied  # ... or given them back, loading older positions
            for n, (event, record) in enumerate(zip(batch.items, batch.sources, strict=True)):
                if n % YIELD_EVERY == YIELD_EVERY - 1:
                    await asyncio.sleep(0)  # the alarm lane shares this loop
                partition = record.partition
                if partition not in owned or applied(partition, record.offset):
                    continue
                device = event.device_id
                if device not in work:
                    work[device] = self._store.state(device, partition)
                    contexts[device] = Context(now=now, config=self._configs.for_device(device))
                state, ctx = work[device], contexts[device]
                for rule in self._rules:
                    decisions += rule.evaluate(event, state.setdefault(rule.name, {}), ctx)
            offsets = {
                p: o for p, o in batch.offsets.items() if p in owned and not applied(p, o - 1)
            }
            await self._commit(decisions, work, offsets)

    async def tick(self) -> None:
        """Run the timer rules for every device this worker owns (silence is a signal)."""
        timers = [rule for rule in self._rules if rule.tick is not None]
        async with self._store.lock:
            now = self._clock()
            work: States = {}
            decisions: list[Decision] = []
            for device in self._store.devices():
                state = self._store.state(device)
                ctx = Context(now=now, config=self._configs.for_device(device))
                found: list[Decision] = []
                for rule in timers:
                    assert rule.tick is not None
                    found += rule.tick(state.setdefault(rule.name, {}), ctx)
                if found or state != self._store.state(device):
                    work[device] = state
                    decisions += found
            if work:
                await self._commit(decisions, work, {})

    async def _commit(
        self, decisions: list[Decision], work: States, offsets: dict[int, int]
    ) -> None:
        # SOS and fall first, in a transaction of their own: storing a large batch's state
        # takes hundreds of milliseconds that an alarm should not wait for. Safe because
        # decisions are idempotent (their keys are stored with them): if the process dies
        # before the second transaction, the replayed batch re-decides the same alarms
        # and applying them again changes nothing.
        alarms = [d for d in decisions if d.kind in ALARM_KINDS]
        changes = []
        if alarms:
            async with self._pool.acquire() as conn:
                changes += await apply_decisions(conn, alarms)
        rest = [d for d in decisions if d.kind not in ALARM_KINDS]
        async with self._pool.acquire() as conn, conn.transaction():
            changes += await apply_decisions(conn, rest)
            stored = await self._store.save(conn, work, offsets)
        self._store.put(stored, offsets)
        for change in changes:
            log_change(change)


def log_change(change: dict[str, Any]) -> None:
    metrics.ALERTS.labels(change["kind"], change["change"]).inc()
    log.info(
        "alert " + change["change"],
        extra={
            "alert_id": change["alert_id"],
            "kind": change["kind"],
            "device_id": change["device_id"],
            "count": change["count"],
        },
    )
