"""KafkaBatches follows a topic that gained partitions (tansu, which the integration tests
run against, cannot add partitions to a topic, so this uses a stand-in for the producer's
metadata and hands batches to nothing)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

from plumbing.kafka_batches import KafkaBatches


class _Producer:
    """What KafkaBatches asks of an AIOKafkaProducer; batches are kept, not sent."""

    def __init__(self, partitions: int) -> None:
        self.partitions = set(range(partitions))
        self.client = SimpleNamespace(
            cluster=SimpleNamespace(partitions_for_topic=lambda topic: self.partitions)
        )
        self.sent: list[int] = []  # partition of each batch handed over

    async def partitions_for(self, topic: str) -> set[int]:
        return self.partitions

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16384, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        self.sent.append(partition)
        written = asyncio.get_running_loop().create_future()
        written.set_result(None)
        return written


async def test_partitions_added_to_a_topic_are_used_from_the_next_linger_on() -> None:
    producer = _Producer(partitions=1)
    written: list[int] = []
    wanted, reached = 1, asyncio.Event()

    def on_written(tokens: list[int], error: BaseException | None) -> None:
        written.extend(tokens)
        if len(written) >= wanted:
            reached.set()

    batches = KafkaBatches(producer, linger_s=0.001, on_written=on_written)  # type: ignore[arg-type]
    runner = asyncio.create_task(batches.run())
    try:
        await batches.prepare(["t"])
        producer.partitions = set(range(4))  # added while the first batch lingers
        batches.add("t", b"device-0", b"v", 0)
        async with asyncio.timeout(5):
            await reached.wait()
        assert producer.sent == [0]
        wanted = 41
        reached.clear()
        for n in range(1, 41):
            batches.add("t", f"device-{n}".encode(), b"v", n)
        async with asyncio.timeout(5):
            await reached.wait()
    finally:
        runner.cancel()
    assert set(producer.sent[1:]) == {0, 1, 2, 3}  # 40 devices over all four
