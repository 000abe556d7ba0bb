"""The ingest service: MQTT messages -> codec -> Kafka, acked only after Kafka acked.

Two MQTT sessions: one for the formats' ordinary topics, one for their alarm topics
(`Codec.alarm_subscriptions`, e.g. `carewatch/v1/devices/+/alarm`). The broker queues
messages per session, so an alarm never waits in its queue behind telemetry, however far
behind ingest has fallen on the ordinary session.

Flow of one message:
  paho callback (on the event loop) -> its session's in-order `AckSequencer` + queue
     (alarm-session messages, and those that may carry an alarm, ahead of the rest:
     ingest/work_queue.py)
  -> `_records`: route by topic, size check, decode -> events and DLQ records (sos and
     fall events also go to the alarm lane's topic, ahead of the rest)
  -> all records produced (ordinary ones in a batch per partition of ingest's own,
     plumbing/kafka_batches.py); when Kafka confirms every one -> done -> PUBACK in order.
A failed Kafka write is retried (with backoff) until it succeeds or the process stops; the
message is never acked before, so nothing acknowledged is lost. Redelivered messages give
the same event ids, so the copies are dropped downstream.

In-flight work is bounded by the MQTT 5 Receive Maximum we announce and, for MQTT 3.1.1,
by the broker's inflight limit; and by ingest itself, which stops reading the ordinary
session while it holds that many messages (mosquitto 2.0.11 does not keep to the Receive
Maximum once acks flow: unchecked, an overloaded ingest took the broker's whole backlog
into memory). The alarm session is read first and stopped only at five times that
(`ALARM_HELD_FACTOR`): a device flooding its alarm topic cannot take ingest's memory. What
waits behind such a flood in the alarm session's queue still reaches the alarm fast path
(ingest/alarm_reader.py), which takes a burst of each device's alarms and no more.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from devices.codecs import CODECS, Codec
from devices.events import ALARM_KINDS, Event, event_to_json
from ingest import metrics, policy
from ingest.acks import AckSequencer, Delivery
from ingest.admission import Admission, Route
from ingest.directory import DeviceDirectory
from ingest.dlq import Reject, dlq_record
from ingest.work_queue import WorkQueue
from plumbing.backoff import Backoff
from plumbing.component import Component
from plumbing.kafka import ALARMS_TOPIC, DLQ_TOPIC, EVENTS_TOPIC, make_producer, topic_exists
from plumbing.kafka_batches import KafkaBatches
from plumbing.mqtt import MqttClient

__all__ = ["Ingest", "Record", "subscription_filter"]

log = logging.getLogger(__name__)

# How long ordinary records wait to fill a batch (ms; ingest's own batches, and the
# producer's linger for the records a retry writes one by one). Fewer, larger
# batches cost less per record in ingest's Kafka client and in the broker, and in tansu
# (the embedded Kafka) much less: each fetch there costs in proportion to the batches a
# partition holds. With two consumers reading 3,000 records/s, tansu took 107 % of a core
# by 180,000 records stored at 20 ms, 58 % at 50 ms, 39 % at 100 ms; in the bench's five
# steps it took 13-22 µs of CPU per stored message at 100 ms against 15-31 at 50 ms
# (docs/benchmarks.md, round 8). Not longer: ingest holds each message until Kafka has
# it, at most `max_inflight` (4,000 by default) at a time, so the wait caps the rate at
# about max_inflight / (linger + a round trip), ~30,000 messages/s at 100 ms; and an
# ordinary event's alert (vitals, geofence) waits that much more. Alarms do not wait
# (their producer's linger is 0). The limit counts what is read and not yet handled too:
# at 2,000 a saturated ingest was found at the limit, idle while Kafka answered, in half
# of the samples, and stored ~4 % less at 10,000 messages/s offered (round 9).
ORDINARY_LINGER_MS = 100
# Messages handled between two turns of the event loop (sockets read, Kafka answered).
_YIELD_EVERY = 16


class Record(NamedTuple):
    """One Kafka record to write for a message, and what it counts as (a named tuple:
    made for every record, cheaper than a frozen dataclass)."""

    topic: str
    key: bytes
    value: bytes
    label: str  # event kind, or reject reason for the DLQ


# Messages the alarm session may have in hand, as a multiple of the ordinary session's:
# 20,000 at the default. It bounds what a flood of alarm-topic messages makes ingest hold
# in memory, so it grows only with the ordinary limit someone chose to raise.
ALARM_HELD_FACTOR = 5


@dataclass(eq=False)
class _Session:
    """One of ingest's MQTT sessions: its client, its acks (in receive order), how many
    messages it may have in hand before ingest stops reading it (resumed at half), and
    whether it is the alarm session."""

    client: MqttClient
    acks: AckSequencer
    limit: int
    alarm: bool


# A message waiting to be handled: its session, its ack, receive time (UTC, and
# perf_counter) and route.
_Received = tuple[_Session, Delivery, datetime, float, Route]


@dataclass(eq=False, slots=True)
class _Pending:
    """A message whose records are being written: done when none is `left`, or when its
    retry (after any of them `failed`) has written them all again."""

    session: _Session
    delivery: Delivery
    records: list[Record]
    started: float  # perf_counter on receipt
    left: int
    failed: bool = False


class Ingest(Component):
    def __init__(
        self,
        *,
        mqtt_url: str,
        kafka_bootstrap: str,
        client_id: str,
        mqtt_protocol: Literal["5", "3.1.1"] = "5",
        share_group: str = "",
        max_inflight: int = 4000,
        database_url: str,
        max_payload_bytes: int = 64 * 1024,
        device_rate: float = 10.0,
        device_burst: float = 60.0,
        max_ahead_s: float = 300.0,
        codecs: Iterable[Codec] | None = None,
        drain_timeout: float = 15.0,
    ) -> None:
        super().__init__(name="ingest")
        self._directory = DeviceDirectory(database_url=database_url)
        self._admission = Admission(
            codecs=codecs if codecs is not None else CODECS.values(),
            directory=self._directory,
            max_payload_bytes=max_payload_bytes,
            device_rate=device_rate,
            device_burst=device_burst,
            max_ahead_s=max_ahead_s,
        )
        self._codecs = self._admission.codecs
        self._kafka_bootstrap = kafka_bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._alarm_producer: AIOKafkaProducer | None = None
        self._batches: KafkaBatches[_Pending] | None = None  # of self._producer
        self._alarm_copies = False  # whether carewatch.alarms.v1 exists (known at start)

        def session(suffix: str, filters: tuple[str, ...], limit: int, alarm: bool) -> _Session:
            acks = AckSequencer(lambda ready: _ack(client, ready))
            client = MqttClient(
                url=mqtt_url,
                client_id=client_id + suffix,
                protocol=mqtt_protocol,
                persistent_session=True,
                receive_maximum=max_inflight,
                subscriptions=tuple(subscription_filter(f, share_group) for f in filters),
                on_message=lambda message, gen: self._on_message(message, gen, created),
                manual_ack=True,
                skip_retained=True,
            )
            created = _Session(client, acks, limit, alarm)
            self._sessions.append(created)
            return created

        self._sessions: list[_Session] = []
        # Messages the ordinary session may have in hand (received, not yet acked) before
        # ingest stops reading it: the Receive Maximum we announce, enforced here too.
        ordinary = session("", _filters(self._codecs, alarms=False), max_inflight, alarm=False)
        self._mqtt = ordinary.client
        alarm_filters = _filters(self._codecs, alarms=True)
        # Its own client id (`<client_id>-alarms`): its own session, its own broker queue;
        # read ahead of everything, and stopped only at many times the ordinary limit (a
        # flood of alarm-topic messages must not take ingest's memory).
        alarms = None
        if alarm_filters:
            limit = max_inflight * ALARM_HELD_FACTOR
            alarms = session("-alarms", alarm_filters, limit, alarm=True)
        self._alarm_mqtt = alarms.client if alarms else None
        self._queue: WorkQueue[_Received] = WorkQueue()
        metrics.INFLIGHT.set_function(self._inflight)  # read when scraped, not per message
        self._idle = asyncio.Event()
        self._idle.set()
        self._drain_timeout = drain_timeout
        self._accepting = False

    @property
    def directory(self) -> DeviceDirectory:
        return self._directory

    # -- lifecycle ---------------------------------------------------------------

    async def _open(self) -> None:
        await self._directory.start()
        # Telemetry lingers to fill larger batches (fewer requests for ingest and the
        # broker to handle), batched here rather than by the producer (one callback per
        # batch, not per record; the producer's own linger is for retries, which send
        # record by record after an outage); records of a message with an alarm go out at
        # once on a producer of their own, never waiting for a batch of telemetry to fill.
        self._producer = make_producer(self._kafka_bootstrap, linger_ms=ORDINARY_LINGER_MS)
        await self._producer.start()
        self._batches = KafkaBatches(
            self._producer, linger_s=ORDINARY_LINGER_MS / 1000, on_written=self._batch_written
        )
        topics = (EVENTS_TOPIC, DLQ_TOPIC)
        try:
            await self._batches.prepare(topics)
        except KafkaError:
            log.error(
                "cannot learn the topics' partitions: are they created?", extra={"topics": topics}
            )
            raise
        self._alarm_producer = make_producer(
            self._kafka_bootstrap, client_id="carewatch-alarms", linger_ms=0
        )
        await self._alarm_producer.start()
        self._alarm_copies = await self._alarm_topic_exists()
        self._accepting = True
        # Not restarted: messages it held would never be acked. The process stops instead.
        self.supervise("process", self._process_loop, restart=False)
        self.supervise("kafka-batches", self._batches.run, restart=False)
        if self._alarm_mqtt is not None:  # first: alarms have a reader before anything else
            await self._alarm_mqtt.start()
        await self._mqtt.start()
        log.info("ingest started", extra={"codecs": [c.name for c in self._codecs]})

    async def _alarm_topic_exists(self) -> bool:
        """Whether to copy alarms to the alarm lane's topic. A deployment that has not
        created it yet still alerts (through the events topic, slower under load): a write
        to a missing topic would instead stall every message behind it."""
        assert self._producer is not None
        if await topic_exists(self._producer, ALARMS_TOPIC):
            return True
        log.error(
            "topic missing: alarms reach the rules worker only through the events topic;"
            " create it and restart ingest",
            extra={"topic": ALARMS_TOPIC},
        )
        return False

    async def _close(self) -> None:
        """Stop taking messages, finish (and ack) those in flight, then disconnect."""
        self._accepting = False
        try:
            await asyncio.wait_for(self._idle.wait(), self._drain_timeout)
        except TimeoutError:
            log.warning(
                "ingest drain timed out; unacked messages will be redelivered",
                extra={"pending": self._inflight()},
            )
        await self._mqtt.stop()
        if self._alarm_mqtt is not None:
            await self._alarm_mqtt.stop()
        await self.cancel_tasks()
        for producer in (self._producer, self._alarm_producer):
            if producer is not None:
                await producer.stop()
        self._producer = self._alarm_producer = None
        await self._directory.stop()
        log.info("ingest stopped")

    def health(self) -> dict[str, Any]:
        own, directory = super().health(), self._directory.health()
        alarms = self._alarm_mqtt is None or self._alarm_mqtt.connected
        connected = self._mqtt.connected and alarms
        ok = own["ok"] and directory["ok"] and connected and self._producer is not None
        return {
            **own,
            "ok": ok,
            "directory": directory,
            "mqtt_connected": self._mqtt.connected,
            "alarm_session_connected": self._alarm_mqtt is not None and self._alarm_mqtt.connected,
            "registry_connected": self._directory.connected,
            "alarm_lane": self._alarm_copies,
            "devices_known": len(self._directory),
            "inflight": self._inflight(),
        }

    def _inflight(self) -> int:
        return sum(len(session.acks) for session in self._sessions)

    # -- receiving ---------------------------------------------------------------

    def _on_message(self, message: Any, generation: int, session: _Session) -> None:
        """A message of the alarm session goes ahead of everything ordinary."""
        if not self._accepting:
            return  # not acked: the broker redelivers it to us or a peer later
        received_at = datetime.now(UTC)
        delivery = session.acks.received(message, generation)
        if message.retain:
            self._skip_retained(session.acks, delivery)
            return
        self._idle.clear()
        route = self._admission.route(message.topic)
        urgent = session.alarm or _may_carry_alarm(route[0], message.payload)
        self._queue.put((session, delivery, received_at, time.perf_counter(), route), urgent=urgent)
        if len(session.acks) >= session.limit:
            session.client.pause_reading()  # resumed in _written, once half of it is done

    def _skip_retained(self, acks: AckSequencer, delivery: Delivery) -> None:
        """A message the broker kept and sends because we subscribed (MQTT 3.1.1 brokers,
        or one not honouring Retain Handling): it was handled when it was published live,
        and taken again it would raise an old alarm as new. Acked, counted, not used."""
        metrics.RETAINED_SKIPPED.inc()
        log.info("retained message skipped", extra={"topic": delivery.message.topic})
        metrics.ACKED.inc(acks.done(delivery))

    async def _process_loop(self) -> None:
        handled = 0
        while True:
            handled += 1
            if handled % _YIELD_EVERY == 0:
                # Nothing below waits while messages are queued: without this the loop would
                # hold the event loop until the queue is empty (hundreds of ms under load),
                # and an alarm arriving on its own session would wait to be read at all.
                await asyncio.sleep(0)
            session, delivery, received_at, started, route = await self._queue.get()
            message = delivery.message
            try:
                records = await self._records(route, message.topic, message.payload, received_at)
            except Exception as exc:  # a bug here must not stop ingest or lose the message
                log.exception("processing failed", extra={"topic": message.topic})
                reject = Reject(policy.INTERNAL_ERROR, repr(exc)[:500])
                records = [self._dlq(reject, message.topic, None, message.payload, received_at)]
            await self._write(_Pending(session, delivery, records, started, len(records)))

    # -- checking and decoding ---------------------------------------------------

    async def _records(
        self, route: Route, topic: str, payload: bytes, received_at: datetime
    ) -> list[Record]:
        """Every Kafka record one MQTT message becomes: events and rejects."""
        codec, device_id = route
        metrics.labelled(metrics.MESSAGES, codec.name if codec else "none").inc()
        events: list[Event] = []
        if codec is None or device_id is None:
            rejects = [Reject(policy.UNROUTABLE_TOPIC, f"no codec takes topic {topic!r}")]
        else:
            events, rejects = await self._admission.check_and_decode(
                codec, device_id, topic, payload, received_at
            )
        dlq = [self._dlq(r, topic, device_id, payload, received_at) for r in rejects]
        return _event_records(events, self._alarm_copies) + dlq

    def _dlq(
        self, reject: Reject, topic: str, device_id: str | None, payload: bytes, at: datetime
    ) -> Record:
        log.info(
            "rejected",
            extra={
                "reason": reject.reason,
                "detail": reject.detail,
                "topic": topic,
                "index": reject.index,
            },
        )
        value = dlq_record(
            reject,
            topic=topic,
            device_id=device_id,
            payload=payload,
            received_at=at,
            keep_bytes=self._admission.max_payload,
        )
        return Record(DLQ_TOPIC, (device_id or topic).encode(), value, reject.reason)

    # -- writing -----------------------------------------------------------------

    async def _write(self, pending: _Pending) -> None:
        """Ordinary records into the batches of their partitions; records of a message with
        an alarm straight to the alarm producer, which sends at once."""
        records = pending.records
        if not records:
            self._finish([pending])
        elif not _carries_alarm(records):
            assert self._batches is not None
            for r in records:
                self._batches.add(r.topic, r.key, r.value, pending)
        else:
            producer = self._alarm_producer
            assert producer is not None
            try:
                futures = [await producer.send(r.topic, r.value, key=r.key) for r in records]
            except KafkaError as exc:
                self._failed(pending, exc)
                return
            written = futures[0] if len(futures) == 1 else asyncio.gather(*futures)
            written.add_done_callback(lambda f: self._alarm_written(pending, f))

    def _alarm_written(self, pending: _Pending, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self._failed(pending, exc)
        else:
            self._finish([pending])

    def _batch_written(self, tokens: list[_Pending], error: BaseException | None) -> None:
        """A batch is in Kafka (or failed): a message is done when all its records are."""
        if error is not None:
            for pending in dict.fromkeys(tokens):
                self._failed(pending, error)
            return
        done = []
        for pending in tokens:
            pending.left -= 1
            if not pending.left:  # none of its records failed: they count only when written
                done.append(pending)
        self._finish(done)

    def _failed(self, pending: _Pending, exc: BaseException) -> None:
        if not pending.failed:  # once, however many of its batches failed
            pending.failed = True
            self.spawn("retry", self._retry(pending, exc))

    def _finish(self, done: list[_Pending]) -> None:
        """Count what was written and ack the messages (in order, per session)."""
        now = time.perf_counter()
        written: Counter[tuple[str, str]] = Counter()
        sessions = set()
        for pending in done:
            written.update((r.topic, r.label) for r in pending.records)
            metrics.PRODUCE_SECONDS.observe(now - pending.started)
            metrics.ACKED.inc(pending.session.acks.done(pending.delivery))
            sessions.add(pending.session)
        _count(written)
        for session in sessions:
            if len(session.acks) <= session.limit // 2:
                session.client.resume_reading()
        if not self._inflight():
            self._idle.set()

    async def _retry(self, pending: _Pending, exc: BaseException) -> None:
        """Write again until Kafka takes it. The records already written become duplicates
        with the same event ids, which storage and alerting drop."""
        backoff = Backoff(first=0.2, cap=10.0)
        records = pending.records
        producer = self._alarm_producer if _carries_alarm(records) else self._producer
        assert producer is not None
        while True:
            metrics.PRODUCE_RETRIES.inc()
            log.warning("kafka write failed; retrying", extra={"error": repr(exc)})
            await backoff.wait()
            try:
                futures = [await producer.send(r.topic, r.value, key=r.key) for r in records]
                await asyncio.gather(*futures)
            except KafkaError as err:
                exc = err
                continue
            break
        self._finish([pending])


def _carries_alarm(records: list[Record]) -> bool:
    return any(r.label in ALARM_KINDS for r in records)


def _count(written: Counter[tuple[str, str]]) -> None:
    for (topic, label), n in written.items():
        if topic == EVENTS_TOPIC:
            metrics.labelled(metrics.EVENTS, label).inc(n)
        elif topic == DLQ_TOPIC:
            metrics.labelled(metrics.REJECTS, label).inc(n)


def _ack(client: MqttClient, ready: list[Delivery]) -> None:
    """PUBACKs for a run of deliveries, one write per connection they came on."""
    for generation, run in itertools.groupby(ready, key=lambda d: d.generation):
        client.ack_many((d.message for d in run), generation)


def _may_carry_alarm(codec: Codec | None, payload: bytes) -> bool:
    return codec is not None and codec.urgent is not None and codec.urgent(payload)


def _filters(codecs: list[Codec], *, alarms: bool) -> tuple[str, ...]:
    """The codecs' topic filters: their alarm topics', or their ordinary ones'."""
    return tuple(
        topic_filter
        for codec in codecs
        for topic_filter in (codec.alarm_subscriptions if alarms else codec.subscriptions)
    )


def subscription_filter(topic_filter: str, share_group: str) -> str:
    """What ingest subscribes to: the filter, shared in `share_group` unless that is empty."""
    return f"$share/{share_group}/{topic_filter}" if share_group else topic_filter


def _event_records(events: list[Event], alarm_copies: bool) -> list[Record]:
    """Every event to the events topic; alarms also, first, to the alarm lane's topic."""
    alarms: list[Record] = []
    records: list[Record] = []
    for event in events:
        key, value = event.device_id.encode(), event_to_json(event)
        if alarm_copies and event.kind in ALARM_KINDS:
            alarms.append(Record(ALARMS_TOPIC, key, value, event.kind))
        records.append(Record(EVENTS_TOPIC, key, value, event.kind))
    return alarms + records
