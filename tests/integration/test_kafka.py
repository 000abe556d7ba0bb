"""plumbing/kafka.py against tansu: where a topic ends, and what a group has left to read.

tansu answers a ListOffsets with its last batch's first offset + 1; `carewatch up`
decides from a group's lag whether the workers have read everything before it stops the
in-memory broker, so an under-count there would lose records on a clean stop."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from carewatch.embedded import EmbeddedStack
from plumbing.kafka import end_offsets, group_lag, make_producer

pytestmark = pytest.mark.integration


async def _one_batch(bootstrap: str, topic: str, records: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = make_producer(bootstrap, linger_ms=200)  # every record in one batch
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, b"x", key=b"k") for _ in range(records)])
    finally:
        await producer.stop()


async def test_a_group_that_read_into_the_last_batch_still_has_the_rest_to_read(
    stack: EmbeddedStack,
) -> None:
    bootstrap, topic, group = stack.kafka_bootstrap, f"test-ends-{uuid.uuid4().hex[:8]}", "g"
    await _one_batch(bootstrap, topic, 37)
    tp = TopicPartition(topic, 0)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    await member.start()
    try:
        assert await end_offsets(reader, [tp]) == {tp: 37}
        member.assign([tp])
        await member.commit({tp: 1})  # the batch's first record read
    finally:
        await reader.stop()
        await member.stop()
    assert await group_lag(bootstrap, group, topic) == 36
