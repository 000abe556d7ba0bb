"""The native v1 format (docs/native-format.md): carewatch's own JSON, for vendors who can.

Topic `carewatch/v1/devices/{device_id}/up`, and `.../alarm` for `sos` and `fall` only (read
by ingest on a session of its own, never queued behind telemetry); payload one JSON object
or an array of them,
each `{"kind": ..., "ts": ..., <kind fields>, "msg_id"?: ..., "device_id"?: ...}`. A bad
element of an array is rejected alone: the valid elements next to it still go through. An
`sos` or `fall` is never rejected for a side field (time, position, msg_id, a field it does
not have): it is kept without it and flagged (`devices.codecs.salvage`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from devices.codecs.base import Codec, Decoded, Message, load_json
from devices.codecs.salvage import Dropped, make_alarm
from devices.errors import DecodeError, Reason
from devices.events import ALARM_KINDS, COMMON_FIELDS, KINDS, Event, make_event

__all__ = ["CODEC", "MAX_BATCH", "alarm_topic_for", "decode", "device_from_topic", "topic_for"]

NAME = "native"
MAX_BATCH = 500
_TOPIC = re.compile(r"carewatch/v1/devices/([A-Za-z0-9][A-Za-z0-9._:-]{0,63})/(?:up|alarm)")
# Keys of the envelope, which are not kind fields.
_ENVELOPE = frozenset({"kind", "ts", "msg_id", "device_id"})
# What carewatch sets: never taken from a device.
_RESERVED = COMMON_FIELDS | {"salvaged"}


def topic_for(device_id: str) -> str:
    return f"carewatch/v1/devices/{device_id}/up"


def alarm_topic_for(device_id: str) -> str:
    return f"carewatch/v1/devices/{device_id}/alarm"


def device_from_topic(topic: str) -> str | None:
    match = _TOPIC.fullmatch(topic)
    return match.group(1) if match else None


def decode(
    payload: bytes, device_id: str, received_at: datetime, *, alarms_only: bool = False
) -> Decoded:
    """`alarms_only`: it came on the alarm topic, where any other kind is refused."""
    doc = load_json(NAME, payload)
    if isinstance(doc, dict):
        return _decode_items([doc], device_id, received_at, batch=False, alarms_only=alarms_only)
    if not isinstance(doc, list):
        raise DecodeError(NAME, Reason.NOT_AN_OBJECT, f"want an object or array, got {_type(doc)}")
    if len(doc) > MAX_BATCH:
        raise DecodeError(NAME, Reason.BATCH_TOO_LARGE, f"{len(doc)} elements > {MAX_BATCH}")
    return _decode_items(doc, device_id, received_at, batch=True, alarms_only=alarms_only)


def _decode_items(
    items: list[Any], device_id: str, received_at: datetime, *, batch: bool, alarms_only: bool
) -> Decoded:
    """Each element on its own: whatever fails in one is that element's reject."""
    out = Decoded()
    for index, item in enumerate(items):
        at = index if batch else None
        try:
            if alarms_only:
                _refuse_unless_alarm(item)
            event, salvaged = _decode_guarded(item, device_id, received_at, at)
        except DecodeError as err:
            if not batch:
                raise
            err.index = index
            out.rejects.append(err)
            continue
        out.events.append(event)
        if salvaged is not None:
            out.rejects.append(salvaged)
    return out


def _decode_guarded(
    item: Any, device_id: str, received_at: datetime, index: int | None
) -> tuple[Event, DecodeError | None]:
    try:
        return _decode_one(item, device_id, received_at, index)
    except DecodeError:
        raise
    except Exception as exc:  # a bug here must cost this element only, and never an alarm
        if not _is_alarm(item, device_id):
            raise DecodeError(NAME, Reason.INTERNAL_ERROR, repr(exc)[:500]) from None
        dropped = Dropped()
        dropped.add("fields", f"decoder failed: {exc!r}"[:500])
        kind = item["kind"]
        return make_alarm(
            NAME, device_id=device_id, kind=kind, ts=None, received_at=received_at,
            fields={}, dropped=dropped, index=index,
        )  # fmt: skip


def _refuse_unless_alarm(item: Any) -> None:
    """The alarm topic jumps every queue; what is not an alarm may not use it."""
    kind = item.get("kind") if isinstance(item, dict) else None
    if kind not in ALARM_KINDS:
        detail = f"{kind!r} on the alarm topic, which carries sos and fall only: send it to /up"
        raise DecodeError(NAME, Reason.NOT_AN_ALARM, detail)


def _is_alarm(item: Any, device_id: str) -> bool:
    return (
        isinstance(item, dict)
        and item.get("kind") in ALARM_KINDS
        and item.get("device_id", device_id) == device_id
    )


def _decode_one(
    item: Any, device_id: str, received_at: datetime, index: int | None
) -> tuple[Event, DecodeError | None]:
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
    if kind in ALARM_KINDS:
        return _alarm(item, kind, fields, device_id, received_at, index)
    reserved = sorted(fields.keys() & _RESERVED)
    if reserved:
        raise DecodeError(NAME, Reason.UNKNOWN_FIELD, f"{reserved} are set by carewatch")
    unreadable = _unreadable_keys(fields)
    if unreadable:
        raise DecodeError(NAME, Reason.UNKNOWN_FIELD, f"{unreadable} are not valid Unicode")
    try:
        event = make_event(
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
    return event, None


def _alarm(
    item: dict[str, Any],
    kind: str,
    fields: dict[str, Any],
    device_id: str,
    received_at: datetime,
    index: int | None,
) -> tuple[Event, DecodeError | None]:
    """An sos or fall is kept whatever its side fields say (devices.codecs.salvage): only
    its kind and device decide whether it is one."""
    dropped = Dropped()
    for name in sorted(fields.keys() & _RESERVED):
        del fields[name]
        dropped.unknown(name, "set by carewatch")
    for name in _unreadable_keys(fields):
        del fields[name]
        dropped.unknown(name, "not valid Unicode")
    try:
        msg_id = _msg_id(item.get("msg_id"))
    except DecodeError as err:
        msg_id = None
        dropped.add("msg_id", err.detail)
    return make_alarm(
        NAME, device_id=device_id, kind=kind, ts=item.get("ts"), received_at=received_at,
        fields=fields, msg_id=msg_id, dropped=dropped, index=index,
    )  # fmt: skip


def _unreadable_keys(fields: dict[str, Any]) -> list[str]:
    """Keys holding a lone surrogate: validation cannot even name them in an error."""
    return [key for key in fields if not _is_unicode(key)]


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _msg_id(value: Any) -> str | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, str | int)
        or not 0 < len(str(value)) <= 128
        or not _is_unicode(str(value))  # it is hashed as JSON, which cannot hold a surrogate
    ):
        raise DecodeError(
            NAME, Reason.INVALID_MSG_ID, "msg_id must be a string or integer, 1-128 chars"
        )
    return str(value)


def _from_validation(exc: ValidationError) -> DecodeError:
    """The first problem, named by field, with the reason its kind of error maps to."""
    first = _most_telling(exc)
    loc = [str(part) for part in first["loc"][1:]]  # [0] is the discriminator's tag
    # A union's branches are named by their validators (`function-after[...]`): unreadable.
    where = ".".join(part for part in loc if "[" not in part) or "event"
    if loc[:1] == ["ts"]:
        reason = Reason.INVALID_TIMESTAMP
    elif first["type"] == "extra_forbidden":
        reason = Reason.UNKNOWN_FIELD
    elif first["type"] == "missing":
        reason = Reason.MISSING_FIELD
    else:
        reason = Reason.INVALID_FIELD
    return DecodeError(NAME, reason, f"{where}: {first['msg']}")


def _most_telling(exc: ValidationError) -> Any:
    """The first error, or the first one our own checks raised (a NUL in a string, a time
    before 2000): of a union (`state`), the branch that fits the value says more."""
    errors = exc.errors(include_url=False)
    return next((e for e in errors if e["type"] == "value_error"), errors[0])


def _type(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _own_topics(device_id: str) -> tuple[str, ...]:
    return topic_for(device_id), alarm_topic_for(device_id)


def _decode_message(message: Message) -> Decoded:
    alarms_only = message.topic.endswith("/alarm")
    return decode(message.payload, message.device_id, message.received_at, alarms_only=alarms_only)


CODEC = Codec(
    name=NAME,
    subscriptions=("carewatch/v1/devices/+/up",),
    device_from_topic=device_from_topic,
    decode=_decode_message,
    broker_account=lambda device_id: (device_id, _own_topics(device_id)),
    urgent=lambda payload: b'"sos"' in payload or b'"fall"' in payload,
    alarm_subscriptions=("carewatch/v1/devices/+/alarm",),
)
