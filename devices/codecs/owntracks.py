"""OwnTracks: the OwnTracks phone app's MQTT JSON (owntracks.org/booklet/tech/json/).

The app publishes on `owntracks/{user}/{device}` (its default `pubTopicBase`) and on the
sub-topics `/event` (transitions) and `/step` (steps). Its carewatch device id is
`{user}:{device}`; the broker account is the OwnTracks user, which the app also puts into
its topic (`%u`), so a phone can only write its own topics.

What each `_type` becomes:

    location    -> `location`, plus `battery` when it carries `batt`
    transition  -> `geofence` (`event` enter/leave, `desc` as the zone)
    steps       -> `activity` with `steps` (iOS only)
    lwt         -> nothing (see `_IGNORED`)
    beacon, card, cmd, configuration, status, request, waypoint, waypoints -> nothing
    encrypted   -> rejected: carewatch holds no OwnTracks payload key
    anything else -> rejected as an unknown message type
    a zero-length payload -> nothing: MQTT's way to clear a retained message

OwnTracks has no SOS or fall message. `t: "u"` marks a location the user published by
hand (the app's "publish now" button): an elderly person pressing it may want to be seen,
but it is not a call for help, and treating it as one would raise false alarms whenever a
carer checks the app. It decodes to an ordinary `location`.

OwnTracks messages carry no message id (recent Android builds add a random `_id`; iOS does
not), so every event id is a content hash. A redelivered or retained message (the app
publishes locations retained by default, so a restarted ingest gets the last one again)
keeps its `tst` and fields, hence its id, and deduplicates downstream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import ValidationError

from devices.codecs.base import Codec, Decoded, Message, load_json
from devices.errors import DecodeError, Reason
from devices.events import Event, make_event

__all__ = [
    "CODEC",
    "NAME",
    "SUBSCRIPTIONS",
    "broker_account",
    "decode",
    "device_from_topic",
    "topics_for",
]

NAME = "owntracks"
SUBSCRIPTIONS = ("owntracks/+/+", "owntracks/+/+/event", "owntracks/+/+/step")
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_TOPIC = re.compile(rf"owntracks/({_PART})/({_PART})(?:/event|/step)?")
# Characters that would widen a broker ACL entry if they reached a topic.
_UNSAFE = re.compile(r"[/+#\x00]")

# Plausible `tst` values. OwnTracks sends epoch seconds; a value past 2100 is almost always
# milliseconds from a third-party publisher, and one before 2000 a phone with no clock yet.
_EARLIEST = 946_684_800  # 2000-01-01T00:00:00Z
_LATEST = 4_102_444_800  # 2100-01-01T00:00:00Z
_MILLIS = 100_000_000_000  # above this an epoch is surely in milliseconds

# OwnTracks key -> canonical location field. Optional: a bad one is left out (and reported),
# the position itself is kept, because where the person is matters more than how fast.
_LOCATION_EXTRAS = {
    "acc": "accuracy_m",
    "vel": "speed_kmh",
    "cog": "course_deg",
    "alt": "altitude_m",
}
# Canonical field -> OwnTracks key, to name fields in reject details as the vendor knows them.
_WIRE = {
    **{field: key for key, field in _LOCATION_EXTRAS.items()},
    "battery_pct": "batt",
    "zone": "desc",
    "transition": "event",
}

# `_type`s that carry nothing carewatch acts on; they decode to no events, never an error.
# `lwt` is the broker's "last will": it publishes it when the phone's connection dropped
# without a DISCONNECT. It is not a heartbeat (that would say the phone is alive, the
# opposite of what happened, and would reset the silence timer `device_offline` runs on),
# and its `tst` is when the phone *connected*, not when it was lost. Phones drop off mobile
# networks all the time and queue their messages until they are back, so the absence of
# events, which the `device_offline` alert is defined on, is the better signal.
_IGNORED = frozenset(
    {
        "lwt",
        "beacon",  # iOS beacon ranging: proximity to a BLE beacon, not a position
        "card",  # a name and avatar for the map
        "cmd",  # a command *for* a phone (they belong on /cmd): nothing the phone reports
        "configuration",  # the app's settings dump
        "status",  # app and OS state (permissions, background mode)
        "request",  # iOS tour / sharing requests
        "waypoint",  # a region defined on the phone; its enter/leave arrive as transitions
        "waypoints",
    }
)


class _Context(NamedTuple):
    device_id: str
    received_at: datetime


def device_from_topic(topic: str) -> str | None:
    """`{user}:{device}` for the base topic and its /event and /step sub-topics, else None."""
    match = _TOPIC.fullmatch(topic)
    return f"{match.group(1)}:{match.group(2)}" if match else None


def topics_for(device_id: str) -> tuple[str, ...]:
    """What the phone `{user}:{device}` may publish: its base topic and everything below.

    It formats without judging: the registry validates an id by checking that
    `device_from_topic(topics_for(id)[0]) == id`. Only characters that would turn the ACL
    entry into a wildcard or another path raise ValueError.
    """
    if not device_id or _UNSAFE.search(device_id):
        raise ValueError(f"{device_id!r} cannot name an OwnTracks topic")
    user, _, device = device_id.partition(":")
    base = f"owntracks/{user}/{device}"
    return (base, f"{base}/#")


def broker_account(device_id: str) -> tuple[str, tuple[str, ...]]:
    """(MQTT username, topics it may publish): the username is the OwnTracks user."""
    return device_id.partition(":")[0], topics_for(device_id)


def decode(payload: bytes, device_id: str, received_at: datetime) -> Decoded:
    """One OwnTracks message: events, plus a reject per optional field left out."""
    if not payload:
        return Decoded()  # a cleared retained message (the app sends one to un-share)
    doc = _load(payload)
    kind = _message_type(doc)
    handler = _HANDLERS.get(kind)
    if handler is not None:
        _check_topic(doc, device_id)
        return handler(doc, _Context(device_id, received_at))
    if kind in _IGNORED:
        return Decoded()
    if kind == "encrypted":
        # Not INVALID_ENCODING: the bytes are fine, carewatch just cannot read them. The key
        # lives only in the app (it is never exported), and TLS already protects the link.
        raise DecodeError(
            NAME,
            Reason.UNKNOWN_MESSAGE_TYPE,
            "payload encryption is on: carewatch cannot decrypt it; clear the app's"
            " encryption key and use TLS instead",
        )
    raise DecodeError(NAME, Reason.UNKNOWN_MESSAGE_TYPE, f"_type {_short(kind)} is not OwnTracks")


def _load(payload: bytes) -> dict[str, Any]:
    doc = load_json(NAME, payload)
    if not isinstance(doc, dict):
        raise DecodeError(NAME, Reason.NOT_AN_OBJECT, f"want an object, got {_type(doc)}")
    return doc


def _message_type(doc: dict[str, Any]) -> str:
    kind = doc.get("_type")
    if kind is None:
        raise DecodeError(NAME, Reason.MISSING_FIELD, "no '_type'")
    if not isinstance(kind, str):
        raise DecodeError(NAME, Reason.INVALID_FIELD, f"_type: want a string, got {_type(kind)}")
    return kind


def _check_topic(doc: dict[str, Any], device_id: str) -> None:
    """The app copies its publish topic into `topic` in HTTP mode; bridges pass it on."""
    claimed = doc.get("topic")
    if claimed is None:
        return
    if not isinstance(claimed, str):
        raise DecodeError(NAME, Reason.INVALID_FIELD, f"topic: want a string, got {_type(claimed)}")
    if device_from_topic(claimed) != device_id:
        raise DecodeError(
            NAME, Reason.DEVICE_MISMATCH, f"topic {_short(claimed)} published by {device_id!r}"
        )


# -- the message types -----------------------------------------------------------------


def _location(doc: dict[str, Any], ctx: _Context) -> Decoded:
    ts = _timestamp(doc, "tst")
    out = Decoded()
    fields = {"lat": _required_number(doc, "lat"), "lon": _required_number(doc, "lon")}
    optional = _optional_numbers(doc, _LOCATION_EXTRAS, out.rejects)
    fields.update(optional)
    out.events.append(_event("location", ts, fields, ctx, optional=optional, rejects=out.rejects))
    # Not used: `t` (see the module docstring); `inregions`, repeated on every fix, since
    # transitions say when a boundary was crossed; `tid`, a display label.
    battery = _optional_numbers(doc, {"batt": "battery_pct"}, out.rejects)
    if battery:
        try:
            out.events.append(_event("battery", ts, battery, ctx))
        except DecodeError as err:  # a bad battery reading must not cost the position
            out.rejects.append(DecodeError(NAME, err.reason, f"{err.detail}; left out"))
    return out


def _transition(doc: dict[str, Any], ctx: _Context) -> Decoded:
    # `tst` is when the phone crossed the boundary; `wtst` is when the region was defined
    # (it identifies the region in old app versions) and is not the event's time.
    ts = _timestamp(doc, "tst")
    event = doc.get("event")
    if event is None:
        raise DecodeError(NAME, Reason.MISSING_FIELD, "no 'event' (enter or leave)")
    if event not in ("enter", "leave"):
        raise DecodeError(NAME, Reason.INVALID_FIELD, f"event: {_short(event)} is not enter/leave")
    fields = {"transition": event, "zone": _zone(doc)}
    return Decoded(events=[_event("geofence", ts, fields, ctx)])


def _zone(doc: dict[str, Any]) -> str:
    """The region's name (`desc`), else its id (`rid`): `desc` is optional in the format."""
    for key in ("desc", "rid"):
        value = doc.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise DecodeError(
                NAME, Reason.INVALID_FIELD, f"{key}: want a string, got {_type(value)}"
            )
        return value
    raise DecodeError(NAME, Reason.MISSING_FIELD, "no 'desc' or 'rid' naming the region")


def _steps(doc: dict[str, Any], ctx: _Context) -> Decoded:
    steps = _required_number(doc, "steps")
    if steps == -1:
        return Decoded()  # the app's "this phone cannot count steps": no reading, no error
    # The count covers `from`..`to`, which a `reportSteps` command may set to another day;
    # the reading is as of `to`. Without it, the request time `tst` is the best there is.
    ts = _timestamp(doc, "to" if doc.get("to") is not None else "tst")
    return Decoded(events=[_event("activity", ts, {"steps": steps}, ctx)])


_HANDLERS: dict[str, Callable[[dict[str, Any], _Context], Decoded]] = {
    "location": _location,
    "transition": _transition,
    "steps": _steps,
}


# -- fields ------------------------------------------------------------------------------


def _timestamp(doc: dict[str, Any], key: str) -> datetime:
    value = doc.get(key)
    if value is None:
        raise DecodeError(NAME, Reason.MISSING_FIELD, f"no '{key}' (epoch seconds)")
    if not _is_number(value):
        raise DecodeError(
            NAME, Reason.INVALID_TIMESTAMP, f"{key}: want epoch seconds, got {_type(value)}"
        )
    if not _EARLIEST <= value < _LATEST:
        hint = "; milliseconds? OwnTracks sends seconds" if abs(value) >= _MILLIS else ""
        raise DecodeError(
            NAME, Reason.INVALID_TIMESTAMP, f"{key}: {value} is not between 2000 and 2100{hint}"
        )
    return datetime.fromtimestamp(value, UTC)


def _required_number(doc: dict[str, Any], key: str) -> float | int:
    value = doc.get(key)
    if value is None:
        raise DecodeError(NAME, Reason.MISSING_FIELD, f"no '{key}'")
    if not _is_number(value):
        raise DecodeError(NAME, Reason.INVALID_FIELD, f"{key}: want a number, got {_type(value)}")
    return value


def _optional_numbers(
    doc: dict[str, Any], keys: dict[str, str], rejects: list[DecodeError]
) -> dict[str, Any]:
    """The canonical fields for `keys` that are numbers; each one that is not is reported.

    JSON null counts as absent: it says "no value", as a missing key does.
    """
    fields: dict[str, Any] = {}
    for key, field in keys.items():
        value = doc.get(key)
        if value is None:
            continue
        if _is_number(value):
            fields[field] = value
        else:
            detail = f"{key}: want a number, got {_type(value)}; left out"
            rejects.append(DecodeError(NAME, Reason.INVALID_FIELD, detail))
    return fields


def _event(
    kind: str,
    ts: datetime,
    fields: dict[str, Any],
    ctx: _Context,
    *,
    optional: Iterable[str] = (),
    rejects: list[DecodeError] | None = None,
) -> Event:
    """Validate one event. An `optional` field the model refuses is left out, reported in
    `rejects`, and the event built without it; any other refusal rejects the event."""
    droppable = set(optional)
    while True:
        try:
            return make_event(
                device_id=ctx.device_id,
                kind=kind,
                ts=ts,
                received_at=ctx.received_at,
                source=NAME,
                fields=fields,
                msg_id=None,  # OwnTracks has no message id: the content hash is the id
            )
        except ValidationError as exc:
            field, problem = _first_problem(exc)
            detail = f"{_WIRE.get(field, field)}: {problem}"
            if field not in droppable or rejects is None:
                raise DecodeError(NAME, Reason.INVALID_FIELD, detail) from None
            rejects.append(DecodeError(NAME, Reason.INVALID_FIELD, f"{detail}; left out"))
            droppable.discard(field)
            fields = {k: v for k, v in fields.items() if k != field}


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"][1:]]  # [0] is the discriminator's tag
    return ".".join(loc) or "event", first["msg"]


def _is_number(value: Any) -> bool:
    # bool is an int in Python, and pydantic would turn "51.2" into 51.2: OwnTracks sends
    # JSON numbers, so anything else is a publisher bug worth a clear answer.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _short(value: Any) -> str:
    """A value for a reject detail, cut short: details land in logs and DLQ records."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decode_message(message: Message) -> Decoded:
    return decode(message.payload, message.device_id, message.received_at)


CODEC = Codec(
    name=NAME,
    subscriptions=SUBSCRIPTIONS,
    device_from_topic=device_from_topic,
    decode=_decode_message,
    broker_account=broker_account,
)
