"""The ingest service: MQTT messages -> codec -> Kafka, acked only after Kafka acked.

Flow of one message:
  paho callback (on the event loop) -> in-order `AckSequencer` + queue (messages that may
     carry an alarm ahead of the rest: ingest/work_queue.py)
  -> `_records`: route by topic, size check, decode -> events and DLQ records (sos and
     fall events also go to the alarm lane's topic, ahead of the rest)
  -> all records produced; when Kafka confirms every one -> mark done -> PUBACK in order.
A failed Kafka write is retried (with backoff) until it succeeds or the process stops; the
message is never acked before, so nothing acknowledged is lost. Redelivered messages give
the same event ids, so the copies are dropped downstream.

In-flight work is bounded by the MQTT 5 Receive Maximum we announce (the broker sends no
more unacknowledged messages than that) and, for MQTT 3.1.1, by the broker's inflight limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from devices.codecs import CODECS, Codec, Message
from devices.errors import DecodeError
from devices.events import ALARM_KINDS, Event, event_to_json
from ingest import metrics, policy
from ingest.acks import AckSequencer, Delivery
from ingest.directory import DeviceDirectory, RegistryUnavailable
from ingest.dlq import Reject, dlq_record
from ingest.work_queue import WorkQueue
from plumbing.backoff import Backoff
from plumbing.component import Component
from plumbing.kafka import ALARMS_TOPIC, DLQ_TOPIC, EVENTS_TOPIC, make_producer, topic_exists
from plumbing.mqtt import MqttClient

__all__ = ["Ingest", "Record", "subscription_filter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One Kafka record to write for a message, and what it counts as."""

    topic: str
    key: bytes
    value: bytes
    label: str  # event kind, or reject reason for the DLQ


# The codec that takes a topic and the device it names (None, None: no codec takes it).
_Route = tuple[Codec | None, str | None]
# A message waiting to be handled: its ack, receive time (UTC, and perf_counter) and route.
_Received = tuple[Delivery, datetime, float, _Route]


class Ingest(Component):
    def __init__(
        self,
        *,
        mqtt_url: str,
        kafka_bootstrap: str,
        client_id: str,
        mqtt_protocol: Literal["5", "3.1.1"] = "5",
        share_group: str = "",
        max_inflight: int = 1000,
        database_url: str,
        max_payload_bytes: int = 64 * 1024,
        device_rate: float = 10.0,
        device_burst: float = 60.0,
        max_ahead_s: float = 300.0,
        codecs: Iterable[Codec] | None = None,
        drain_timeout: float = 15.0,
    ) -> None:
        super().__init__(name="ingest")
        self._codecs = list(codecs if codecs is not None else CODECS.values())
        self._max_payload = max_payload_bytes
        self._directory = DeviceDirectory(database_url=database_url)
        self._rates = policy.RateLimiter(rate=device_rate, burst=device_burst)
        self._max_ahead = timedelta(seconds=max_ahead_s)
        self._kafka_bootstrap = kafka_bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._alarm_copies = False  # whether carewatch.alarms.v1 exists (known at start)
        self._mqtt = MqttClient(
            url=mqtt_url,
            client_id=client_id,
            protocol=mqtt_protocol,
            persistent_session=True,
            receive_maximum=max_inflight,
            subscriptions=tuple(
                subscription_filter(topic_filter, share_group)
                for codec in self._codecs
                for topic_filter in codec.subscriptions
            ),
            on_message=self._on_message,
            manual_ack=True,
            skip_retained=True,
        )
        self._acks = AckSequencer(self._ack)
        self._queue: WorkQueue[_Received] = WorkQueue()
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
        self._producer = make_producer(self._kafka_bootstrap)
        await self._producer.start()
        self._alarm_copies = await self._alarm_topic_exists()
        self._accepting = True
        # Not restarted: messages it held would never be acked. The process stops instead.
        self.supervise("process", self._process_loop, restart=False)
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
                extra={"pending": len(self._acks)},
            )
        await self._mqtt.stop()
        await self.cancel_tasks()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await self._directory.stop()
        log.info("ingest stopped")

    def health(self) -> dict[str, Any]:
        own, directory = super().health(), self._directory.health()
        ok = own["ok"] and directory["ok"] and self._mqtt.connected and self._producer is not None
        return {
            **own,
            "ok": ok,
            "directory": directory,
            "mqtt_connected": self._mqtt.connected,
            "registry_connected": self._directory.connected,
            "alarm_lane": self._alarm_copies,
            "devices_known": len(self._directory),
            "inflight": len(self._acks),
        }

    # -- receiving ---------------------------------------------------------------

    def _on_message(self, message: Any, generation: int) -> None:
        if not self._accepting:
            return  # not acked: the broker redelivers it to us or a peer later
        received_at = datetime.now(UTC)
        delivery = self._acks.received(message, generation)
        if message.retain:
            self._skip_retained(delivery)
            return
        self._idle.clear()
        metrics.INFLIGHT.set(len(self._acks))
        route = self._route(message.topic)
        codec = route[0]
        urgent = codec is not None and codec.urgent is not None and codec.urgent(message.payload)
        self._queue.put((delivery, received_at, time.perf_counter(), route), urgent=urgent)

    def _skip_retained(self, delivery: Delivery) -> None:
        """A message the broker kept and sends because we subscribed (MQTT 3.1.1 brokers,
        or one not honouring Retain Handling): it was handled when it was published live,
        and taken again it would raise an old alarm as new. Acked, counted, not used."""
        metrics.RETAINED_SKIPPED.inc()
        log.info("retained message skipped", extra={"topic": delivery.message.topic})
        metrics.ACKED.inc(self._acks.done(delivery))

    def _ack(self, message: Any, generation: int) -> bool:
        return self._mqtt.ack(message, generation)

    async def _process_loop(self) -> None:
        while True:
            delivery, received_at, started, route = await self._queue.get()
            message = delivery.message
            try:
                records = await self._records(route, message.topic, message.payload, received_at)
            except Exception as exc:  # a bug here must not stop ingest or lose the message
                log.exception("processing failed", extra={"topic": message.topic})
                reject = Reject(policy.INTERNAL_ERROR, repr(exc)[:500])
                records = [self._dlq(reject, message.topic, None, message.payload, received_at)]
            await self._write(delivery, records, started)

    # -- checking and decoding ---------------------------------------------------

    async def _records(
        self, route: _Route, topic: str, payload: bytes, received_at: datetime
    ) -> list[Record]:
        """Every Kafka record one MQTT message becomes: events and rejects."""
        codec, device_id = route
        metrics.labelled(metrics.MESSAGES, codec.name if codec else "none").inc()
        events: list[Event] = []
        if codec is None or device_id is None:
            rejects = [Reject(policy.UNROUTABLE_TOPIC, f"no codec takes topic {topic!r}")]
        else:
            events, rejects = await self._check_and_decode(
                codec, device_id, topic, payload, received_at
            )
        dlq = [self._dlq(r, topic, device_id, payload, received_at) for r in rejects]
        return _event_records(events, self._alarm_copies) + dlq

    async def _check_and_decode(
        self, codec: Codec, device_id: str, topic: str, payload: bytes, received_at: datetime
    ) -> tuple[list[Event], list[Reject]]:
        """Who sent it, how big it is, then what it says."""
        try:
            device = await self._directory.lookup(device_id)
            refused = policy.admit_device(device, device_id, codec.name)
        except RegistryUnavailable:
            device, refused = None, None  # cannot be checked: only its alarms pass (below)
        if refused is not None:
            return [], [refused]
        if len(payload) > self._max_payload:
            size = f"{len(payload)} bytes > {self._max_payload}"
            return [], [Reject(policy.PAYLOAD_TOO_LARGE, size, codec.name)]
        if device is None:
            return self._unverified(codec, Message(payload, topic, device_id, received_at))
        message = Message(payload, topic, device_id, received_at, device.model, device.clock_tz)
        return self._decode(codec, message)

    def _unverified(self, codec: Codec, message: Message) -> tuple[list[Event], list[Reject]]:
        """A device the registry could not be asked about: a missed SOS is worse than an
        unchecked one (the broker has checked its login), so alarms go through; everything
        else is refused to the DLQ, with its bytes."""
        events, rejects = self._decode(codec, message)
        events, unchecked = policy.only_alarms(
            events, codec.name, policy.REGISTRY_UNAVAILABLE, "from a device not yet confirmed"
        )
        if events:
            metrics.UNVERIFIED_ALARMS.inc(len(events))
            log.warning(
                "alarm let through unverified: the registry is unreachable",
                extra={"device_id": message.device_id, "kinds": [e.kind for e in events]},
            )
        return events, rejects + unchecked

    def _decode(self, codec: Codec, message: Message) -> tuple[list[Event], list[Reject]]:
        """Decode, then apply the time and rate policies to what came out."""
        try:
            decoded = codec.decode(message)
        except DecodeError as err:
            return [], [_reject(err)]
        except Exception as exc:  # a codec bug must not stop ingest or lose the message
            log.exception("codec crashed", extra={"codec": codec.name, "topic": message.topic})
            return [], [Reject(policy.INTERNAL_ERROR, repr(exc)[:500], codec.name)]
        rejects = [_reject(err) for err in decoded.rejects]
        events, late = policy.check_times(
            decoded.events, message.received_at, self._max_ahead, codec.name
        )
        rejects += late
        if events and not self._rates.allow(message.device_id):
            events, limited = policy.only_alarms(events, codec.name)
            rejects += limited
        return events, rejects

    def _route(self, topic: str) -> _Route:
        for codec in self._codecs:
            device_id = codec.device_from_topic(topic)
            if device_id is not None:
                return codec, device_id
        return None, None

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
            keep_bytes=self._max_payload,
        )
        return Record(DLQ_TOPIC, (device_id or topic).encode(), value, reject.reason)

    # -- writing -----------------------------------------------------------------

    async def _write(self, delivery: Delivery, records: list[Record], started: float) -> None:
        assert self._producer is not None
        try:
            futures = [await self._producer.send(r.topic, r.value, key=r.key) for r in records]
        except KafkaError as exc:
            self.spawn("retry", self._retry(delivery, records, started, exc))
            return
        written = asyncio.gather(*futures)
        written.add_done_callback(lambda f: self._written(delivery, records, started, f))

    def _written(
        self, delivery: Delivery, records: list[Record], started: float, fut: asyncio.Future[Any]
    ) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self.spawn("retry", self._retry(delivery, records, started, exc))
            return
        self._count(records)
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
        metrics.ACKED.inc(self._acks.done(delivery))
        metrics.INFLIGHT.set(len(self._acks))
        if not self._acks:
            self._idle.set()

    async def _retry(
        self, delivery: Delivery, records: list[Record], started: float, exc: BaseException
    ) -> None:
        """Write again until Kafka takes it. The records already written become duplicates
        with the same event ids, which storage and alerting drop."""
        backoff = Backoff(first=0.2, cap=10.0)
        while True:
            metrics.PRODUCE_RETRIES.inc()
            log.warning("kafka write failed; retrying", extra={"error": repr(exc)})
            await backoff.wait()
            assert self._producer is not None
            try:
                futures = [await self._producer.send(r.topic, r.value, key=r.key) for r in records]
                await asyncio.gather(*futures)
            except KafkaError as err:
                exc = err
                continue
            break
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        self._written(delivery, records, started, done)

    @staticmethod
    def _count(records: list[Record]) -> None:
        for r in records:
            if r.topic == EVENTS_TOPIC:
                metrics.labelled(metrics.EVENTS, r.label).inc()
            elif r.topic == DLQ_TOPIC:
                metrics.labelled(metrics.REJECTS, r.label).inc()


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


def _reject(err: DecodeError) -> Reject:
    return Reject(err.reason, err.detail, err.protocol, err.index)
