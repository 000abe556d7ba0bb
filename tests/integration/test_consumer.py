"""The consumer loop against real tansu: a handler with its own stored positions sees each
record once, from its stored position, and never before that position is known."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from carewatch.embedded import EmbeddedStack
from devices.events import Event, event_from_json, make_event
from plumbing.consumer import UNAPPLIABLE, Batch, BatchConsumer
from plumbing.kafka import make_producer
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


class SlowPositions:
    """Positions as PostgreSQL would hold them, but slow to load: aiokafka fetches in the
    meantime, which is where a handler used to see records with its state still unloaded."""

    def __init__(self, stored: dict[int, int]) -> None:
        self.stored = stored
        self.loaded = False

    async def assigned(self, partitions: set[int]) -> dict[int, int]:
        await asyncio.sleep(1.0)  # the load, not a synchronisation: the test awaits records
        self.loaded = True
        return {p: o for p, o in self.stored.items() if p in partitions}

    async def revoked(self, partitions: set[int]) -> None:
        self.loaded = False


async def _topic_with(bootstrap: str, records: int, raw: tuple[bytes, ...] = ()) -> str:
    """A new topic with `records` heartbeat events, then the `raw` records."""
    topic = f"test-consumer-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for n in range(records):
            now = datetime.now(UTC)
            event = make_event(
                device_id="d1", kind="heartbeat", ts=now, received_at=now, source="test",
                fields={}, msg_id=str(n),
            )  # fmt: skip
            await producer.send_and_wait(topic, event.model_dump_json().encode(), key=b"d1")
        for value in raw:
            await producer.send_and_wait(topic, value, key=b"d1")
    finally:
        await producer.stop()
    return topic


async def test_records_count_only_from_the_stored_position_once_it_is_loaded(
    stack: EmbeddedStack,
) -> None:
    topic = await _topic_with(stack.kafka_bootstrap, 5)
    positions = SlowPositions({0: 3})  # records 0-2 were applied before a restart
    seen: list[tuple[bool, int]] = []

    async def handler(batch: Batch[Event]) -> None:
        for offset in range(batch.offsets[0] - len(batch.items), batch.offsets[0]):
            seen.append((positions.loaded, offset))

    consumer = BatchConsumer(
        name="test",
        bootstrap=stack.kafka_bootstrap,
        group_id=f"test-{topic}",
        topic=topic,
        decode=event_from_json,
        handler=handler,
        positions=positions,
    )
    async with consumer:
        await eventually(lambda: asyncio.sleep(0, len(seen) >= 2))
    assert seen == [(True, 3), (True, 4)]


class FailingPositions(SlowPositions):
    """The database is away for the first attempts to load the positions."""

    def __init__(self, stored: dict[int, int], failures: int) -> None:
        super().__init__(stored)
        self.failures = failures

    async def assigned(self, partitions: set[int]) -> dict[int, int]:
        if self.failures:
            self.failures -= 1
            raise OSError("connection refused")
        self.loaded = True
        return {p: o for p, o in self.stored.items() if p in partitions}


async def test_records_wait_for_positions_that_fail_to_load_and_are_not_lost(
    stack: EmbeddedStack,
) -> None:
    topic = await _topic_with(stack.kafka_bootstrap, 3)
    positions = FailingPositions({0: 1}, failures=2)
    seen: list[tuple[bool, int]] = []

    async def handler(batch: Batch[Event]) -> None:
        for offset in range(batch.offsets[0] - len(batch.items), batch.offsets[0]):
            seen.append((positions.loaded, offset))

    consumer = BatchConsumer(
        name="test", bootstrap=stack.kafka_bootstrap, group_id=f"test-{topic}", topic=topic,
        decode=event_from_json, handler=handler, positions=positions,
    )  # fmt: skip
    async with consumer:
        await eventually(lambda: asyncio.sleep(0, len(seen) >= 2))
    assert seen == [(True, 1), (True, 2)] and positions.failures == 0


async def test_any_decoder_and_a_poison_record_goes_to_the_hook_not_in_the_way(
    stack: EmbeddedStack,
) -> None:
    """A consumer of JSON objects (not events): a record that does not decode reaches the
    poison hook, and the records after it are handled and committed."""
    topic = await _topic_with(stack.kafka_bootstrap, 0, raw=(b'{"n": 1}', b"\x00junk", b'{"n": 2}'))
    handled: list[int] = []
    poisoned: list[tuple[str, int, str]] = []

    async def handler(batch: Batch[dict[str, int]]) -> None:
        handled.extend(item["n"] for item in batch.items)

    async def on_poison(
        worker: str, record: ConsumerRecord, error: BaseException, reason: str
    ) -> None:
        poisoned.append((worker, record.offset, type(error).__name__))

    consumer: BatchConsumer[dict[str, int]] = BatchConsumer(
        name="json", bootstrap=stack.kafka_bootstrap, group_id=f"test-{topic}", topic=topic,
        decode=orjson.loads, handler=handler, on_poison=on_poison,
    )  # fmt: skip
    async with consumer:
        await eventually(lambda: asyncio.sleep(0, handled == [1, 2]))
    assert poisoned == [("json", 1, "JSONDecodeError")]


async def test_a_record_the_handler_keeps_failing_on_is_set_aside_and_costs_only_itself(
    stack: EmbeddedStack,
) -> None:
    values = [b'{"n": %d}' % n for n in range(1, 8)]
    topic = await _topic_with(stack.kafka_bootstrap, 0, raw=tuple(values))
    applied: set[int] = set()
    poisoned: list[tuple[int, str]] = []

    async def handler(batch: Batch[dict[str, int]]) -> None:
        if any(item["n"] == 5 for item in batch.items):
            raise ValueError("a value the database refuses")  # not an outage
        applied.update(item["n"] for item in batch.items)

    async def on_poison(
        worker: str, record: ConsumerRecord, error: BaseException, reason: str
    ) -> None:
        poisoned.append((record.offset, reason))

    consumer: BatchConsumer[dict[str, int]] = BatchConsumer(
        name="json", bootstrap=stack.kafka_bootstrap, group_id=f"test-{topic}", topic=topic,
        decode=orjson.loads, handler=handler, on_poison=on_poison, attempts=2,
    )  # fmt: skip
    async with consumer:
        await eventually(lambda: asyncio.sleep(0, applied == {1, 2, 3, 4, 6, 7}))
        await eventually(lambda: asyncio.sleep(0, consumer.health()["batches"] > 0))
    assert poisoned == [(4, UNAPPLIABLE)]


@pytest.mark.parametrize(
    "outage",
    [
        ConnectionRefusedError("PostgreSQL is restarting"),
        asyncpg.DeadlockDetectedError("the alarm lane and the rules worker crossed"),
    ],
    ids=["unavailable", "deadlock"],
)
async def test_an_unavailable_or_busy_database_is_waited_for_never_taken_for_poison(
    stack: EmbeddedStack, outage: Exception
) -> None:
    topic = await _topic_with(stack.kafka_bootstrap, 0, raw=(b'{"n": 1}',))
    over = asyncio.Event()
    applied: list[int] = []
    poisoned: list[int] = []

    async def handler(batch: Batch[dict[str, int]]) -> None:
        if not over.is_set():
            raise outage
        applied.extend(item["n"] for item in batch.items)

    async def on_poison(
        worker: str, record: ConsumerRecord, error: BaseException, reason: str
    ) -> None:
        poisoned.append(record.offset)

    consumer: BatchConsumer[dict[str, int]] = BatchConsumer(
        name="json", bootstrap=stack.kafka_bootstrap, group_id=f"test-{topic}", topic=topic,
        decode=orjson.loads, handler=handler, on_poison=on_poison, attempts=1,
        stall_after_s=0.5,
    )  # fmt: skip
    async with consumer:
        stalled = await eventually(
            lambda: asyncio.sleep(0, consumer.health().get("stalled_s")), within=20
        )
        assert consumer.health()["ok"] is False and stalled >= 0.5
        over.set()  # the database is back
        await eventually(lambda: asyncio.sleep(0, applied == [1]))
        await eventually(lambda: asyncio.sleep(0, consumer.health()["ok"]))
    assert poisoned == []
