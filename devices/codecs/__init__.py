"""The codec registry: one module per protocol, each a pure function registered by name.

A codec turns one message's bytes (and the device id its topic names) into zero or more
canonical events, plus a `DecodeError` per element it had to reject. A message that cannot
be read at all raises `DecodeError`. Nothing else ever escapes a codec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from devices.errors import DecodeError
from devices.events import Event

__all__ = ["CODECS", "Codec", "Decoded", "get_codec"]


@dataclass
class Decoded:
    events: list[Event] = field(default_factory=list)
    rejects: list[DecodeError] = field(default_factory=list)


@dataclass(frozen=True)
class Codec:
    name: str
    # MQTT subscription filter for this protocol's uplinks.
    subscription: str
    # Device id named by a topic, or None if the topic is not one of ours.
    device_from_topic: Callable[[str], str | None]
    decode: Callable[[bytes, str, datetime], Decoded]


def _registry() -> dict[str, Codec]:
    from devices.codecs import native

    return {c.name: c for c in (native.CODEC,)}


CODECS: dict[str, Codec] = _registry()


def get_codec(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise KeyError(f"unknown codec {name!r}; known: {', '.join(sorted(CODECS))}") from None
