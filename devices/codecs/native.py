"""The native v1 format (docs/native-format.md): carewatch's own JSON, for vendors who can.

Topic `carewatch/v1/devices/{device_id}/up`; payload one JSON object or an array of them,
each `{"kind": ..., "ts": ..., <kind fields>, "msg_id"?: ..., "device_id"?: ...}`. A bad
element of an array is rejected alone: the valid elements next to it still go through.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from devices.codecs.base import Codec, Decoded, Message
from devices.errors import DecodeError, Reason
from devices.events import COMMON_FIELDS, KINDS, Event, make_event

__all__ = ["CODEC", "MAX_BATCH", "decode", "device_from_topic", "topic_for"]

NAME = "native"
MAX_BATCH = 500
_TOPIC = re.compile(r"carewatch/v1/devices/([A-Za-z0-9][A-Za-z0-9._:-]{0,63})/up")
# Keys of the envelope, which are not kind fields.
_ENVELOPE = frozenset({"kind", "ts", "msg_id", "device_id"})


def topic_for(device_id: str) -> str:
    return f"carewatch/v1/devices/{device_id}/up"


def device_from_topic(topic: str) -> str | None:
    match = _TOPIC.fullmatch(topic)
    return match.group(1) if match else None


def decode(payload: bytes, device_id: str, received_at: datetime) -> Decoded:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(NAME, Reason.INVALID_JSON, str(exc)) from None
    if isinstance(doc, dict):
        return _decode_items([doc], device_id, received_at, batch=False)
    if not isinstance(doc, list):
        raise DecodeError(NAME, Reason.NOT_AN_OBJECT, f"want an object or array, got {_type(doc)}")
    if len(doc) > MAX_BATCH:
        raise DecodeError(NAME, Reason.BATCH_TOO_LARGE, f"{len(doc)} elements > {MAX_BATCH}")
    return _decode_items(doc, device_id, received_at, batch=True)


def _decode_items(
    items: list[Any], device_id: str, received_at: datetime, *, batch: bool
) -> Decoded:
    out = Decoded()
    for index, item in enumerate(items):
        try:
            out.events.append(_decode_one(item, device_id, received_at))
        except DecodeError as err:
            if not batch:
                raise
            err.index = index
            out.rejects.append(err)
    return out


def _decode_one(item: Any, device_id: str, received_at: datetime) -> Event:
    if not isinstance(item, dict):
        raise DecodeError(NAME, Reason.NOT_AN_OBJECT, f"want an object, got {_type(item)}")
    kind = item.get("kind")
    if kind is None:
        raise DecodeError(NAME, Reason.MISSING_KIND, "no 'kind'")
    if not isinstance(kind, str) or kind not in KINDS:
        raise DecodeError(NAME, Reason.UNKNOWN_KIND, f"{kind!r} is not one of {sorted(KINDS)}")
    claimed = item.get("device_id", device_id)
    if claimed != device_id:
        raise DecodeError(NAME, Reason.DEVICE_MISMATCH, f"{claimed!r} published on {device_id!r}")
    fields = {k: v for k, v in item.items() if k not in _ENVELOPE}
    reserved = sorted(fields.keys() & COMMON_FIELDS)
    if reserved:
        raise DecodeError(NAME, Reason.UNKNOWN_FIELD, f"{reserved} are set by carewatch")
    try:
        return make_event(
            device_id=device_id,
            kind=kind,
            ts=item.get("ts"),
            received_at=received_at,
            source=NAME,
            fields=fields,
            msg_id=_msg_id(item.get("msg_id")),
        )
    except ValidationError as exc:
        raise _from_validation(exc) from None


def _msg_id(value: Any) -> str | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, str | int)
        or not 0 < len(str(value)) <= 128
    ):
        raise DecodeError(
            NAME, Reason.INVALID_MSG_ID, "msg_id must be a string or integer, 1-128 chars"
        )
    return str(value)


def _from_validation(exc: ValidationError) -> DecodeError:
    """The first problem, named by field, with the reason its kind of error maps to."""
    first = exc.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"][1:]]  # [0] is the discriminator's tag
    where = ".".join(loc) or "event"
    if loc[:1] == ["ts"]:
        reason = Reason.INVALID_TIMESTAMP
    elif first["type"] == "extra_forbidden":
        reason = Reason.UNKNOWN_FIELD
    elif first["type"] == "missing":
        reason = Reason.MISSING_FIELD
    else:
        reason = Reason.INVALID_FIELD
    return DecodeError(NAME, reason, f"{where}: {first['msg']}")


def _type(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _decode_message(message: Message) -> Decoded:
    return decode(message.payload, message.device_id, message.received_at)


CODEC = Codec(
    name=NAME,
    subscriptions=("carewatch/v1/devices/+/up",),
    device_from_topic=device_from_topic,
    decode=_decode_message,
    broker_account=lambda device_id: (device_id, (topic_for(device_id),)),
    urgent=lambda payload: b'"sos"' in payload or b'"fall"' in payload,
)
