"""A consumer-group loop over one Kafka topic that commits only after its handler succeeds.

Records are decoded by the caller's `decode` (the canonical `Event` for the events topic,
an alert change for carewatch.alerts.v1, ...), and the handler gets them in batches. It
must be idempotent: after a crash or a rebalance the uncommitted tail of a partition is
delivered again, and a batch may be applied again in parts (below).

What happens when a batch fails depends on why:
- the database is unavailable or busy (plumbing.db.TRANSIENT): the batch is
  retried, with backoff, for as long as that lasts; nothing is skipped, so an outage delays
  alerts but loses none;
- anything else (a string PostgreSQL refuses, a date no arithmetic survives, a bug): after
  `attempts` tries the batch is split in halves, each applied on its own, down to the
  record that fails alone. That record is poison: retrying cannot help, and holding its
  partition would hold every later record of its devices, SOS presses included.

Poison (a record that cannot be decoded, or cannot be applied) goes to the `on_poison`
hook, the one place that decides what happens to it (in the processes: the dead-letter
topic, plumbing.dead_letters; by default: logged and counted), and the partition moves on.

A worker that stops making progress (one batch in hand for longer than `stall_after_s`)
turns its health to not ok and shows in `carewatch_worker_batch_age_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter, Gauge, Histogram

from plumbing.backoff import Backoff
from plumbing.component import Component
from plumbing.db import TRANSIENT
from plumbing.kafka import make_consumer

__all__ = [
    "UNAPPLIABLE",
    "UNDECODABLE",
    "YIELD_EVERY",
    "Batch",
    "BatchConsumer",
    "Decoder",
    "Handler",
    "PoisonHook",
    "Positions",
    "log_poison",
]

log = logging.getLogger(__name__)

# Records or events a long batch works through before it lets the event loop run other
# tasks: the rules process's alarm lane shares the loop with the rules worker, and an SOS
# should not wait for a whole batch of ordinary events to be decoded and evaluated.
YIELD_EVERY = 200

CONSUMED = Counter("carewatch_worker_records", "Kafka records consumed", ["worker"])
BAD_RECORDS = Counter(
    "carewatch_worker_bad_records", "records that could not be decoded (poison)", ["worker"]
)
BATCH_SIZE = Histogram(
    "carewatch_worker_batch_size",
    "records per handled batch",
    ["worker"],
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000),
)
BATCH_SECONDS = Histogram("carewatch_worker_batch_seconds", "time to handle one batch", ["worker"])
BATCH_RETRIES = Counter(
    "carewatch_worker_batch_retries", "batches retried after an error", ["worker"]
)
BATCH_SPLITS = Counter(
    "carewatch_worker_batch_splits", "failing batches split to find a poison record", ["worker"]
)
BATCH_AGE = Gauge(
    "carewatch_worker_batch_age_seconds",
    "how long the batch in hand has been waiting to be applied (0: none in hand)",
    ["worker"],
)

# Reasons a record is set aside (the `reason` of its dead-letter record).
UNDECODABLE = "undecodable_record"
UNAPPLIABLE = "unappliable_record"

T = TypeVar("T")


@dataclass(frozen=True)
class Batch(Generic[T]):
    """Decoded records, with where they came from: `sources[i]` is the record items[i] was
    decoded from, `offsets` the next offset to read per partition once this batch is done."""

    items: list[T]
    sources: list[ConsumerRecord]
    offsets: dict[int, int]

    @property
    def partitions(self) -> list[int]:
        """`partitions[i]` is items[i]'s partition."""
        return [record.partition for record in self.sources]

    def halves(self) -> tuple[Batch[T], Batch[T]]:
        """The first and second half, each with the offsets of what it holds."""
        middle = len(self.items) // 2
        return self._part(0, middle), self._part(middle, len(self.items))

    def _part(self, start: int, end: int) -> Batch[T]:
        sources = self.sources[start:end]
        offsets: dict[int, int] = {}
        for record in sources:
            offsets[record.partition] = max(offsets.get(record.partition, 0), record.offset + 1)
        return Batch(self.items[start:end], sources, offsets)


Decoder = Callable[[bytes], T]
Handler = Callable[[Batch[T]], Awaitable[None]]
# (worker name, the record, why it cannot be used, reason: UNDECODABLE or UNAPPLIABLE)
PoisonHook = Callable[[str, ConsumerRecord, BaseException, str], Awaitable[None]]


async def log_poison(
    worker: str, record: ConsumerRecord, error: BaseException, reason: str
) -> None:
    """The default poison policy: say loudly which record was skipped and why."""
    BAD_RECORDS.labels(worker).inc()
    log.error(
        "record skipped",
        extra={
            "worker": worker,
            "reason": reason,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "error": str(error)[:300],
        },
    )


class Positions(Protocol):
    """Where a handler keeps its own record of consumed offsets (e.g. in PostgreSQL, in the
    same transaction as its effects). On assignment the consumer resumes from there, so a
    handler whose state is stored with its offsets sees every record exactly once.

    `revoked` must not return while a batch of those partitions is still being handled:
    the partitions' next owner loads what that batch stores."""

    async def assigned(self, partitions: set[int]) -> dict[int, int]: ...

    async def revoked(self, partitions: set[int]) -> None: ...


class BatchConsumer(Component, Generic[T]):
    """Reads `topic` in `group_id`, hands decoded batches to `handler`, commits after it.

    Its loop may not restart after an unexpected exception (supervision fails the process
    instead): records fetched but not committed would be skipped by a restarted loop.
    """

    def __init__(
        self,
        *,
        name: str,
        bootstrap: str,
        group_id: str,
        topic: str,
        decode: Decoder[T],
        handler: Handler[T],
        max_records: int = 5000,
        positions: Positions | None = None,
        urgent: bool = False,
        on_poison: PoisonHook = log_poison,
        attempts: int = 3,
        stall_after_s: float = 120.0,
        stop_timeout: float = 15.0,
    ) -> None:
        super().__init__(name=name)
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._topic = topic
        self._decode_one = decode
        self._handler = handler
        self._max_records = max_records
        self._positions = positions
        self._urgent = urgent  # fetch for latency rather than throughput (make_consumer)
        self._on_poison = on_poison
        self._attempts = attempts
        self._stall_after_s = stall_after_s
        self._stop_timeout = stop_timeout
        self._in_hand_since: float | None = None  # monotonic time the batch in hand arrived
        # With `positions`: where each assigned partition's records start to count. aiokafka
        # starts fetching before the rebalance listener has loaded them, so records of a
        # partition not in here yet are dropped; the listener's seek fetches them again.
        self._start: dict[int, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self.batches = 0

    async def _open(self) -> None:
        self._consumer = make_consumer(
            self._bootstrap, group_id=self._group_id, urgent=self._urgent
        )
        await self._consumer.start()
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        BATCH_AGE.labels(self.name).set_function(self._batch_age)
        self.supervise("consume", self._run, restart=False)
        log.info("consuming", extra={"worker": self.name, "group": self._group_id})

    async def _close(self) -> None:
        """Finish the batch in hand (and commit it), then leave the group."""
        await self.finish_tasks(self._stop_timeout)
        await self.cancel_tasks()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

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
        assigned = self._consumer.assignment() if self._consumer else set()
        doc = {**super().health(), "partitions": len(assigned), "batches": self.batches}
        age = self._batch_age()
        if age > self._stall_after_s:
            doc.update(ok=False, stalled_s=round(age, 1))
        return doc

    def _batch_age(self) -> float:
        since = self._in_hand_since
        return 0.0 if since is None else time.monotonic() - since

    async def _run(self) -> None:
        assert self._consumer is not None
        while not self.stopping:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=self._max_records)
            if self._positions is not None:
                batch = self._positioned(batch)
            if not batch:
                continue
            records = [r for part in batch.values() for r in part]
            offsets = {tp.partition: part[-1].offset + 1 for tp, part in batch.items()}
            self._in_hand_since = time.monotonic()
            try:
                if await self._apply(await self._decode(records, offsets)):
                    await self._commit(batch)
            finally:
                self._in_hand_since = None

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

    async def _decode(self, records: list[ConsumerRecord], offsets: dict[int, int]) -> Batch[T]:
        items: list[T] = []
        sources: list[ConsumerRecord] = []
        for n, record in enumerate(records, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the process's other consumers run
            try:
                items.append(self._decode_one(record.value))
                sources.append(record)
            except Exception as exc:  # a decoder is pure: it raises only on bad input
                await self._on_poison(self.name, record, exc, UNDECODABLE)
        CONSUMED.labels(self.name).inc(len(records))
        return Batch(items, sources, offsets)

    async def _apply(self, batch: Batch[T]) -> bool:
        """Apply the batch, setting aside what cannot be applied; False if told to stop
        before it was done (nothing is committed then: it is read again)."""
        error = await self._retrying(batch)
        if error is None:
            return True
        if self.stopping:
            return False
        if len(batch.items) == 1:
            await self._on_poison(self.name, batch.sources[0], error, UNAPPLIABLE)
            return True
        BATCH_SPLITS.labels(self.name).inc()
        log.warning(
            "batch keeps failing; applying it in halves to find the record that fails",
            extra={"worker": self.name, "records": len(batch.items), "error": repr(error)},
        )
        first, second = batch.halves()
        return await self._apply(first) and await self._apply(second)

    async def _retrying(self, batch: Batch[T]) -> BaseException | None:
        """Run the handler until it succeeds (None), the process stops, or it has failed
        `attempts` times for a reason a retry does not cure (the error)."""
        backoff = Backoff(first=0.2, cap=10.0)
        failures = 0
        while True:
            started = time.perf_counter()
            try:
                await self._handler(batch)
            except Exception as exc:
                BATCH_RETRIES.labels(self.name).inc()
                failures += 0 if isinstance(exc, TRANSIENT) else 1
                log.warning(
                    "batch failed", exc_info=True, extra={"worker": self.name, "tries": failures}
                )
                if self.stopping or failures >= self._attempts:
                    return exc
                await backoff.wait()
                continue
            BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
            BATCH_SIZE.labels(self.name).observe(len(batch.items))
            self.batches += 1
            return None

    async def _commit(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self._consumer is not None
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions; their new owner re-reads from the last
            # commit, which is safe because handlers are idempotent.
            log.warning("commit failed", extra={"worker": self.name, "error": repr(exc)})


class _Rebalance(ConsumerRebalanceListener):
    """Hands partition changes to the handler's `Positions`, and resumes where it says."""

    def __init__(self, owner: BatchConsumer[Any]) -> None:
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
        log.info("partitions assigned", extra={"worker": self._owner.name,
                 "partitions": sorted(tp.partition for tp in assigned)})  # fmt: skip

    async def _starts_retrying(
        self, positions: Positions, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Where each partition starts, asking again until the answer comes. aiokafka only
        logs a listener's exception, and a partition whose start is unknown is never
        applied: giving up would stall its SOS events for good, silently."""
        backoff = Backoff(first=0.2, cap=10.0)
        while True:
            try:
                return await _starts(positions, consumer, assigned)
            except Exception as exc:  # the database or the broker is away: wait for it
                if self._owner.stopping:
                    return {}
                log.warning(
                    "cannot load the assigned partitions' positions; retrying",
                    extra={"worker": self._owner.name, "error": repr(exc)},
                )
                await backoff.wait()


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
