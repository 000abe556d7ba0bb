"""What ingest refuses beyond undecodable bytes: who may send, how often, and when.

Each check names its reason (the DLQ record's `reason` and the metric label). Alarms are
never refused for rate or time: an SOS from a device that is flooding, or whose clock is
wrong, still goes through (with its time corrected and flagged).

Times are bounded on both sides: too far ahead here (`check_times`), before 2000 already
in the event model (`devices.events`), where the codecs keep an alarm at its receive time
(`devices.codecs.salvage`) and refuse anything else as `invalid_timestamp`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.events import ALARM_KINDS, Event
from devices.registry import Device
from ingest.dlq import Reject

__all__ = [
    "DEVICE_DISABLED",
    "FORMAT_MISMATCH",
    "INTERNAL_ERROR",
    "PAYLOAD_TOO_LARGE",
    "RATE_LIMITED",
    "REDATED_KINDS",
    "REGISTRY_UNAVAILABLE",
    "TIMESTAMP_IN_FUTURE",
    "UNKNOWN_DEVICE",
    "UNROUTABLE_TOPIC",
    "RateLimiter",
    "admit_device",
    "check_times",
]

PAYLOAD_TOO_LARGE = "payload_too_large"
UNROUTABLE_TOPIC = "unroutable_topic"
INTERNAL_ERROR = "internal_error"
UNKNOWN_DEVICE = "unknown_device"
DEVICE_DISABLED = "device_disabled"
FORMAT_MISMATCH = "format_mismatch"
RATE_LIMITED = "rate_limited"
TIMESTAMP_IN_FUTURE = "timestamp_in_future"
# The device is not in ingest's memory and the registry cannot be asked: its alarms go
# through unchecked (the broker has already checked its credentials and topic), the rest
# is refused, its bytes kept in the DLQ record.
REGISTRY_UNAVAILABLE = "registry_unavailable"


def admit_device(device: Device | None, device_id: str, codec: str) -> Reject | None:
    """Why this device may not send on this codec's topics, or None if it may."""
    if device is None:
        return Reject(UNKNOWN_DEVICE, f"{device_id!r} is not registered", codec)
    if not device.active:
        return Reject(DEVICE_DISABLED, f"{device_id!r} is disabled", codec)
    if device.format != codec:
        return Reject(
            FORMAT_MISMATCH, f"{device_id!r} is registered as {device.format}, sent {codec}", codec
        )
    return None


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per device: `rate` messages per second, bursts up to `burst`."""

    def __init__(self, *, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, device_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(device_id)
        if bucket is None:
            bucket = self._buckets[device_id] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


def only_alarms(
    events: list[Event], codec: str, reason: str = RATE_LIMITED, why: str = "over the device's rate"
) -> tuple[list[Event], list[Reject]]:
    """A message refused for `reason`: its alarms go through, the rest is refused (one
    reject, "N event(s) `why`")."""
    alarms = [e for e in events if e.kind in ALARM_KINDS]
    dropped = len(events) - len(alarms)
    if not dropped:
        return alarms, []
    return alarms, [Reject(reason, f"{dropped} event(s) {why}", codec)]


# Kept at their receive time when their device time is in the future: the alarms, and the
# state changes that raise alerts (leaving a zone, taking a watch off). A device reports
# these when they happen, so the receive time is close to the truth, and a device whose
# clock runs ahead (a watch set to local time) must not lose them.
REDATED_KINDS = ALARM_KINDS | {"geofence", "worn"}


def check_times(
    events: list[Event], received_at: datetime, max_ahead: timedelta, codec: str
) -> tuple[list[Event], list[Reject]]:
    """Refuse events dated too far ahead of their arrival; `REDATED_KINDS` get the receive
    time instead, with the device's claim kept in `device_ts` (their id does not change)."""
    kept: list[Event] = []
    rejects: list[Reject] = []
    limit = received_at + max_ahead
    for event in events:
        if event.ts <= limit:
            kept.append(event)
        elif event.kind in REDATED_KINDS:
            kept.append(event.model_copy(update={"ts": received_at, "device_ts": event.ts}))
        else:
            ahead = (event.ts - received_at).total_seconds()
            detail = f"{event.kind} dated {ahead:.0f} s after it arrived"
            rejects.append(Reject(TIMESTAMP_IN_FUTURE, detail, codec))
    return kept, rejects
