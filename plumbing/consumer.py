"""A consumer-group loop over the events topic that commits only after its handler succeeds.

The handler gets a batch of decoded events and must be idempotent on `event_id`: after a
crash or a rebalance the uncommitted tail of a partition is delivered again. A failing
handler is retried on the same batch (with backoff) until it succeeds or the process stops;
a batch is never skipped, so a database outage delays alerts but loses none.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError

from alerts import metrics
from devices.events import Event, event_from_json
from plumbing.kafka import EVENTS_TOPIC, make_consumer

__all__ = ["YIELD_EVERY", "Batch", "BatchConsumer", "Handler", "Positions"]

log = logging.getLogger(__name__)

# Records or events a long batch works through before it lets the event loop run other
# tasks: the rules process's alarm lane shares the loop with the rules worker, and an SOS
# should not wait for a whole batch of ordinary events to be decoded and evaluated.
YIELD_EVERY = 200


@dataclass(frozen=True)
class Batch:
    """Decoded events, with where they came from: `partitions[i]` is events[i]'s partition,
    `offsets` the next offset to read per partition once this batch is done."""

    events: list[Event]
    partitions: list[int]
    offsets: dict[int, int]


Handler = Callable[[Batch], Awaitable[None]]


class Positions(Protocol):
    """Where a handler keeps its own record of consumed offsets (e.g. in PostgreSQL, in the
    same transaction as its effects). On assignment the consumer resumes from there, so a
    handler whose state is stored with its offsets sees every record exactly once.

    `revoked` must not return while a batch of those partitions is still being handled:
    the partitions' next owner loads what that batch stores."""

    async def assigned(self, partitions: set[int]) -> dict[int, int]: ...

    async def revoked(self, partitions: set[int]) -> None: ...


class BatchConsumer:
    def __init__(
        self,
        *,
        name: str,
        bootstrap: str,
        group_id: str,
        handler: Handler,
        max_records: int = 5000,
        topic: str = EVENTS_TOPIC,
        positions: Positions | None = None,
        urgent: bool = False,
    ) -> None:
        self._name = name
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._topic = topic
        self._handler = handler
        self._max_records = max_records
        self._positions = positions
        self._urgent = urgent  # fetch for latency rather than throughput (make_consumer)
        # With `positions`: where each assigned partition's records start to count. aiokafka
        # starts fetching before the rebalance listener has loaded them, so records of a
        # partition not in here yet are dropped; the listener's seek fetches them again.
        self._start: dict[int, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0

    @property
    def done(self) -> asyncio.Future[None]:
        """Completes if the loop ends (it only does on stop or on a crash)."""
        assert self._task is not None
        return self._task

    async def start(self) -> None:
        self._consumer = make_consumer(
            self._bootstrap, group_id=self._group_id, urgent=self._urgent
        )
        await self._consumer.start()
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-consume")
        self._task.add_done_callback(self._loop_done)
        log.info("consuming", extra={"worker": self._name, "group": self._group_id})

    async def stop(self, timeout: float = 15.0) -> None:
        """Finish the batch in hand (and commit it), then leave the group."""
        self._stopping = True
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def __aenter__(self) -> BatchConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def lag(self) -> int | None:
        """Records in the assigned partitions not yet fetched (None while unknown)."""
        consumer = self._consumer
        if consumer is None:
            return None
        total = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                return None
            try:
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
            except (TimeoutError, KafkaError):
                return None
            total += max(0, high - position)
        return total

    def health(self) -> dict[str, Any]:
        ok = self._task is not None and not self._task.done()
        assigned = self._consumer.assignment() if self._consumer else set()
        return {"ok": ok, "partitions": len(assigned), "batches": self.batches}

    async def _run(self) -> None:
        assert self._consumer is not None
        while not self._stopping:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=self._max_records)
            if self._positions is not None:
                batch = self._positioned(batch)
            if not batch:
                continue
            records = [r for part in batch.values() for r in part]
            offsets = {tp.partition: part[-1].offset + 1 for tp, part in batch.items()}
            if await self._handle(await self._decode(records, offsets)):
                await self._commit(batch)

    def _positioned(
        self, batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The records at or after their partition's start (none while it is unknown)."""
        kept = {}
        for tp, records in batch.items():
            start = self._start.get(tp.partition)
            if start is not None:
                records = [r for r in records if r.offset >= start]
                if records:
                    kept[tp] = records
        return kept

    async def _decode(self, records: list[ConsumerRecord], offsets: dict[int, int]) -> Batch:
        events, partitions = [], []
        for n, record in enumerate(records, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the process's other consumers run
            try:
                events.append(event_from_json(record.value))
                partitions.append(record.partition)
            except ValidationError as exc:
                # Only ingest writes this topic; a bad record is a bug elsewhere. Skip it
                # loudly rather than block the partition behind it.
                metrics.BAD_RECORDS.labels(self._name).inc()
                log.error(
                    "not a canonical event",
                    extra={
                        "worker": self._name,
                        "partition": record.partition,
                        "offset": record.offset,
                        "error": str(exc)[:300],
                    },
                )
        metrics.CONSUMED.labels(self._name).inc(len(records))
        return Batch(events, partitions, offsets)

    async def _handle(self, batch: Batch) -> bool:
        """Run the handler until it succeeds (True) or we are told to stop (False)."""
        cap = 0.2
        while True:
            started = time.perf_counter()
            try:
                await self._handler(batch)
            except Exception:
                metrics.BATCH_RETRIES.labels(self._name).inc()
                log.exception("batch failed; retrying", extra={"worker": self._name})
                if self._stopping:
                    return False  # uncommitted: redelivered to whoever takes the partitions
                await asyncio.sleep(random.uniform(0, cap))
                cap = min(cap * 2, 10.0)
                continue
            metrics.BATCH_SECONDS.labels(self._name).observe(time.perf_counter() - started)
            metrics.BATCH_SIZE.labels(self._name).observe(len(batch.events))
            self.batches += 1
            return True

    async def _commit(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self._consumer is not None
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions; their new owner re-reads from the last
            # commit, which is safe because handlers are idempotent.
            log.warning("commit failed", extra={"worker": self._name, "error": repr(exc)})

    def _loop_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical(
                "consumer loop crashed", exc_info=task.exception(), extra={"worker": self._name}
            )


class _Rebalance(ConsumerRebalanceListener):
    """Hands partition changes to the handler's `Positions`, and resumes where it says."""

    def __init__(self, owner: BatchConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        owner = self._owner
        if owner._positions is not None and revoked:
            for tp in revoked:
                owner._start.pop(tp.partition, None)
            await owner._positions.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        owner = self._owner
        positions, consumer = owner._positions, owner._consumer
        if positions is None or consumer is None or not assigned:
            return
        starts = await self._starts_retrying(positions, consumer, assigned)
        for tp, start in starts.items():
            consumer.seek(tp, start)
            owner._start[tp.partition] = start
        log.info("partitions assigned", extra={"worker": self._owner._name,
                 "partitions": sorted(tp.partition for tp in assigned)})  # fmt: skip

    async def _starts_retrying(
        self, positions: Positions, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Where each partition starts, asking again until the answer comes. aiokafka only
        logs a listener's exception, and a partition whose start is unknown is never
        applied: giving up would stall its SOS events for good, silently."""
        delay = 0.2
        while True:
            try:
                return await _starts(positions, consumer, assigned)
            except Exception as exc:  # the database or the broker is away: wait for it
                if self._owner._stopping:
                    return {}
                log.warning(
                    "cannot load the assigned partitions' positions; retrying",
                    extra={"worker": self._owner._name, "error": repr(exc), "in_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


async def _starts(
    positions: Positions, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]
) -> dict[TopicPartition, int]:
    stored = await positions.assigned({tp.partition for tp in assigned})
    starts = {}
    for tp in assigned:
        start = stored.get(tp.partition)
        if start is None:  # never stored: where the group's commit (or the topic) starts
            start = await consumer.committed(tp)
        if start is None:
            start = (await consumer.beginning_offsets([tp]))[tp]
        starts[tp] = start
    return starts
