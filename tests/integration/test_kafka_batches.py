"""plumbing/kafka_batches.py against tansu: ingest's records go out in batches of its own.

What ingest relies on: every record is reported written exactly once, with its token; it
lands on the partition `send` would have chosen (a device's records stay together and in
order); a full batch goes out early. (tansu cannot add partitions to a topic: that
`KafkaBatches` uses partitions added later is tested in tests/unit/plumbing.)"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from carewatch.embedded import EmbeddedStack
from plumbing.kafka import CachedPartitioner, make_producer
from plumbing.kafka_batches import KafkaBatches

pytestmark = pytest.mark.integration

PARTITIONS = 3


async def _topic(bootstrap: str, partitions: int = PARTITIONS) -> str:
    topic = f"test-batches-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()
    return topic


async def _read(bootstrap: str, topic: str, count: int) -> dict[int, list[tuple[bytes, bytes]]]:
    """Every record of `topic`, by partition, in offset order (waits for `count`)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    try:
        async with asyncio.timeout(20):
            while sum(map(len, found.values())) < count:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    found[tp.partition] += [(r.key, r.value) for r in records]  # type: ignore[misc]
    finally:
        await consumer.stop()
    return found


class _Written:
    """What `on_written` was told, and an event per expected total."""

    def __init__(self, expected: int) -> None:
        self.tokens: list[int] = []
        self.batches = 0
        self.errors: list[BaseException] = []
        self.expected = expected
        self.all = asyncio.Event()
        self.some = asyncio.Event()

    def __call__(self, tokens: list[int], error: BaseException | None) -> None:
        if error is not None:
            self.errors.append(error)
        self.tokens += tokens
        self.batches += 1
        self.some.set()
        if len(self.tokens) >= self.expected:
            self.all.set()


async def _producer(bootstrap: str) -> AIOKafkaProducer:
    producer = make_producer(bootstrap)
    await producer.start()
    return producer


async def test_each_record_is_reported_once_and_lands_where_send_would_put_it(
    stack: EmbeddedStack,
) -> None:
    bootstrap = stack.kafka_bootstrap
    topic = await _topic(bootstrap)
    producer = await _producer(bootstrap)
    written = _Written(expected=600)
    batches = KafkaBatches(producer, linger_s=0.05, on_written=written)
    runner = asyncio.create_task(batches.run())
    try:
        await batches.prepare([topic])
        for n in range(600):  # 20 devices, 30 records each, in order
            batches.add(topic, f"device-{n % 20}".encode(), str(n).encode(), n)
        async with asyncio.timeout(20):
            await written.all.wait()
    finally:
        runner.cancel()
        await producer.stop()
    assert sorted(written.tokens) == list(range(600)) and not written.errors
    assert written.batches <= 2 * PARTITIONS  # one per partition per linger, not per record
    stored = await _read(bootstrap, topic, 600)
    place = CachedPartitioner()
    for partition, records in stored.items():
        for key, _ in records:
            assert place(key, list(range(PARTITIONS)), []) == partition
        for device in {key for key, _ in records}:
            values = [int(value) for key, value in records if key == device]
            assert values == sorted(values)  # a device's records in the order added


async def test_a_full_batch_goes_out_before_the_linger_ends(stack: EmbeddedStack) -> None:
    bootstrap = stack.kafka_bootstrap
    topic = await _topic(bootstrap, partitions=1)
    producer = await _producer(bootstrap)
    written = _Written(expected=40)
    batches = KafkaBatches(producer, linger_s=3600, on_written=written)  # the linger never ends
    runner = asyncio.create_task(batches.run())
    try:
        await batches.prepare([topic])
        value = b"x" * 10_000  # 40 of them: more than one batch (128 KiB) holds
        for n in range(40):
            batches.add(topic, b"k", value, n)
        async with asyncio.timeout(20):
            await written.some.wait()
    finally:
        runner.cancel()
        await producer.stop()
    assert 0 < len(written.tokens) < 40  # the full batches were written; the open one waits
    assert written.tokens == list(range(len(written.tokens)))
