"""What every codec shares: the message it is given, what it returns, and its registration.

A codec turns one `Message` (bytes, topic, the device id the topic names, the registry's
device model) into zero or more canonical events, plus a `DecodeError` per element it had
to reject. A message that cannot be read at all raises `DecodeError`. Nothing else ever
escapes a codec, whatever the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from devices.errors import DecodeError
from devices.events import Event

__all__ = ["Codec", "Decoded", "Message"]


@dataclass
class Decoded:
    events: list[Event] = field(default_factory=list)
    rejects: list[DecodeError] = field(default_factory=list)


@dataclass(frozen=True)
class Message:
    """One message to decode, with what the transport and the registry know about it."""

    payload: bytes
    topic: str
    device_id: str  # named by the topic; a payload naming another device is rejected
    received_at: datetime
    model: str | None = None  # the device model from the registry, if it knows one
    clock_tz: str | None = None  # the zone the device's clock runs on (registry); None: UTC


@dataclass(frozen=True)
class Codec:
    name: str
    # MQTT subscription filters for this protocol's uplinks.
    subscriptions: tuple[str, ...]
    # Device id named by a topic, or None if the topic is not one of ours.
    device_from_topic: Callable[[str], str | None]
    decode: Callable[[Message], Decoded]
    # How a device of this format logs in to the broker itself: (username, the topics it may
    # publish). None: it reaches carewatch through a gateway or a network server instead.
    broker_account: Callable[[str], tuple[str, tuple[str, ...]]] | None = None
    # The device ids this format's messages can carry, where narrower than the registry's
    # (a watch frame's id field has no ':'): a registered id outside it could never send.
    device_ids: re.Pattern[str] | None = None
    # Whether a payload may carry an alarm, from a cheap look at its bytes (no decode):
    # ingest handles such messages before ordinary ones waiting (ingest/work_queue.py).
    # A false positive costs nothing; a miss only leaves the message in arrival order.
    urgent: Callable[[bytes], bool] | None = None
