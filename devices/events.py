"""The canonical event: the one shape every device message becomes (DESIGN.md, Contracts).

This is a contract other systems rely on: extend it (new kinds, new optional fields), never
change or remove what is here. `docs/schema/event.v1.json` is generated from these models
(`carewatch schema --write`) and a test keeps it in sync.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

__all__ = [
    "ALARM_KINDS",
    "COMMON_FIELDS",
    "EARLIEST",
    "EVENT_ADAPTER",
    "KINDS",
    "Event",
    "compute_event_id",
    "event_from_json",
    "event_to_json",
    "make_event",
]


# No event is older than this: a time before it is a clock that was never set (a watch
# booting at 1970 or 2000-00-00), and year-1 times overflow date arithmetic downstream.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def _to_utc(value: datetime) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC form: a ValueError, not a crash
        if value.year > EARLIEST.year:
            raise ValueError("after 9999-12-31T23:59:59Z") from None
        value = EARLIEST - timedelta(days=1)  # refused just below, with its reason
    if value < EARLIEST:
        raise ValueError("before 2000-01-01T00:00:00Z (a device clock that was never set)")
    return value


def _storable(value: str) -> str:
    """PostgreSQL's text and jsonb refuse NUL, and JSON cannot carry a lone surrogate."""
    if "\x00" in value:
        raise ValueError("contains NUL (\\u0000), which cannot be stored")
    if value.isascii():  # the usual case, and no surrogate in it: nothing to encode
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate (not valid Unicode text)") from None
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
# Every string of an event: it is stored in PostgreSQL as it is.
Text = Annotated[str, AfterValidator(_storable)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]

# Fields every event has; the rest are the kind's own.
COMMON_FIELDS = frozenset(
    {"event_id", "device_id", "kind", "ts", "received_at", "source", "device_ts"}
)
# Kinds that always alert: no filter or deduplication may swallow them.
ALARM_KINDS = frozenset({"sos", "fall"})


class _Base(BaseModel):
    # NaN and infinities have no JSON form (they would be written as null).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    event_id: Text = Field(description="stable id: equal for a redelivered message")
    device_id: Text
    ts: UtcDatetime = Field(description="device time (UTC), not before 2000-01-01")
    received_at: UtcDatetime = Field(description="when carewatch received it (UTC)")
    source: Text = Field(description="name of the codec that decoded it")
    device_ts: UtcDatetime | None = Field(
        None,
        description="the device's own time, kept when carewatch replaced an implausible one "
        "(e.g. far in the future) with received_at; absent otherwise",
    )


# An alarm kept although parts of it were invalid (devices/codecs/salvage.py): what was
# dropped or replaced. Set by carewatch, never by a device.
Salvaged = Annotated[
    list[Annotated[Text, Field(max_length=80)]] | None,
    Field(
        description="set when carewatch kept this alarm although parts of it were invalid: "
        "what it dropped or replaced ('ts': the device time, replaced by received_at; "
        "'position': lat and lon; 'msg_id'; 'unknown_field:NAME'; 'invalid_field:NAME'; "
        "'fields': all of them); absent otherwise",
    ),
]


def _at_least_one(model: BaseModel, names: tuple[str, ...]) -> None:
    for name in names:  # a loop, not all(...): this runs for every vitals event
        if getattr(model, name) is not None:
            return
    raise ValueError(f"needs at least one of: {', '.join(names)}")


def _both_or_neither(model: Any) -> None:
    if (model.lat is None) != (model.lon is None):
        raise ValueError("lat and lon go together")


class LocationEvent(_Base):
    kind: Literal["location"]
    lat: Latitude
    lon: Longitude
    accuracy_m: Annotated[float, Field(ge=0)] | None = None
    speed_kmh: Annotated[float, Field(ge=0)] | None = None
    course_deg: Annotated[float, Field(ge=0, le=360)] | None = None
    altitude_m: float | None = None
    satellites: Annotated[int, Field(ge=0, le=1000)] | None = None
    fix: bool | None = Field(
        None,
        description="false: the device has no current fix and this is its last known "
        "position (not where the wearer is now; no geofence decision uses it); absent: a fix",
    )


_VITALS = (
    "heart_rate_bpm",
    "spo2_pct",
    "systolic_mmhg",
    "diastolic_mmhg",
    "body_temp_c",
    "respiratory_rate_bpm",
)


class VitalsEvent(_Base):
    kind: Literal["vitals"]
    heart_rate_bpm: Annotated[float, Field(ge=0, le=300)] | None = None
    spo2_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    systolic_mmhg: Annotated[float, Field(ge=0, le=300)] | None = None
    diastolic_mmhg: Annotated[float, Field(ge=0, le=300)] | None = None
    body_temp_c: Annotated[float, Field(ge=25, le=45)] | None = None
    respiratory_rate_bpm: Annotated[float, Field(ge=0, le=100)] | None = None

    @model_validator(mode="after")
    def _has_a_reading(self) -> VitalsEvent:
        _at_least_one(self, _VITALS)
        return self


class ActivityEvent(_Base):
    kind: Literal["activity"]
    # Bounded: ids are hashed from the JSON form, which holds 64-bit integers at most.
    steps: Annotated[int, Field(ge=0, le=10**9)] | None = None
    motion: bool | None = None

    @model_validator(mode="after")
    def _has_a_reading(self) -> ActivityEvent:
        _at_least_one(self, ("steps", "motion"))
        return self


class BatteryEvent(_Base):
    kind: Literal["battery"]
    battery_pct: Annotated[float, Field(ge=0, le=100)]


class SosEvent(_Base):
    kind: Literal["sos"]
    lat: Latitude | None = None
    lon: Longitude | None = None
    salvaged: Salvaged = None

    @model_validator(mode="after")
    def _position(self) -> SosEvent:
        _both_or_neither(self)
        return self


class FallEvent(_Base):
    kind: Literal["fall"]
    lat: Latitude | None = None
    lon: Longitude | None = None
    confirmed: bool | None = None
    cancelled: bool | None = Field(None, description="the wearer cancelled a reported fall")
    salvaged: Salvaged = None

    @model_validator(mode="after")
    def _position(self) -> FallEvent:
        _both_or_neither(self)
        return self


class HeartbeatEvent(_Base):
    kind: Literal["heartbeat"]


class GeofenceEvent(_Base):
    kind: Literal["geofence"]
    transition: Literal["enter", "leave"]
    zone: Annotated[Text, Field(min_length=1, max_length=128)]


class SensorEvent(_Base):
    kind: Literal["sensor"]
    sensor: Annotated[Text, Field(min_length=1, max_length=64, description="door, bed, smoke...")]
    state: bool | float | Annotated[Text, Field(max_length=64)]


class WornEvent(_Base):
    kind: Literal["worn"]
    worn: bool


Event = Annotated[
    LocationEvent
    | VitalsEvent
    | ActivityEvent
    | BatteryEvent
    | SosEvent
    | FallEvent
    | HeartbeatEvent
    | GeofenceEvent
    | SensorEvent
    | WornEvent,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
KINDS = frozenset(
    get_args(model.model_fields["kind"].annotation)[0] for model in get_args(get_args(Event)[0])
)


# What a redelivery of the same message may change, and what carewatch adds about how it
# read the message: not part of its identity.
_NOT_CONTENT = frozenset({"event_id", "received_at", "source", "device_ts", "salvaged"})


def compute_event_id(event: Event, msg_id: str | None) -> str:
    """A stable id, so a redelivered message deduplicates downstream.

    With the device's own message id: (device, kind, msg_id) — the device vouches for
    uniqueness, and a message without device time still gets the same id when redelivered.
    Without one: a hash of the device, kind, device time and every kind field.
    """
    if msg_id is not None:
        return _message_id(event.device_id, event.kind, msg_id)
    key = event.model_dump(mode="json", exclude=set(_NOT_CONTENT))
    return _digest({k: v for k, v in key.items() if v is not None})


def _message_id(device_id: str, kind: str, msg_id: str) -> str:
    return _digest({"d": device_id, "k": kind, "m": msg_id})


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(key, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def make_event(
    *,
    device_id: str,
    kind: str,
    ts: Any,
    received_at: datetime,
    source: str,
    fields: dict[str, Any],
    msg_id: str | None = None,
) -> Event:
    """Validate one event (raises pydantic.ValidationError) and give it its stable id.

    `ts=None` means the device sent no time: the receive time stands in for it.
    """
    data = {
        **fields,
        "event_id": "",
        "device_id": device_id,
        "kind": kind,
        "ts": received_at if ts is None else ts,
        "received_at": received_at,
        "source": source,
    }
    if msg_id is not None:
        # The id needs nothing validation could change: one validation, no copy (ingest
        # makes every event here).
        data["event_id"] = _message_id(device_id, kind, msg_id)
        return EVENT_ADAPTER.validate_python(data)
    event = EVENT_ADAPTER.validate_python(data)
    return event.model_copy(update={"event_id": compute_event_id(event, None)})


def event_to_json(event: Event) -> bytes:
    """The wire form on `carewatch.events.v1`: one JSON object, absent fields left out.
    pydantic's own serializer writes the bytes directly (no dict in between: ingest and
    telemetry do this for every event)."""
    return event.__pydantic_serializer__.to_json(event, exclude_none=True)


def event_from_json(raw: bytes | str) -> Event:
    return EVENT_ADAPTER.validate_json(raw)
