"""The consumer loop against real tansu: a handler with its own stored positions sees each
record once, from its stored position, and never before that position is known."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from alerts.consumer import Batch, BatchConsumer
from carewatch.embedded import EmbeddedStack
from devices.events import make_event
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


async def _topic_with(bootstrap: str, records: int) -> str:
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
    finally:
        await producer.stop()
    return topic


async def test_records_count_only_from_the_stored_position_once_it_is_loaded(
    stack: EmbeddedStack,
) -> None:
    topic = await _topic_with(stack.kafka_bootstrap, 5)
    positions = SlowPositions({0: 3})  # records 0-2 were applied before a restart
    seen: list[tuple[bool, int]] = []

    async def handler(batch: Batch) -> None:
        for offset in range(batch.offsets[0] - len(batch.events), batch.offsets[0]):
            seen.append((positions.loaded, offset))

    consumer = BatchConsumer(
        name="test",
        bootstrap=stack.kafka_bootstrap,
        group_id=f"test-{topic}",
        topic=topic,
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

    async def handler(batch: Batch) -> None:
        for offset in range(batch.offsets[0] - len(batch.events), batch.offsets[0]):
            seen.append((positions.loaded, offset))

    consumer = BatchConsumer(
        name="test", bootstrap=stack.kafka_bootstrap, group_id=f"test-{topic}", topic=topic,
        handler=handler, positions=positions,
    )  # fmt: skip
    async with consumer:
        await eventually(lambda: asyncio.sleep(0, len(seen) >= 2))
    assert seen == [(True, 1), (True, 2)] and positions.failures == 0
