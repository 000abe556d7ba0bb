"""The rules worker: runs every rule over each event, stores and publishes alert changes.

Rule state lives here, per device, in the worker that owns the device's partition.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from alerts import metrics
from alerts.rules import RULES, Context, Decision, Rule
from alerts.store import apply_decisions
from carewatch.kafka import ALERTS_TOPIC
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
        producer: AIOKafkaProducer,
        rules: tuple[Rule, ...] = RULES,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._pool = pool
        self._producer = producer
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
        await self._publish(changes)

    def _evaluate(self, events: list[Event]) -> list[Decision]:
        ctx = Context(now=self._clock())
        decisions: list[Decision] = []
        for event in events:
            device_state = self._state[event.device_id]
            for rule in self._rules:
                decisions += rule.evaluate(event, device_state.setdefault(rule.name, {}), ctx)
        return decisions

    async def _publish(self, changes: list[dict[str, Any]]) -> None:
        """Publish on carewatch.alerts.v1, retrying until Kafka takes them: the database
        already holds the change, and a retried batch would find nothing new to publish."""
        cap = 0.2
        while True:
            try:
                futures = [
                    await self._producer.send(
                        ALERTS_TOPIC, orjson.dumps(c), key=str(c["alert_id"]).encode()
                    )
                    for c in changes
                ]
                await asyncio.gather(*futures)
                return
            except KafkaError as exc:
                log.warning("publishing alert changes failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(random.uniform(0, cap))
                cap = min(cap * 2, 10.0)
