"""The 3G/4G elderly-watch text protocol ("SG*"/"3G*", Traccar's `watch`): one frame -> events.

The watches speak TCP to `ingest.watch_gateway`, which publishes every raw frame, as it
came, to `carewatch/v1/watch/{device_id}/up`. Framing and replies live in
`devices.codecs.watch_frames`; this module only turns one frame into canonical events.

Frame types (upper-cased first: some firmware sends `ud`, `heart`, `bphrt`):
  LK[,steps,rolls,battery]      keep-alive -> heartbeat (+ activity, battery)
  INIT                          first frame after boot -> heartbeat
  UD, UD2, UD3, UD_LTE, UD_WCDMA, WT...   position report (body below)
  AL, AL_LTE, ALCUSTOMER1...    alarm: the same body; status bits say which alarm
  PULSE/HEART, BPHRT, BLOOD, TEMP, BTEMP2, OXYGEN   vitals (no device time)
  TK, JXTK, IMG, TKQ, TKQ2      voice and pictures: no events
  anything else                 no events (see `decode_frame` for why not an error)

Position body: date ddmmyy, time hhmmss (in the zone registered as the watch's clock;
UTC by default, as Traccar reads it), validity A/V, lat, N/S, lon, E/W, speed km/h,
course, altitude m, satellites, GSM signal, battery %, steps, rolls (tumbles), status (hex
bit field), then cells and Wi-Fi. Cells and Wi-Fi are not read: the canonical event has
no field for them, and positioning from them needs a lookup service (the raw frame keeps
them).

Safety: an alarm never depends on a position. A frame without a valid fix (`V`) gives
its coordinates as a `location` with `fix: false` (the last known position: no geofence
decision uses it), and its sos/fall carry no lat/lon; zero coordinates give no location.
An AL frame always alerts: with no recognised alarm bit, or a body we cannot read, it is an
SOS; an sos/fall whose time or position the event model refuses is kept without it
(`devices.codecs.salvage`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from devices.codecs.base import Codec, Decoded, Message
from devices.codecs.salvage import Dropped, make_alarm
from devices.codecs.watch_frames import DEVICE_ID, PROTOCOL, Frame, parse_frame
from devices.errors import DecodeError, Reason
from devices.events import ALARM_KINDS, make_event

__all__ = [
    "ALARM_BITS",
    "CODEC",
    "GEOFENCE_ZONE",
    "NAME",
    "STATUS_FALL",
    "STATUS_FALL_2",
    "STATUS_FENCE_IN",
    "STATUS_FENCE_IN_ALARM",
    "STATUS_FENCE_OUT",
    "STATUS_FENCE_OUT_ALARM",
    "STATUS_LOW_BATTERY",
    "STATUS_LOW_BATTERY_ALARM",
    "STATUS_MOTION",
    "STATUS_POWER_CUT",
    "STATUS_REMOVED",
    "STATUS_SOS",
    "alarm_topic_for",
    "decode",
    "decode_frame",
    "device_from_topic",
    "topic_for",
]

NAME = PROTOCOL
GEOFENCE_ZONE = "device"  # the fence is set on the watch itself; it does not say which

# The status field, as Traccar's WatchProtocolDecoder.decodeAlarm reads it: the low 16
# bits are states, the high 16 bits are alarms (the edge: sent once, in an AL frame).
STATUS_LOW_BATTERY = 1 << 0  # state
STATUS_FENCE_OUT = 1 << 1  # state: outside the watch's fence
STATUS_FENCE_IN = 1 << 2  # state: inside it
STATUS_MOTION = 1 << 4  # state: moving (Traccar: KEY_MOTION)
STATUS_POWER_CUT = 1 << 14
STATUS_SOS = 1 << 16
STATUS_LOW_BATTERY_ALARM = 1 << 17
STATUS_FENCE_OUT_ALARM = 1 << 18
STATUS_FENCE_IN_ALARM = 1 << 19
STATUS_REMOVED = 1 << 20  # taken off the wrist
STATUS_FALL = 1 << 21
STATUS_FALL_2 = 1 << 22  # Traccar reads bit 22 as a fall too
# Every bit that names an alarm. An AL frame with none of them is treated as an SOS.
ALARM_BITS = (
    STATUS_LOW_BATTERY
    | STATUS_FENCE_OUT
    | STATUS_FENCE_IN
    | STATUS_POWER_CUT
    | (0x7F << 16)  # bits 16-22
)

_TOPIC = re.compile(rf"carewatch/v1/watch/({DEVICE_ID})/(?:up|alarm)")
_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d*)?)\s*")
_HEX = re.compile(r"\s*([0-9A-Fa-f]{1,8})\s*")
_POSITION_FIELDS = 16  # date .. status
_ALARM_KINDS = ("sos", "fall")


def topic_for(device_id: str) -> str:
    return f"carewatch/v1/watch/{device_id}/up"


def alarm_topic_for(device_id: str) -> str:
    """Where the gateway publishes a watch's alarm frames (AL, AL_LTE, ALCUSTOMER1)."""
    return f"carewatch/v1/watch/{device_id}/alarm"


def device_from_topic(topic: str) -> str | None:
    match = _TOPIC.fullmatch(topic)
    return match.group(1) if match else None


def decode(payload: bytes, device_id: str, received_at: datetime, clock: tzinfo = UTC) -> Decoded:
    """One raw frame (still escaped, as the watch sent it) -> events and rejected facts.
    `clock`: the zone the watch's clock runs on (its times carry no offset)."""
    frame = parse_frame(payload)
    if frame.device_id != device_id:
        raise DecodeError(
            NAME, Reason.DEVICE_MISMATCH, f"frame of {frame.device_id!r} published on {device_id!r}"
        )
    return decode_frame(frame, received_at, clock)


def decode_frame(frame: Frame, received_at: datetime, clock: tzinfo = UTC) -> Decoded:
    """Unknown types decode to nothing, not to UNKNOWN_MESSAGE_TYPE: most are a watch
    acknowledging a server command by echoing it (`SOS1`, `UPLOAD`, `REMOVE`, `CR`...) or a
    vendor extension without safety data; a DLQ record for each would bury the real rejects.
    Note that `SOS` and `FALLDOWN` frames are such acknowledgements, never alarms."""
    kind = frame.content_type.upper()
    out = _Out(frame.device_id, received_at, clock)
    try:
        _decode_type(out, kind, frame)
    except DecodeError:
        raise
    except Exception as exc:  # a bug here costs what was not decoded yet, never an alarm
        _crashed(out, kind, exc)
    return out.decoded


def _crashed(out: _Out, kind: str, exc: Exception) -> None:
    out.reject(Reason.INTERNAL_ERROR, repr(exc)[:500])
    if kind.startswith("AL") and not any(e.kind in ALARM_KINDS for e in out.decoded.events):
        dropped = Dropped()
        dropped.add("fields", "the decoder failed: see the internal_error record")
        out.alarm("sos", None, {}, dropped)


def _decode_type(out: _Out, kind: str, frame: Frame) -> None:
    if kind == "LK":
        _keep_alive(out, _fields(frame))
    elif kind == "INIT":
        out.emit("heartbeat", None, {})
    elif kind.startswith(("UD", "WT")):
        _position_report(out, _fields(frame), alarm=False)
    elif kind.startswith("AL"):
        _position_report(out, _fields(frame), alarm=True)
    elif kind in _VITALS:
        _VITALS[kind](out, _fields(frame))


# -- building the result -----------------------------------------------------------


@dataclass
class _Out:
    """Events of one frame; a fact that fails validation is rejected alone."""

    device_id: str
    received_at: datetime
    clock: tzinfo = UTC  # the zone the watch's clock runs on
    decoded: Decoded = field(default_factory=Decoded)

    def emit(self, kind: str, ts: datetime | None, fields: dict[str, Any]) -> None:
        # No msg_id: the index field wraps at 0xFFFF and restarts when the watch reboots,
        # so an id from it would make a new SOS look like a redelivered old one (dropped).
        # The content hash is stable for frames with device time; for the others (LK,
        # vitals) ts is the receive time and a redelivery is a harmless duplicate.
        if kind in ALARM_KINDS:
            self.alarm(kind, ts, fields)
            return
        try:
            event = make_event(
                device_id=self.device_id,
                kind=kind,
                ts=ts,
                received_at=self.received_at,
                source=NAME,
                fields=fields,
            )
        except ValidationError as exc:
            where, problem = _first_error(exc)
            reason = Reason.INVALID_TIMESTAMP if where == "ts" else Reason.INVALID_FIELD
            self.reject(reason, f"{kind}: {where}: {problem}")
            return
        self.decoded.events.append(event)

    def alarm(
        self, kind: str, ts: datetime | None, fields: dict[str, Any], dropped: Dropped | None = None
    ) -> None:
        """An sos or fall is kept, without what the model refuses (flagged, reported)."""
        event, salvaged = make_alarm(
            NAME, device_id=self.device_id, kind=kind, ts=ts, received_at=self.received_at,
            fields=fields, dropped=dropped,
        )  # fmt: skip
        self.decoded.events.append(event)
        if salvaged is not None:
            self.decoded.rejects.append(salvaged)

    def reject(self, reason: Reason, detail: str) -> None:
        self.decoded.rejects.append(DecodeError(NAME, reason, detail))


def _first_error(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors(include_url=False)[0]
    return ".".join(str(part) for part in first["loc"][1:]) or "event", first["msg"]


def _fields(frame: Frame) -> list[str]:
    # latin-1 never fails; the fields we read are ASCII, Wi-Fi names may be anything.
    text = frame.content.decode("latin-1")
    return text.split(",") if text else []


def _number(text: str) -> float | None:
    match = _NUMBER.fullmatch(text)
    return float(match.group(1)) if match else None


def _count(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None and value == int(value) else None


# -- LK ------------------------------------------------------------------------------


def _keep_alive(out: _Out, values: list[str]) -> None:
    """`LK` or `LK,steps,rolls,battery`. Two values (seen: `LK,0,100`) cannot be told
    apart, so only the heartbeat is kept."""
    out.emit("heartbeat", None, {})
    if len(values) < 3:
        return
    steps, battery = _count(values[0]), _number(values[2])
    if steps is None or battery is None:
        out.reject(Reason.INVALID_FIELD, f"LK: steps/battery not numbers: {values[:3]}")
        return
    out.emit("activity", None, {"steps": steps})
    out.emit("battery", None, {"battery_pct": battery})


# -- UD / AL ------------------------------------------------------------------------


@dataclass
class _Report:
    """The readable parts of a position report; None where a field is broken."""

    ts: datetime | None = None
    # location fields for non-zero coordinates; with `fix: False` when the watch has no
    # fix (`V`): its last known position
    fix: dict[str, Any] | None = None
    battery: float | None = None
    steps: int | None = None
    status: int | None = None
    problems: list[tuple[Reason, str]] = field(default_factory=list)


def _position_report(out: _Out, values: list[str], *, alarm: bool) -> None:
    if len(values) < _POSITION_FIELDS:
        detail = f"position report has {len(values)} of {_POSITION_FIELDS} fields"
        if not alarm:
            raise DecodeError(NAME, Reason.TRUNCATED, detail)
        out.alarm("sos", None, {})  # an unreadable alarm is still an alarm
        out.reject(Reason.TRUNCATED, detail)
        return
    report = _read_report(values, out.clock)
    for reason, detail in report.problems:
        out.reject(reason, detail)
    _alarms(out, report, alarm=alarm)
    _telemetry(out, report)


def _read_report(values: list[str], clock: tzinfo) -> _Report:
    report = _Report()
    report.ts = _timestamp(values[0], values[1], clock, report)
    report.fix = _fix(values, report)
    report.battery = _number(values[12])
    report.steps = _count(values[13])
    for name, text, value in (
        ("battery", values[12], report.battery),
        ("steps", values[13], report.steps),
    ):
        if value is None and text.strip():
            report.problems.append((Reason.INVALID_FIELD, f"{name} {text[:16]!r} not a number"))
    status = _HEX.fullmatch(values[15])
    report.status = int(status.group(1), 16) if status else None
    if report.status is None:
        report.problems.append((Reason.INVALID_FIELD, f"status {values[15][:16]!r} not hex"))
    return report


def _timestamp(date: str, time: str, clock: tzinfo, report: _Report) -> datetime | None:
    try:
        if not (len(date) == len(time) == 6 and date.isdigit() and time.isdigit()):
            raise ValueError("want ddmmyy,hhmmss")
        day, month, year = int(date[:2]), int(date[2:4]), 2000 + int(date[4:])
        hour, minute, second = int(time[:2]), int(time[2:4]), int(time[4:])
        local = datetime(year, month, day, hour, minute, second, tzinfo=clock)
        return local.astimezone(UTC)
    except ValueError as exc:
        report.problems.append((Reason.INVALID_TIMESTAMP, f"{date},{time}: {exc}"))
        return None


def _fix(values: list[str], report: _Report) -> dict[str, Any] | None:
    """Location fields for a real place, else None; `fix: False` without a valid fix."""
    validity = values[2].strip().upper()
    if validity not in ("A", "V"):
        report.problems.append((Reason.INVALID_FIELD, f"validity {values[2][:8]!r} not A/V"))
        return None
    lat, lon = _coordinate(values[3], values[4], "NS"), _coordinate(values[5], values[6], "EW")
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        if validity == "A":  # with `V` the watch said itself that it has no position
            report.problems.append((Reason.INVALID_FIELD, f"coordinates {values[3:7]}"))
        return None
    if abs(lat) < 1e-6 and abs(lon) < 1e-6:
        return None  # no position at all: the 0,0 of a watch before its first fix
    fix: dict[str, Any] = {"lat": lat, "lon": lon}
    if validity == "V":
        # The position of the last fix (watches repeat it): worth keeping for an operator
        # looking for someone, flagged so that nothing takes it for where they are now.
        fix["fix"] = False
    return _extras(values, fix)


def _extras(values: list[str], fix: dict[str, Any]) -> dict[str, Any]:
    """Optional extras: kept when plausible, dropped (not rejected) when not."""
    speed, course, altitude = (_number(v) for v in values[7:10])
    satellites = _count(values[10])
    if speed is not None and speed >= 0:
        fix["speed_kmh"] = speed
    if course is not None and 0 <= course <= 360:
        fix["course_deg"] = course
    if altitude is not None:
        fix["altitude_m"] = altitude
    if satellites is not None and satellites >= 0:
        fix["satellites"] = satellites
    return fix


def _coordinate(value: str, hemisphere: str, sides: str) -> float | None:
    """Degrees. Seen in the field: `-33.48,N` (the sign wins), `68.11,,` (no hemisphere),
    ` 9.157` (leading space), `-9.0,W` (both say west). `sides` is "NS" or "EW"."""
    number = _number(value)
    side = hemisphere.strip().upper()
    if number is None or (side and side not in (sides[0], sides[1])):
        return None
    return -abs(number) if side == sides[1] else number


def _alarms(out: _Out, report: _Report, *, alarm: bool) -> None:
    """sos/fall/worn/geofence from the status bits, first: they matter most.

    Alarm facts are sent when they happen, so a broken device time is replaced by the
    receive time rather than losing the alarm (telemetry, which a watch may upload late,
    is rejected instead: see `_telemetry`)."""
    status = report.status or 0
    fix = report.fix if report.fix and report.fix.get("fix") is not False else None
    position = {"lat": fix["lat"], "lon": fix["lon"]} if fix else {}  # a current one only
    if status & STATUS_SOS or (alarm and not status & ALARM_BITS):
        out.emit("sos", report.ts, position)
    if status & (STATUS_FALL | STATUS_FALL_2):
        out.emit("fall", report.ts, position)
    if status & STATUS_REMOVED:
        out.emit("worn", report.ts, {"worn": False})
    # The state bits 1/2 mark a transition only in the AL frame the watch sends for it;
    # in every UD they would repeat the same "transition" on each report.
    leave = STATUS_FENCE_OUT_ALARM | (STATUS_FENCE_OUT if alarm else 0)
    enter = STATUS_FENCE_IN_ALARM | (STATUS_FENCE_IN if alarm else 0)
    for bits, transition in ((leave, "leave"), (enter, "enter")):
        if status & bits:
            out.emit("geofence", report.ts, {"transition": transition, "zone": GEOFENCE_ZONE})


def _telemetry(out: _Out, report: _Report) -> None:
    """Location, battery, steps. The low-battery bits add nothing: battery_pct is here."""
    if report.ts is None:
        return  # already rejected with INVALID_TIMESTAMP; receive time would misdate it
    if report.fix is not None:
        out.emit("location", report.ts, report.fix)
    if report.battery is not None:
        out.emit("battery", report.ts, {"battery_pct": report.battery})
    activity: dict[str, Any] = {}
    if report.steps is not None:
        activity["steps"] = report.steps
    if report.status is not None and report.status & STATUS_MOTION:
        activity["motion"] = True
    if activity:
        out.emit("activity", report.ts, activity)


# -- vitals ---------------------------------------------------------------------------
# No device time in these frames: the receive time stands in. A zero or empty reading is
# a failed measurement (`heart,0` when the watch is off the wrist): no event, no error.


def _reading(values: list[str], index: int) -> float | None:
    if index >= len(values):
        return None
    value = _number(values[index]) if values[index].strip() else None
    return value if value else None


def _vitals(out: _Out, fields: dict[str, float | None]) -> None:
    present = {k: v for k, v in fields.items() if v is not None}
    if present:
        out.emit("vitals", None, present)


def _heart(out: _Out, values: list[str]) -> None:
    _vitals(out, {"heart_rate_bpm": _reading(values, 0)})


def _blood_pressure(out: _Out, values: list[str]) -> None:
    """`bphrt,systolic,diastolic,heart[,...]` and `BLOOD,systolic,diastolic`."""
    _vitals(
        out,
        {
            "systolic_mmhg": _reading(values, 0),
            "diastolic_mmhg": _reading(values, 1),
            "heart_rate_bpm": _reading(values, 2),
        },
    )


def _temperature(out: _Out, values: list[str]) -> None:
    _vitals(out, {"body_temp_c": _reading(values, 0)})


def _btemp2(out: _Out, values: list[str]) -> None:
    """`btemp2,valid,temperature`: Traccar keeps the reading only when the flag is > 0."""
    flag = _reading(values, 0)
    if flag is not None and flag > 0:
        _vitals(out, {"body_temp_c": _reading(values, 1)})


def _oxygen(out: _Out, values: list[str]) -> None:
    """Traccar reads SpO2 from the second value; a lone value can only be the SpO2."""
    _vitals(out, {"spo2_pct": _reading(values, 1 if len(values) > 1 else 0)})


_VITALS = {
    "PULSE": _heart,
    "HEART": _heart,
    "BPHRT": _blood_pressure,
    "BLOOD": _blood_pressure,
    "TEMP": _temperature,
    "BTEMP2": _btemp2,
    "OXYGEN": _oxygen,
}


def _decode_message(message: Message) -> Decoded:
    clock = ZoneInfo(message.clock_tz) if message.clock_tz else UTC
    return decode(message.payload, message.device_id, message.received_at, clock)


CODEC = Codec(
    name=NAME,
    subscriptions=("carewatch/v1/watch/+/up",),
    device_from_topic=device_from_topic,
    decode=_decode_message,
    broker_account=None,  # watches speak TCP to ingest.watch_gateway, not MQTT
    device_ids=re.compile(DEVICE_ID),
    urgent=lambda payload: b"*AL" in payload,  # AL, AL_LTE, ALCUSTOMER1: alarm frames
    alarm_subscriptions=("carewatch/v1/watch/+/alarm",),
)
