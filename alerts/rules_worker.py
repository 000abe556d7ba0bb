"""The rules worker: runs every rule over each event and stores the alert changes.

Rule state lives here, per device, in the worker that owns the device's partition.
Publishing the changes on carewatch.alerts.v1 is the outbox's job (alerts/outbox.py): the
store writes each change to `alert_history` in the same transaction as the change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from alerts import metrics
from alerts.rules import RULES, Context, Decision, Rule
from alerts.store import apply_decisions
from devices.events import Event

__all__ = ["RulesWorker"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RulesWorker:
    """The batch handler of the `rules` consumer group."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        rules: tuple[Rule, ...] = RULES,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._pool = pool
        self._rules = rules
        self._clock = clock
        self._state: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)

    async def handle(self, events: list[Event]) -> None:
        decisions = self._evaluate(events)
        if not decisions:
            return
        async with self._pool.acquire() as conn:
            changes = await apply_decisions(conn, decisions)
        for change in changes:
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

    def _evaluate(self, events: list[Event]) -> list[Decision]:
        ctx = Context(now=self._clock())
        decisions: list[Decision] = []
        for event in events:
            device_state = self._state[event.device_id]
            for rule in self._rules:
                decisions += rule.evaluate(event, device_state.setdefault(rule.name, {}), ctx)
        return decisions
