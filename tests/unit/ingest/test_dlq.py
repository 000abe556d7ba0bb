"""A DLQ record says why, where from, and keeps the bytes (within bounds)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson

from ingest.dlq import Reject, dlq_record

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_record_keeps_reason_topic_time_and_payload() -> None:
    raw = dlq_record(
        Reject("invalid_json", "unexpected end", "native", None),
        topic="carewatch/v1/devices/d1/up",
        device_id="d1",
        payload=b"{oops",
        received_at=NOW,
        keep_bytes=100,
    )
    doc = orjson.loads(raw)
    assert doc["reason"] == "invalid_json" and doc["protocol"] == "native"
    assert doc["topic"] == "carewatch/v1/devices/d1/up" and doc["device_id"] == "d1"
    assert doc["received_at"] == "2026-11-22T08:00:00+00:00"
    assert base64.b64decode(doc["payload_b64"]) == b"{oops"
    assert doc["payload_size"] == 5 and doc["payload_truncated"] is False


def test_oversized_payload_is_truncated_and_says_so() -> None:
    doc = orjson.loads(
        dlq_record(
            Reject("payload_too_large", "too big"),
            topic="t",
            device_id=None,
            payload=b"x" * 1000,
            received_at=NOW,
            keep_bytes=10,
        )
    )
    assert doc["payload_size"] == 1000 and doc["payload_truncated"] is True
    assert base64.b64decode(doc["payload_b64"]) == b"x" * 10


def test_a_detail_quoting_what_a_device_sent_can_always_be_written() -> None:
    # Details may quote device input: a lone surrogate cannot be encoded as JSON, and an
    # unwritable record would cost the whole message (its SOS included) with it.
    doc = orjson.loads(
        dlq_record(
            Reject("unknown_field", "'\ud800x\x00' is not a field", "native", 0),
            topic="t",
            device_id="d1",
            payload=b"{}",
            received_at=NOW,
            keep_bytes=10,
        )
    )
    assert doc["detail"] == "'\\ud800x\\x00' is not a field"
