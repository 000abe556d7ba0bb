"""LoRaWAN, device side: the bytes Milesight WS101, WS301, VS373 and AT101 send, and the
envelopes The Things Stack v3 and ChirpStack v4 wrap them in (with the MQTT topic).

The inverse of `devices.codecs.milesight`, `ttn` and `chirpstack`, written from the vendors'
documentation rather than from the decoders, so round-trip tests check one against the other.
Envelopes leave out zero and empty fields, as both network servers do.
"""

from __future__ import annotations

import base64
import itertools
import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from devices.codecs import chirpstack, ttn

__all__ = [
    "MILESIGHT_PORT",
    "Uplinker",
    "at101_history",
    "at101_location",
    "battery",
    "chirpstack_uplink",
    "ttn_uplink",
    "vs373_alarm",
    "vs373_boot",
    "vs373_breathing",
    "vs373_room",
    "ws101_boot",
    "ws101_press",
    "ws301_report",
]

MILESIGHT_PORT = 85  # Milesight's default application port

_PRESS = {"short": 1, "long": 2, "double": 3}
_DOOR = {"closed": 0, "open": 1}
_INSTALL = {"installed": 0, "removed": 1}
_ROOM = {"normal": 0, "vacant": 1, "in_bed": 2, "out_of_bed": 3, "fall": 4}
_PERSON = {"normal": 0, "motionless": 1, "abnormal": 2, "lying_down": 3}
_ALARM = {"fall": 0, "motionless": 1, "dwell": 2, "out_of_bed": 3, "occupied": 4, "vacant": 5}
_ALARM |= {"bradypnea": 6, "tachypnea": 7, "lying_down": 8}
_ALARM_STATUS = {"alarm": 1, "deactivated": 2, "ignored": 3, "report": 4}
_BREATHING = {"no_data": 1, "normal": 2, "tachypnea": 3, "bradypnea": 4, "undetectable": 5}
_MOTION = {"unknown": 0, "start": 1, "moving": 2, "stop": 3}
_FENCE = {"inside": 0, "outside": 1, "unset": 2, "unknown": 3}


def _channel(channel: int, kind: int, value: bytes) -> bytes:
    return bytes((channel, kind)) + value


def battery(pct: int) -> bytes:
    """The battery channel every model sends (01 75, one byte of percent)."""
    return _channel(0x01, 0x75, bytes((pct,)))


def _maybe_battery(pct: int | None) -> bytes:
    return b"" if pct is None else battery(pct)


def ws101_press(press: str = "short", *, battery_pct: int | None = None) -> bytes:
    """A button press (ff 2e: 1 short, 2 long, 3 double), optionally after a battery level."""
    return _maybe_battery(battery_pct) + _channel(0xFF, 0x2E, bytes((_PRESS[press],)))


def ws101_boot(serial: str = "6538b2232131") -> bytes:
    """The information packet a WS101 sends after joining: power on, versions, serial, class."""
    return (
        _channel(0xFF, 0x0B, b"\xff")
        + _channel(0xFF, 0x01, b"\x01")
        + _channel(0xFF, 0x08, bytes.fromhex(serial))
        + _channel(0xFF, 0x09, b"\x01\x00")
        + _channel(0xFF, 0x0A, b"\x01\x02")
        + _channel(0xFF, 0x0F, b"\x00")
    )


def ws301_report(
    door: str | None = None, *, tamper: str | None = None, battery_pct: int | None = None
) -> bytes:
    """A WS301 uplink: battery, magnet (03 00) and install state (04 00), each if given."""
    out = _maybe_battery(battery_pct)
    if door is not None:
        out += _channel(0x03, 0x00, bytes((_DOOR[door],)))
    if tamper is not None:
        out += _channel(0x04, 0x00, bytes((_INSTALL[tamper],)))
    return out


def vs373_boot(serial: str = "6806e39739840003") -> bytes:
    """The information packet a VS373 sends after joining (its user guide's example)."""
    return (
        _channel(0xFF, 0x01, b"\x01")
        + _channel(0xFF, 0x16, bytes.fromhex(serial))
        + _channel(0xFF, 0x09, b"\x01\x00")
        + _channel(0xFF, 0x0A, b"\x01\x01")
        + _channel(0xFF, 0x0F, b"\x02")
    )


def vs373_room(
    room: str, person: str = "normal", *, seconds: int = 0, today: int = 0, legacy: bool = False
) -> bytes:
    """Room status: 07 b0 with 3-byte durations, or 03 f8 with 2-byte ones (firmware 1.0.1)."""
    states = bytes((_ROOM[room], _PERSON[person]))
    if legacy:
        return _channel(0x03, 0xF8, states + struct.pack("<HH", seconds, today))
    durations = seconds.to_bytes(3, "little") + today.to_bytes(3, "little")
    return _channel(0x07, 0xB0, states + durations)


def vs373_alarm(
    alarm: str,
    status: str = "alarm",
    *,
    alarm_id: int = 1,
    region: int = 0,
    stored_at: datetime | None = None,
) -> bytes:
    """An alarm (06 fb), or with `stored_at` the history record re-sending one (20 ce)."""
    body = struct.pack("<HBBB", alarm_id, _ALARM[alarm], _ALARM_STATUS[status], region)
    if stored_at is None:
        return _channel(0x06, 0xFB, body)
    return _channel(0x20, 0xCE, struct.pack("<I", int(stored_at.timestamp())) + body)


def vs373_breathing(rate_bpm: float, status: str = "normal") -> bytes:
    """Respiration (08 b1): status, then the rate in hundredths of a breath per minute."""
    return _channel(0x08, 0xB1, struct.pack("<BH", _BREATHING[status], round(rate_bpm * 100)))


def at101_location(
    lat: float,
    lon: float,
    *,
    motion: str = "moving",
    fence: str = "unset",
    battery_pct: int | None = None,
) -> bytes:
    """A GNSS fix (04 88): micro-degrees, then geofence state (high nibble) and motion (low)."""
    status = _FENCE[fence] << 4 | _MOTION[motion]
    value = struct.pack("<iiB", round(lat * 1e6), round(lon * 1e6), status)
    return _maybe_battery(battery_pct) + _channel(0x04, 0x88, value)


def at101_history(lat: float, lon: float, at: datetime) -> bytes:
    """A stored fix re-sent later (20 ce): time, then longitude before latitude."""
    value = struct.pack("<Iii", int(at.timestamp()), round(lon * 1e6), round(lat * 1e6))
    return _channel(0x20, 0xCE, value)


# -- envelopes ---------------------------------------------------------------------------


def _rfc3339(moment: datetime) -> str:
    # Both servers write nanoseconds; a datetime has microseconds, so pad.
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}000Z"


def _without_empty(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v not in (None, "", 0, [], {})}


def ttn_uplink(
    device_id: str,
    payload: bytes,
    *,
    application_id: str = "care-home",
    tenant_id: str | None = "ttn",
    f_cnt: int,
    received_at: datetime,
    f_port: int = MILESIGHT_PORT,
    model_id: str | None = None,
    session_key_id: str = "AXA50tHUGUucuzS/bCGMNw==",
    dev_eui: str = "24E124000000000A",
) -> tuple[str, bytes]:
    """An uplink as The Things Stack's MQTT integration publishes it: (topic, JSON)."""
    uplink = _without_empty(
        {
            "session_key_id": session_key_id,
            "f_port": f_port,
            "f_cnt": f_cnt,
            "frm_payload": base64.b64encode(payload).decode(),
            "rx_metadata": [{"gateway_ids": {"gateway_id": "gtw1"}, "rssi": -71, "snr": 7.5}],
            "received_at": _rfc3339(received_at),
        }
    )
    if model_id is not None:
        uplink["version_ids"] = {"brand_id": "milesight-iot", "model_id": model_id}
    ids = {"device_id": device_id, "application_ids": {"application_id": application_id}}
    doc = {
        "end_device_ids": {**ids, "dev_eui": dev_eui, "dev_addr": "260B1234"},
        "correlation_ids": [f"as:up:{uuid.uuid5(uuid.NAMESPACE_URL, device_id).hex}"],
        "received_at": _rfc3339(received_at + timedelta(milliseconds=180)),
        "uplink_message": uplink,
    }
    return ttn.topic_for(device_id, application_id, tenant_id), orjson.dumps(doc)


def chirpstack_uplink(
    dev_eui: str,
    payload: bytes,
    *,
    application_id: str = "17c82e96-be03-4f38-aef3-f83d48582d97",
    f_cnt: int,
    time: datetime,
    f_port: int = MILESIGHT_PORT,
    tags: dict[str, str] | None = None,
    profile_name: str = "Milesight sensors",
    deduplication_id: str | None = None,
) -> tuple[str, bytes]:
    """An `up` event as ChirpStack v4's MQTT integration publishes it: (topic, JSON)."""
    dedup = deduplication_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{dev_eui}/{f_cnt}/{time}"))
    info = {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "applicationId": application_id,
        "deviceProfileName": profile_name,
        "deviceName": f"device {dev_eui.lower()}",
        "devEui": dev_eui.lower(),
        "tags": tags or {},
    }
    doc = _without_empty(
        {
            "deduplicationId": dedup,
            "time": _rfc3339(time),
            "deviceInfo": _without_empty(info),
            "devAddr": "00189440",
            "dr": 5,
            "fCnt": f_cnt,
            "fPort": f_port,
            "data": base64.b64encode(payload).decode(),
            "rxInfo": [{"gatewayId": "0016c001f153a14c", "rssi": -36, "snr": 10.5}],
        }
    )
    return chirpstack.topic_for(dev_eui, application_id), orjson.dumps(doc)


class Uplinker:
    """One device behind a network server: wraps each payload in the next uplink envelope.

    The frame counter starts at 0 and counts up, as after a join; `rejoin()` restarts it,
    with a new session, as a device that rejoins does.
    """

    def __init__(self, device_id: str, *, server: str = "ttn", model: str | None = None) -> None:
        if server not in ("ttn", "chirpstack"):
            raise ValueError(f"server must be 'ttn' or 'chirpstack', not {server!r}")
        self.device_id = device_id
        self.server = server
        self.model = model
        self._session = 0
        self._f_cnt = itertools.count()

    def rejoin(self) -> None:
        self._session += 1
        self._f_cnt = itertools.count()

    def uplink(self, payload: bytes, at: datetime) -> tuple[str, bytes]:
        f_cnt = next(self._f_cnt)
        if self.server == "ttn":
            session = base64.b64encode(f"{self.device_id}/{self._session}".encode()).decode()
            return ttn_uplink(
                self.device_id,
                payload,
                f_cnt=f_cnt,
                received_at=at,
                model_id=self.model,
                session_key_id=session,
            )
        tags = {"model": self.model} if self.model else None
        return chirpstack_uplink(self.device_id, payload, f_cnt=f_cnt, time=at, tags=tags)
