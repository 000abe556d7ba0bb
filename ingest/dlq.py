"""Dead-letter records: what was rejected, why, from where, with the raw bytes."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

import orjson

from devices.errors import printable

__all__ = ["Reject", "dlq_record"]


@dataclass(frozen=True)
class Reject:
    reason: str
    detail: str
    protocol: str | None = None
    index: int | None = None  # element of a batch payload, if only that element was bad


def dlq_record(
    reject: Reject,
    *,
    topic: str,
    device_id: str | None,
    payload: bytes,
    received_at: datetime,
    keep_bytes: int,
) -> bytes:
    """The JSON value written to `carewatch.dlq.v1` (documented in docs/native-format.md)."""
    kept = payload[:keep_bytes]
    return orjson.dumps(
        {
            "reason": reject.reason,
            # A detail may quote what a device sent (a NUL, a lone surrogate): the record
            # must still be written, or the whole message would be lost with it.
            "detail": printable(reject.detail),
            "protocol": reject.protocol,
            "index": reject.index,
            "topic": topic,
            "device_id": device_id,
            "received_at": received_at,
            "payload_size": len(payload),
            "payload_truncated": len(kept) < len(payload),
            "payload_b64": base64.b64encode(kept).decode(),
        }
    )
