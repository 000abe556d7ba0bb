"""Records a worker cannot use, set aside on `carewatch.dlq.v1` with where they came from.

A record that cannot be decoded, or that the worker's handler keeps failing on when every
other record goes through (a string PostgreSQL refuses, a date no arithmetic survives),
must not hold its partition: every later record of its devices would wait behind it,
SOS presses included. `DeadLetters.poison` is the consumer's poison hook
(plumbing.consumer): it writes the record, with the worker, topic, partition, offset and
error, next to ingest's rejects, where `carewatch dlq list` shows both.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client import Counter

from plumbing.component import Component
from plumbing.kafka import DLQ_TOPIC, make_producer

__all__ = ["SET_ASIDE", "DeadLetters", "worker_dead_letter"]

log = logging.getLogger(__name__)

SET_ASIDE = Counter(
    "carewatch_worker_dead_letters",
    "records a worker set aside on the dead-letter topic",
    ["worker", "reason"],
)

# What a record can at most keep of the bytes it set aside (the records are read by people).
_KEEP_BYTES = 64 * 1024


def worker_dead_letter(
    worker: str, record: ConsumerRecord, error: BaseException, reason: str
) -> bytes:
    """The JSON value written to `carewatch.dlq.v1` (documented in docs/native-format.md,
    "Records a worker set aside"): the fields of ingest's rejects, plus the worker and the
    record's partition and offset."""
    payload: bytes = record.value or b""
    kept = payload[:_KEEP_BYTES]
    key: bytes = record.key or b""
    return orjson.dumps(
        {
            "reason": reason,
            "detail": f"{type(error).__name__}: {error}"[:500],
            "worker": worker,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "device_id": key.decode(errors="replace") or None,
            "received_at": datetime.now(UTC),
            "payload_size": len(payload),
            "payload_truncated": len(kept) < len(payload),
            "payload_b64": base64.b64encode(kept).decode(),
        }
    )


class DeadLetters(Component):
    """A producer for set-aside records. A write that fails raises: the consumer then
    stops without committing, so the record is read again rather than lost."""

    def __init__(self, *, bootstrap: str, client_id: str = "carewatch-dead-letters") -> None:
        super().__init__(name="dead-letters")
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def _open(self) -> None:
        self._producer = make_producer(self._bootstrap, client_id=self._client_id)
        await self._producer.start()

    async def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def poison(
        self, worker: str, record: ConsumerRecord, error: BaseException, reason: str
    ) -> None:
        if self._producer is None:
            raise RuntimeError("dead letters: not started")
        value = worker_dead_letter(worker, record, error, reason)
        await self._producer.send_and_wait(DLQ_TOPIC, value, key=record.key)
        SET_ASIDE.labels(worker, reason).inc()
        log.error(
            "record set aside on the dead-letter topic",
            extra={
                "worker": worker,
                "reason": reason,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": repr(error)[:300],
            },
        )
