"""What The Things Stack and ChirpStack uplinks have in common, written once.

Both network servers wrap a device's application payload in a JSON envelope. `ttn` and
`chirpstack` read their envelope into an `Uplink` (with `JsonFields`, which turns every
malformed field into a `DecodeError`); `decode_uplink` then picks the payload decoder, runs
it and turns its readings into canonical events:

- One source of truth: events come from the device's own bytes, decoded by carewatch. A
  payload formatter's output in the envelope (TTN `decoded_payload`, ChirpStack `object`) is
  ignored, so editing a formatter on the network server cannot change what carewatch alerts on.
- Time: these devices have no clock, so `ts` is the network server's receive time. Records a
  device stored and re-sent keep the device time they carry. A network time that is there
  but broken (not RFC 3339 with an offset, before 2000) rejects the readings it would date
  as `invalid_timestamp`, except alarms: an sos or fall is never lost for a side field, it
  is kept at carewatch's receive time and flagged (`devices.codecs.salvage`).
- Identity: each event's msg_id is `{uplink key}/{reading index}`. The key is the frame
  counter plus what keeps it unique after a rejoin restarts the counter at 0 (the session or
  deduplication id and the network receive time). A redelivered MQTT message is the same
  envelope, so it gets the same ids and deduplicates downstream.
- Nothing is swallowed: an uplink that carries no readings (the information packet sent after
  joining, an empty frame) is a `heartbeat`; readings decoded before an undecodable tail are
  kept and the tail is rejected next to them, so the DLQ keeps the bytes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from pydantic import ValidationError

from devices.codecs import milesight
from devices.codecs.base import Decoded, Message, load_json
from devices.codecs.salvage import Dropped, make_alarm
from devices.errors import DecodeError, Reason
from devices.events import ALARM_KINDS, Event, make_event

__all__ = ["MAX_FRAME", "U32", "JsonFields", "Uplink", "decode_uplink", "uplink_key"]

# The largest FRMPayload any LoRaWAN region allows. Anything longer did not come off the air,
# and would let one message fan out into thousands of events.
MAX_FRAME = 242
U32 = 0xFFFF_FFFF


@dataclass(frozen=True)
class Uplink:
    """One uplink, as read from a network server's envelope."""

    payload: bytes
    f_port: int | None
    key: str  # same for a redelivery of this uplink, different for every other (uplink_key)
    network_time: datetime | None  # when the network server heard it; None: not given
    model: str | None = None  # the model the envelope names (TTN model_id, ChirpStack tag)
    model_hint: str | None = None  # free text that may name a model (ChirpStack profile name)
    # Why the envelope's network time could not be read (network_time is None then): costs
    # the readings that would be dated by it, never an alarm.
    time_problem: DecodeError | None = None


def uplink_key(f_cnt: int, *unique: str | datetime | None) -> str:
    """The frame counter and what tells this session's counter from an earlier one's."""
    parts = [v.isoformat() if isinstance(v, datetime) else (v or "") for v in unique]
    return ":".join([str(f_cnt), *parts])


def decode_uplink(protocol: str, uplink: Uplink, message: Message) -> Decoded:
    """The events of one uplink, with a reject for each reading or tail that failed."""
    model = _model(protocol, message.model, uplink)
    readings = _readings(protocol, model, uplink)
    out = Decoded()
    for index, (kind, fields) in enumerate(readings):
        try:
            if kind in ALARM_KINDS:
                event, salvaged = _alarm(protocol, message, uplink, index, kind, fields)
                out.rejects += [salvaged] if salvaged is not None else []
            else:
                event = _event(protocol, message, uplink, index, kind, fields)
        except DecodeError as err:
            out.rejects.append(err)
            continue
        except ValidationError as exc:
            out.rejects.append(_invalid(protocol, kind, exc, index))
            continue
        out.events.append(event)
    if readings.error is not None:
        out.rejects.append(_restamp(protocol, readings.error))
    return out


def _model(protocol: str, registry: str | None, uplink: Uplink) -> str:
    """Registry first, then the envelope's model field; a profile name only as a last resort.

    A model someone set explicitly must be one we decode: guessing past it could read one
    device's bytes with another's decoder.
    """
    for source, name in (("registry", registry), ("envelope", uplink.model)):
        if name:
            found = milesight.find_model(name)
            if found is None:
                detail = f"{source} model {name!r} has no decoder; known: {_known()}"
                raise DecodeError(protocol, Reason.UNKNOWN_MODEL, detail)
            return found
    found = milesight.find_model(uplink.model_hint)
    if found is None:
        detail = f"no device model (registry or envelope) and none in {uplink.model_hint!r}"
        raise DecodeError(protocol, Reason.UNKNOWN_MODEL, f"{detail}; known: {_known()}")
    return found


def _known() -> str:
    return ", ".join(m.upper() for m in milesight.DECODERS)


def _readings(protocol: str, model: str, uplink: Uplink) -> milesight.Readings:
    if len(uplink.payload) > MAX_FRAME:
        detail = f"payload of {len(uplink.payload)} bytes > {MAX_FRAME}: not a LoRaWAN frame"
        raise DecodeError(protocol, Reason.INVALID_FIELD, detail)
    readings = milesight.decode(model, uplink.payload, uplink.f_port)
    if readings.error is not None and not readings:
        raise _restamp(protocol, readings.error)
    if readings.error is None and not readings:
        readings.append(("heartbeat", {}))  # it spoke, so it is alive
    return readings


def _event(
    protocol: str, message: Message, uplink: Uplink, index: int, kind: str, fields: dict[str, Any]
) -> Event:
    fields = dict(fields)
    if "ts" not in fields and uplink.time_problem is not None:
        problem = uplink.time_problem
        raise DecodeError(protocol, problem.reason, f"{kind}: {problem.detail}", index=index)
    ts = fields.pop("ts", uplink.network_time)
    return make_event(
        device_id=message.device_id,
        kind=kind,
        ts=ts,
        received_at=message.received_at,
        source=protocol,
        fields=fields,
        msg_id=f"{uplink.key}/{index}",
    )


def _alarm(
    protocol: str, message: Message, uplink: Uplink, index: int, kind: str, fields: dict[str, Any]
) -> tuple[Event, DecodeError | None]:
    fields = dict(fields)
    dropped = Dropped()
    if "ts" not in fields and uplink.time_problem is not None:
        dropped.add("ts", f"{uplink.time_problem.detail}; the receive time stands in")
    ts = fields.pop("ts", uplink.network_time)
    return make_alarm(
        protocol, device_id=message.device_id, kind=kind, ts=ts,
        received_at=message.received_at, fields=fields, msg_id=f"{uplink.key}/{index}",
        dropped=dropped, index=index,
    )  # fmt: skip


def _invalid(protocol: str, kind: str, exc: ValidationError, index: int) -> DecodeError:
    first = exc.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"][1:]]
    reason = Reason.INVALID_TIMESTAMP if loc[:1] == ["ts"] else Reason.INVALID_FIELD
    return DecodeError(protocol, reason, f"{'.'.join([kind, *loc])}: {first['msg']}", index=index)


def _restamp(protocol: str, err: DecodeError) -> DecodeError:
    """A payload decoder's error, under the codec's name (the DLQ record and metric label)."""
    return DecodeError(protocol, err.reason, err.detail, index=err.index)


class JsonFields:
    """Typed reads from one object of an envelope. Absent or null reads as None; a value of
    the wrong type is INVALID_FIELD, a required one missing is MISSING_FIELD."""

    def __init__(self, protocol: str, doc: dict[str, Any], path: str = "") -> None:
        self.protocol = protocol
        self.doc = doc
        self.path = path

    @classmethod
    def load(cls, protocol: str, payload: bytes) -> JsonFields:
        doc = load_json(protocol, payload)
        if not isinstance(doc, dict):
            got = type(doc).__name__ if doc is not None else "null"
            raise DecodeError(protocol, Reason.NOT_AN_OBJECT, f"want an object, got {got}")
        return cls(protocol, doc)

    def has(self, key: str) -> bool:
        return self.doc.get(key) is not None

    def obj(self, key: str) -> JsonFields | None:
        value = self._get(key, dict, "an object")
        return None if value is None else JsonFields(self.protocol, value, f"{self._at(key)}.")

    def text(self, key: str) -> str | None:
        return self._get(key, str, "a string")

    def must_obj(self, key: str) -> JsonFields:
        return self.obj(key) or self._fail(Reason.MISSING_FIELD, key, "missing")

    def must_text(self, key: str) -> str:
        value = self.text(key)
        return value if value is not None else self._fail(Reason.MISSING_FIELD, key, "missing")

    def uint(self, key: str, maximum: int) -> int | None:
        value = self._get(key, int, "an integer")
        if value is not None and (isinstance(value, bool) or not 0 <= value <= maximum):
            self._fail(Reason.INVALID_FIELD, key, f"want an integer 0..{maximum}, got {value!r}")
        return value

    def time(self, key: str) -> datetime | None:
        """An RFC 3339 time with its offset (nanoseconds are cut to microseconds)."""
        value = self.doc.get(key)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            self._fail(Reason.INVALID_TIMESTAMP, key, f"want RFC 3339 with offset, got {value!r}")
        return moment

    def soft_time(self, key: str) -> tuple[datetime | None, DecodeError | None]:
        """`time`, with its error returned rather than raised: a network time is a side
        field, which must not cost an uplink its alarms."""
        try:
            return self.time(key), None
        except DecodeError as err:
            return None, err

    def b64(self, key: str) -> bytes | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            self._fail(Reason.INVALID_ENCODING, key, f"not base64: {exc}")

    def _get(self, key: str, want: type, name: str) -> Any:
        value = self.doc.get(key)
        if value is not None and not isinstance(value, want):
            self._fail(Reason.INVALID_FIELD, key, f"want {name}, got {type(value).__name__}")
        return value

    def _at(self, key: str) -> str:
        return f"{self.path}{key}"

    def _fail(self, reason: Reason, key: str, detail: str) -> NoReturn:
        raise DecodeError(self.protocol, reason, f"{self._at(key)}: {detail}")
