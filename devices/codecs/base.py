"""What every codec shares: the message it is given, what it returns, and its registration.

A codec turns one `Message` (bytes, topic, the device id the topic names, the registry's
device model) into zero or more canonical events, plus a `DecodeError` per element it had
to reject. A message that cannot be read at all raises `DecodeError`. Nothing else ever
escapes a codec, whatever the bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from devices.errors import DecodeError, Reason
from devices.events import Event

__all__ = ["Codec", "Decoded", "Message", "load_json"]


def load_json(protocol: str, payload: bytes) -> Any:
    """The JSON document of a payload; DecodeError(INVALID_JSON) if it is not one.

    orjson refuses, for the whole document, some JSON it cannot represent: a lone surrogate
    escape (`"\\ud800"`) and a number beyond double range (`1e400`). Such a value may sit in
    a field nobody reads, or next to an SOS: those documents are read by the standard
    library instead, so that only the field holding the value is refused, by the model.
    """
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise DecodeError(protocol, Reason.INVALID_JSON, str(error)) from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: refused, as orjson does


@dataclass
class Decoded:
    events: list[Event] = field(default_factory=list)
    rejects: list[DecodeError] = field(default_factory=list)


class Message(NamedTuple):
    """One message to decode, with what the transport and the registry know about it.
    (A named tuple: made for every message, about a third of a frozen dataclass's cost.)"""

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
    # Filters of the topics this format's alarms travel on, where it has them: ingest reads
    # them on an MQTT session of its own, so the broker's queue of ordinary messages for
    # ingest can never hold an alarm back. `device_from_topic` names their devices too.
    alarm_subscriptions: tuple[str, ...] = ()
