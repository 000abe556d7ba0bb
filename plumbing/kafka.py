"""Kafka plumbing shared by every carewatch process: the topic names and their creation."""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.partitioner import DefaultPartitioner

__all__ = [
    "ALARMS_TOPIC",
    "ALERTS_TOPIC",
    "DLQ_TOPIC",
    "EVENTS_TOPIC",
    "CachedPartitioner",
    "end_offsets",
    "ensure_topics",
    "group_lag",
    "group_progress",
    "make_consumer",
    "make_producer",
    "partition_count",
    "partitions_of",
    "topic_exists",
]

log = logging.getLogger(__name__)

EVENTS_TOPIC = "carewatch.events.v1"
DLQ_TOPIC = "carewatch.dlq.v1"
ALERTS_TOPIC = "carewatch.alerts.v1"
# A copy of every sos and fall event (same JSON, same key) for the alarm lane, which raises
# their alerts without waiting behind the events topic (alerts/alarm_lane.py).
ALARMS_TOPIC = "carewatch.alarms.v1"

# Rejects are rare and read in order by a person, so a few partitions are plenty.
_DLQ_PARTITIONS = 3


async def ensure_topics(bootstrap: str, *, partitions: int, replication_factor: int = 1) -> None:
    """Create carewatch's topics where missing; an existing topic is left as it is.

    Raises the aiokafka error for the broker's error code (e.g. `PolicyViolationError`).
    """
    wanted = {
        EVENTS_TOPIC: partitions,
        ALARMS_TOPIC: partitions,
        DLQ_TOPIC: _DLQ_PARTITIONS,
        ALERTS_TOPIC: partitions,
    }
    topics = [NewTopic(name, count, replication_factor) for name, count in wanted.items()]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="carewatch-admin")
    await admin.start()
    try:
        response = await admin.create_topics(topics)
    finally:
        await admin.close()
    # (name, code) in CreateTopics v0, (name, code, message) from v1 on.
    for name, code, *message in response.topic_errors:
        if code == TopicAlreadyExistsError.errno:
            log.debug("topic %s already exists", name)
        elif code:
            raise for_code(code)(f"cannot create topic {name}: {' '.join(map(str, message))}")
        else:
            log.info("created topic %s (%d partitions)", name, wanted[name])


def make_producer(
    bootstrap: str, *, client_id: str = "carewatch", linger_ms: int = 5
) -> AIOKafkaProducer:
    """A producer whose acknowledged writes are on every in-sync replica.

    No idempotence: tansu has none, and redelivery is already handled downstream by the
    stable event_id. A short linger lets concurrent sends share a batch.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        partitioner=CachedPartitioner(),
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=131072,
        request_timeout_ms=30000,
    )


async def topic_exists(producer: AIOKafkaProducer, topic: str) -> bool:
    """Whether the cluster has `topic` (asking does not create it)."""
    cluster = await producer.client.fetch_all_metadata()
    return topic in cluster.topics()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """`topic`'s partitions, in order (none if there is no such topic)."""
    await consumer.topics()  # fetches the cluster's metadata
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def partition_count(bootstrap: str, topic: str) -> int:
    """How many partitions `topic` has (0: no such topic)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:  # stopped even when it cannot start: an unclosed consumer warns when collected
        await consumer.start()
        return len(await partitions_of(consumer, topic))
    finally:
        await consumer.stop()


class CachedPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as Java clients do: a device's
    records land where any Kafka client would put them), remembering its answer per key.
    murmur2 is pure Python and ingest asks for every record, mostly for the same devices."""

    def __init__(self, max_keys: int = 1 << 17) -> None:
        self._max_keys = max_keys
        self._known: dict[tuple[bytes, int], int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        known = (key, len(all_partitions))  # a topic's partitions are 0..n-1
        partition = self._known.get(known)
        if partition is None:
            if len(self._known) >= self._max_keys:
                self._known.clear()  # many more devices than this: start over, rarely
            partition = self._known[known] = DefaultPartitioner()(key, all_partitions, available)
        return partition


# How long an urgent consumer's fetch may wait for a record (ms): see make_consumer.
URGENT_WAIT_MS = 50


def make_consumer(bootstrap: str, *, group_id: str, urgent: bool = False) -> AIOKafkaConsumer:
    """A group consumer that commits only when told to, starting at the oldest record.

    "earliest" because a new group (a fresh deployment, a renamed worker) must not skip
    SOS events already in the topic.

    How it fetches depends on what waits for it. tansu answers a fetch only when it has
    `fetch_min_bytes` or when `fetch_max_wait_ms` has passed, and may hold an empty fetch
    for much of the wait even if records arrive meanwhile. `urgent` (the alarm lane, the
    notifier): any record, waiting at most 50 ms. Each empty fetch costs tansu about a
    millisecond of CPU, so the wait is a price in CPU per second of idling: at 5 ms one
    idle urgent consumer took ~23 % of a core in tansu (and as much again in itself), at
    50 ms ~6 %, and a record waited 10 ms at the median, 29 ms at worst (2026-12-05,
    tansu alone). SOS alerts do not wait for this: the fast path (`carewatch alarms`)
    raises them straight from MQTT; the alarm lane is its fallback. Otherwise (telemetry,
    the rules worker): up to 256 KiB or 200 ms, so a busy topic is read in a few large
    fetches rather than many small ones; at 4,000 events/s this took tansu from 95 to 40 %
    of a core, and gives the workers larger batches (one transaction each).

    The alarm lane's session is also shorter (6 s, Kafka's minimum, heartbeats every
    second): when its process dies, its partitions move to the restarted one only once
    the dead member's session has expired. `carewatch faults --only rules` measured an
    SOS waiting 11-21 s with 10 s sessions and 6-14 s with these.
    """
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=1048576,
        fetch_max_wait_ms=URGENT_WAIT_MS if urgent else 200,
        fetch_min_bytes=1 if urgent else 256 * 1024,
        session_timeout_ms=6000 if urgent else 10000,
        heartbeat_interval_ms=1000 if urgent else 3000,
    )


async def end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Each partition's next offset, i.e. the offset after its last record.

    Asking is not enough with tansu: it answers a ListOffsets with its last batch's
    *first* offset + 1 (37 records in one batch: 1), so a consumer that had read into
    that batch would seem to have read everything. So the last batch is read for its
    last record. `consumer` is one of no group; this assigns it the partitions."""
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    wanted = {tp for tp in partitions if ends[tp] > 0}
    consumer.assign(list(wanted))
    for tp in wanted:
        consumer.seek(tp, ends[tp] - 1)
    deadline = time.monotonic() + 10  # a batch stored is there to read: this is slack
    while wanted and time.monotonic() < deadline:
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            ends[tp] = max(ends[tp], records[-1].offset + 1)
            wanted.discard(tp)
    return ends


async def group_lag(bootstrap: str, group_id: str, topic: str) -> int:
    """Records of `topic` written but not yet committed by `group_id`."""
    progress = await group_progress(bootstrap, group_id, topic)
    return sum(max(0, end - done) for end, done in progress.values())


async def group_progress(bootstrap: str, group_id: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of `topic`: its end, and how far `group_id` has committed (read after
    the end; a group that has committed nothing counts from the partition's start)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="carewatch-admin")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:  # both closed even when they cannot start: an unclosed consumer warns when collected
        await admin.start()
        await consumer.start()
        partitions = await partitions_of(consumer, topic)
        starts = await consumer.beginning_offsets(partitions)
        ends = await end_offsets(consumer, partitions)
        committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
    finally:
        await consumer.stop()
        await admin.close()
    progress = {}
    for tp in partitions:
        done = committed.get(tp)
        progress[tp.partition] = (
            ends[tp],
            done.offset if done is not None and done.offset >= 0 else starts[tp],
        )
    return progress
