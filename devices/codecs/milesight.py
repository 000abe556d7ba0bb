"""Payload decoders for Milesight LoRaWAN devices used in elderly care: WS101, WS301, VS373, AT101.

Pure functions from a device's application payload (the LoRaWAN FRMPayload, whichever
network server carried it) to readings: `(kind, fields)` pairs for the canonical event kinds.
`devices.codecs.lorawan` turns readings into events.

A Milesight payload is a run of channels, each `channel id (1 byte) | channel type (1 byte) |
value`, little-endian (github.com/Milesight-IoT/SensorDecoders and the device user guides).
There is no length byte: the (id, type) pair fixes the value's length. So a pair we do not
know cannot be skipped, and decoding stops there. The readings before it are sound (every
length up to that point was right) and are kept; `Readings.error` says where and why the rest
was not decoded, so the codec can dead-letter the message next to the events it did yield.
Known pairs that carry nothing for carewatch (versions, serial numbers, configuration echoes,
Wi-Fi scans...) are skipped by their documented length.

Semantics chosen here (docs/formats/lorawan.md explains them to deployers):
- WS101: Milesight reports which press it was (1 short, 2 long, 3 double), and a deployer
  can bind each to an action. A WS101 handed to an older person is a call button, so every
  press -- whatever its type, even one we do not know -- is an `sos`. No press is dropped.
- WS301: door contact -> sensor `door` (`open` / `closed`); its tamper switch -> sensor
  `tamper` (`installed` / `removed`).
- VS373: only the device's fall alarm is a `fall` (it reports after its own confirmation
  and delay stages). The periodic room status -- including its `fall` state -- and every
  other alarm (motionless, dwell, out of bed, lying down, breathing...) are `sensor` events
  for the rules to weigh. A fall alarm the device says was deactivated or ignored is a
  sensor `fall_alarm` event, never a cancelled fall: nobody on site vouched for the person.
- AT101: an asset tracker with no button. Location -> `location` (+ `activity` motion, and
  `geofence` for the device's own fence); history records keep their device time.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from devices.errors import DecodeError, Reason

__all__ = [
    "DECODERS",
    "DEVICE_FENCE",
    "PROTOCOL",
    "Decoder",
    "Reading",
    "Readings",
    "decode",
    "find_model",
]

PROTOCOL = "milesight"

# (kind, fields). `fields` may hold "ts": the device's own time for a stored record; the
# envelope's network time stands in otherwise.
Reading = tuple[str, dict[str, Any]]


class Readings(list[Reading]):
    """The readings of one payload, in payload order, and why decoding stopped early if it did."""

    def __init__(self) -> None:
        super().__init__()
        self.error: DecodeError | None = None


Decoder = Callable[[bytes, int | None], Readings]
_Handler = Callable[[bytes], list[Reading]]
# (channel id, channel type) -> (value length, handler; None: known, carries nothing for us)
_Table = dict[tuple[int, int], tuple[int, _Handler | None]]

# Device time before this (2017) means the device clock was never set: use the network's.
_PLAUSIBLE_EPOCH = 1_500_000_000


# -- shared channels -----------------------------------------------------------------


def _battery(value: bytes) -> list[Reading]:
    return [("battery", {"battery_pct": value[0]})]


def _name(names: dict[int, str], code: int) -> str:
    """The documented name of a code, or a stable placeholder for one the docs lack."""
    return names.get(code, f"unknown_{code}")


def _device_time(seconds: int) -> dict[str, Any]:
    return {"ts": datetime.fromtimestamp(seconds, UTC)} if seconds >= _PLAUSIBLE_EPOCH else {}


def _attributes() -> _Table:
    """Sent after joining and on request (ff 0b ff is "power on"): versions, serial, class."""
    lengths = {0x01: 1, 0x08: 6, 0x09: 2, 0x0A: 2, 0x0B: 1, 0x0F: 1, 0x16: 8, 0xFE: 1, 0xFF: 2}
    return {(0xFF, kind): (length, None) for kind, length in lengths.items()}


def _echoes(channels: tuple[int, ...], lengths: dict[int, int]) -> _Table:
    """A device's answers to configuration downlinks, which may share an uplink with data."""
    return {(ch, kind): (length, None) for ch in channels for kind, length in lengths.items()}


# -- WS101 smart button ----------------------------------------------------------------


def _ws101_press(value: bytes) -> list[Reading]:
    return [("sos", {})]  # any press of a care call button is a call for help (module doc)


_WS101: _Table = {
    **_echoes((0xFE, 0xFF), {0x03: 2, 0x10: 1, 0x28: 1, 0x2F: 1, 0x3E: 1, 0x74: 1}),
    **_attributes(),
    (0x01, 0x75): (1, _battery),
    (0xFF, 0x2E): (1, _ws101_press),
}


# -- WS301 magnetic contact ------------------------------------------------------------

_DOOR = {0: "closed", 1: "open"}
_TAMPER = {0: "installed", 1: "removed"}


def _sensor(sensor: str, names: dict[int, str]) -> _Handler:
    return lambda value: [("sensor", {"sensor": sensor, "state": _name(names, value[0])})]


_WS301: _Table = {
    **_echoes((0xFE, 0xFF), {0x03: 2, 0x10: 1, 0x28: 1}),
    **_attributes(),
    (0x01, 0x75): (1, _battery),
    (0x03, 0x00): (1, _sensor("door", _DOOR)),
    (0x04, 0x00): (1, _sensor("tamper", _TAMPER)),
}


# -- VS373 bed and fall-detection radar -----------------------------------------------

_ROOM = {0: "normal", 1: "vacant", 2: "in_bed", 3: "out_of_bed", 4: "fall"}
_PERSON = {0: "normal", 1: "motionless", 2: "abnormal", 3: "lying_down"}
_ALARM = {
    0: "fall",
    1: "motionless",
    2: "dwell",
    3: "out_of_bed",
    4: "occupied",
    5: "vacant",
    6: "bradypnea",
    7: "tachypnea",
    8: "lying_down",
}
_ALARM_STATUS = {1: "alarm", 2: "deactivated", 3: "ignored", 4: "report"}
_FALL_STOOD_DOWN = (2, 3)  # deactivated / ignored on the device
_BREATHING_MEASURED = (2, 3, 4)  # normal, tachypnea, bradypnea (1: no data, 5: undetectable)


def _vs373_room(value: bytes) -> list[Reading]:
    # 03 f8 (firmware 1.0.1) and 07 b0 (later) share the first two bytes; the rest are
    # occupancy durations we do not forward.
    room, person = value[0], value[1]
    readings: list[Reading] = [("sensor", {"sensor": "room", "state": _name(_ROOM, room)})]
    if room != 1:  # nobody there: the person's state means nothing
        readings.append(("sensor", {"sensor": "person", "state": _name(_PERSON, person)}))
    return readings


def _vs373_alarm_reading(kind: int, status: int) -> Reading:
    if kind == 0 and status not in _FALL_STOOD_DOWN:
        # A fall with an undocumented status still alerts: a false alarm costs a call,
        # a dropped one can cost a life.
        return ("fall", {"confirmed": True} if status == 1 else {})
    sensor = "fall_alarm" if kind == 0 else _name(_ALARM, kind)
    return ("sensor", {"sensor": sensor, "state": _name(_ALARM_STATUS, status)})


def _vs373_alarm(value: bytes) -> list[Reading]:
    # alarm id (2) | type (1) | status (1) | region (1). The alarm id is not used to
    # deduplicate: it wraps and restarts, and merging two real falls would lose one.
    return [_vs373_alarm_reading(value[2], value[3])]


def _vs373_history(value: bytes) -> list[Reading]:
    # A stored alarm re-sent after the network was out: timestamp (4) | the alarm (5).
    (seconds,) = struct.unpack_from("<I", value)
    kind, fields = _vs373_alarm_reading(value[6], value[7])
    return [(kind, {**fields, **_device_time(seconds)})]


def _vs373_breathing(value: bytes) -> list[Reading]:
    status, (centi_bpm,) = value[0], struct.unpack_from("<H", value, 1)
    if status not in _BREATHING_MEASURED or centi_bpm == 0:
        return []
    return [("vitals", {"respiratory_rate_bpm": centi_bpm / 100})]


_VS373_ECHO = {0x04: 1, 0x10: 1, 0x11: 4, 0x28: 1, 0x2F: 1, 0x35: 8, 0x3E: 1, 0x40: 1}
_VS373_ECHO |= {0x42: 1, 0x64: 1, 0x69: 1, 0x6A: 3, 0x84: 1, 0x8E: 3, 0x96: 8}
# Settings echoes on f9; f8 carries the same plus one result byte.
_VS373_SETTINGS = {0x48: 1, 0x49: 9, 0x4A: 5, 0x4B: 9, 0x4C: 5, 0x4D: 1, 0x4E: 1, 0x4F: 12}
_VS373_SETTINGS |= {0x50: 2, 0x51: 6, 0x52: 3, 0x53: 3, 0x54: 2, 0x56: 2, 0x64: 1, 0x85: 2}
_VS373_SETTINGS |= {0x86: 1, 0x87: 1, 0x91: 5, 0xB1: 7, 0xB2: 3, 0xB3: 1, 0xB4: 3, 0xB5: 6}

_VS373: _Table = {
    **_echoes((0xFE, 0xFF), _VS373_ECHO),
    **_echoes((0xF9,), _VS373_SETTINGS),
    **_echoes((0xF8,), {kind: length + 1 for kind, length in _VS373_SETTINGS.items()}),
    **_attributes(),
    (0x03, 0xF8): (6, _vs373_room),
    (0x07, 0xB0): (8, _vs373_room),
    (0x04, 0xF9): (4, None),  # region occupancy (1.0.1)
    (0x05, 0xFA): (8, None),  # out-of-bed time per region (1.0.1)
    (0x06, 0xFB): (5, _vs373_alarm),
    (0x08, 0xB1): (3, _vs373_breathing),
    (0x09, 0xB2): (6, None),  # region types
    (0x0A, 0xB3): (5, None),  # region occupancy bitmap
    (0x0B, 0xB4): (9, None),  # out-of-bed time, regions 1-3
    (0x0C, 0xB4): (9, None),  # out-of-bed time, regions 4-6
    (0x20, 0xCE): (9, _vs373_history),
}


# -- AT101 GPS tracker -------------------------------------------------------------------

_MOVING = {1: True, 2: True, 3: False}  # start, moving, stop (0: unknown)
_FENCE = {0: "enter", 1: "leave"}  # inside, outside (2: unset, 3: unknown)
_POSITION = {0: "normal", 1: "tilt"}
# The zone name of the AT101's own geofence (one circle, set by downlink).
DEVICE_FENCE = "device"


def _position(lat: int, lon: int) -> list[Reading]:
    if lat == 0 and lon == 0:
        return []  # no fix: 0,0 is the Gulf of Guinea, not where anyone we watch is
    return [("location", {"lat": lat / 1e6, "lon": lon / 1e6})]


def _at101_location(value: bytes) -> list[Reading]:
    lat, lon, status = struct.unpack_from("<iiB", value)
    readings = _position(lat, lon)
    if (moving := _MOVING.get(status & 0x0F)) is not None:
        readings.append(("activity", {"motion": moving}))
    if (transition := _FENCE.get(status >> 4)) is not None:
        # The fence is reported as a state on every fix: rules treat repeats as no change.
        readings.append(("geofence", {"transition": transition, "zone": DEVICE_FENCE}))
    return readings


def _at101_history(value: bytes) -> list[Reading]:
    seconds, lon, lat = struct.unpack_from("<Iii", value)  # longitude first, as documented
    return [(kind, {**fields, **_device_time(seconds)}) for kind, fields in _position(lat, lon)]


_AT101_ECHO = {0x10: 1, 0x13: 3, 0x17: 2, 0x28: 1, 0x2D: 3, 0x3B: 1, 0x3C: 1, 0x4A: 1}
_AT101_ECHO |= {0x58: 4, 0x66: 1, 0x71: 1, 0x7E: 4, 0x87: 1, 0x88: 8, 0x89: 4, 0x8A: 3}
_AT101_ECHO |= {0x8E: 3, 0x8F: 1}

_AT101: _Table = {
    **_echoes((0xFE, 0xFF), _AT101_ECHO),
    **_attributes(),
    (0x01, 0x75): (1, _battery),
    (0x03, 0x67): (2, None),  # device temperature, not the wearer's
    (0x04, 0x88): (9, _at101_location),
    (0x84, 0x88): (9, _at101_location),
    (0x05, 0x00): (1, _sensor("position", _POSITION)),
    (0x06, 0xD9): (9, None),  # Wi-Fi scan: needs a geolocation service to become a position
    (0x07, 0x00): (1, _sensor("tamper", _TAMPER)),
    (0x83, 0x67): (3, None),  # device temperature alarm
    (0x20, 0xCE): (12, _at101_history),
}


# -- the walk ----------------------------------------------------------------------------


def _walk(model: str, table: _Table, payload: bytes) -> Readings:
    out = Readings()
    at = 0
    while at < len(payload):
        if len(payload) - at < 2:
            out.error = _stop(Reason.TRUNCATED, model, payload, at, "a lone byte")
            return out
        channel, kind = payload[at], payload[at + 1]
        entry = table.get((channel, kind))
        if entry is None:
            what = f"unknown channel {channel:02x} {kind:02x}"
            out.error = _stop(Reason.UNKNOWN_MESSAGE_TYPE, model, payload, at, what)
            return out
        length, handler = entry
        value = payload[at + 2 : at + 2 + length]
        if len(value) < length:
            what = f"channel {channel:02x} {kind:02x} wants {length} byte(s), has {len(value)}"
            out.error = _stop(Reason.TRUNCATED, model, payload, at, what)
            return out
        if handler is not None:
            out.extend(handler(value))
        at += 2 + length
    return out


def _stop(reason: Reason, model: str, payload: bytes, at: int, what: str) -> DecodeError:
    left = len(payload) - at
    detail = f"{model}: {what} at byte {at}; {left} byte(s) not decoded"
    return DecodeError(PROTOCOL, reason, detail)


def _decoder(model: str, table: _Table) -> Decoder:
    def decode_payload(payload: bytes, f_port: int | None) -> Readings:
        # Milesight sends everything on one port (85 by default, configurable), so the
        # port says nothing the channels do not.
        return _walk(model, table, payload)

    decode_payload.__name__ = f"decode_{model}"
    return decode_payload


# Keys are lower case; look a model name up with `find_model`, which ignores case.
DECODERS: dict[str, Decoder] = {
    model: _decoder(model, table)
    for model, table in (("ws101", _WS101), ("ws301", _WS301), ("vs373", _VS373), ("at101", _AT101))
}

# A known model named inside a longer name: "WS101", "ws101-868m", "Milesight VS373 (EU868)".
_MODEL_IN_TEXT = re.compile(rf"(?<![a-z0-9])({'|'.join(DECODERS)})(?![0-9])")


def find_model(name: str | None) -> str | None:
    """The DECODERS key a model name refers to, ignoring case and region suffixes."""
    match = _MODEL_IN_TEXT.search(name.lower()) if name else None
    return match.group(1) if match else None


def decode(model: str, payload: bytes, f_port: int | None = None) -> Readings:
    """Readings of one payload from a device of `model` (any spelling `find_model` takes).

    Raises DecodeError(UNKNOWN_MODEL) for a model without a decoder; the payload itself never
    raises: what could not be read is in `Readings.error`.
    """
    key = find_model(model)
    if key is None:
        known = ", ".join(m.upper() for m in DECODERS)
        raise DecodeError(PROTOCOL, Reason.UNKNOWN_MODEL, f"no decoder for {model!r}; {known}")
    return DECODERS[key](payload, f_port)
