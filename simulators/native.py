"""The native v1 format, device side: the inverse of `devices.codecs.native`.

A message is a list of event dicts `{"kind", "ts", <kind fields>, "msg_id"?}` with `ts` as
epoch seconds or an aware datetime; `encode` turns it into the bytes a device publishes on
`topic_for(device_id)`. `Encoder` adds what a real device adds: a `msg_id` per event.
"""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from typing import Any

import orjson

from devices.codecs.native import alarm_topic_for, topic_for

__all__ = ["Encoder", "Message", "encode", "topic_for"]

# One MQTT message: the events it carries, in the order the device wrote them.
Message = list[dict[str, Any]]


def encode(messages: Message) -> bytes:
    """One JSON object for a single event, else an array; `ts` as RFC 3339 UTC with `Z`.

    Pure: the same events (with the same msg_ids) always give the same bytes.
    """
    items = [_wire(item) for item in messages]
    return orjson.dumps(items[0] if len(items) == 1 else items)


def _wire(item: dict[str, Any]) -> dict[str, Any]:
    if "ts" not in item:
        return dict(item)  # the format allows it: the receive time stands in
    return {**item, "ts": _rfc3339(item["ts"])}


def _rfc3339(ts: float | datetime) -> str:
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise ValueError("ts must be timezone-aware")
        moment = ts.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Encoder:
    """One device's uplink: its topic, and a msg_id for every event it sends.

    msg_ids are `{boot_id}-{counter}`. The boot id is random unless given: a restarted
    simulator (same seed, same device ids) must not reuse msg_ids, or downstream
    deduplication would take its new events for redeliveries and drop them.
    """

    def __init__(self, device_id: str, *, boot_id: str | None = None) -> None:
        self.device_id = device_id
        self.topic = topic_for(device_id)
        self.alarm_topic: str | None = alarm_topic_for(device_id)  # sos and fall go there
        self.boot_id = boot_id or secrets.token_hex(4)
        self._counter = itertools.count(1)

    def stamp(self, message: Message) -> Message:
        """The events with a fresh msg_id each (kept where one is already set)."""
        return [
            item if "msg_id" in item else {**item, "msg_id": self._next_id()} for item in message
        ]

    def repeatable(self, message: Message) -> bool:
        """A resend carries the same ids (msg_id, or device time in the content hash)."""
        return True

    def encode(self, message: Message) -> bytes:
        return encode(self.stamp(message))

    def _next_id(self) -> str:
        return f"{self.boot_id}-{next(self._counter)}"
