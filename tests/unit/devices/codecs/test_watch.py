"""The watch codec: captured frames and their events, the alarm safety rules, the quirks of
real firmware, and that nothing but DecodeError ever escapes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.codecs import Decoded, Message, watch
from devices.codecs.watch_frames import FrameSplitter, build_frame
from devices.errors import DecodeError, Reason
from devices.events import Event
from simulators.watch import Fix, WatchEncoder, WifiSighting

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
_COMMON = {"event_id", "device_id", "kind", "ts", "received_at", "source"}


def _device(frame: bytes) -> str:
    match = re.match(rb"\[..\*([^*]+)\*", frame)
    assert match is not None
    return match.group(1).decode()


def decode(frame: bytes, device: str | None = None, at: datetime = NOW) -> Decoded:
    return watch.decode(frame, device or _device(frame), at)


def facts(events: list[Event]) -> list[tuple[str, dict[str, Any]]]:
    """(kind, its own fields) per event: what a table can state compactly."""
    return [
        (e.kind, {k: v for k, v in e.model_dump().items() if k not in _COMMON and v is not None})
        for e in events
    ]


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def test_topic_routing() -> None:
    assert watch.topic_for("8800000015") == "carewatch/v1/watch/8800000015/up"
    assert watch.device_from_topic("carewatch/v1/watch/8800000015/up") == "8800000015"
    for bad in ("carewatch/v1/watch//up", "carewatch/v1/watch/a/b/up", "carewatch/v1/devices/1/up"):
        assert watch.device_from_topic(bad) is None, bad
    assert watch.CODEC.subscriptions == ("carewatch/v1/watch/+/up",)
    assert watch.CODEC.name == watch.NAME == "watch" and watch.CODEC.broker_account is None


def test_codec_takes_a_message() -> None:
    frame = b"[SG*8800000015*0002*LK]"
    message = Message(frame, watch.topic_for("8800000015"), "8800000015", NOW)
    (event,) = watch.CODEC.decode(message).events
    assert (event.kind, event.source, event.ts) == ("heartbeat", "watch", NOW)


def loc(*values: float) -> tuple[str, dict[str, Any]]:
    names = ("lat", "lon", "speed_kmh", "course_deg", "altitude_m", "satellites")
    return "location", dict(zip(names, values, strict=True))


# Frames captured from real watches (Traccar's WatchProtocolDecoderTest) and their events.
CAPTURED: list[tuple[bytes, list[tuple[str, dict[str, Any]]]]] = [
    (b"[SG*8800000015*0002*LK]", [("heartbeat", {})]),
    (
        b"[3G*4700186508*000B*LK,0,10,100]",
        [("heartbeat", {}), ("activity", {"steps": 0}), ("battery", {"battery_pct": 100})],
    ),
    (b"[SG*9081000548*0009*LK,0,100]", [("heartbeat", {})]),  # 2 values: ambiguous
    (
        b"[3G*4700222306*011F*UD2,120316,140444,A,48.779045,N, 9.1574736,E,0.57,12.8,0.0,7,28,77,"
        b"0,0,00000000,2,2,262,1,21041,9067,121,21041,5981,116,5,WG-Superlativ,34:31:c4:c8:a9:22,"
        b"-67,EasyBox-28E858,18:83:bf:28:e8:f4,-70,MoMaXXg,be:05:43:b7:19:15,-72,MoMaXX2,"
        b"bc:05:43:b7:19:15,-72,Gastzugang,18:83:bf:28:e8:f5,-72]",
        [
            loc(48.779045, 9.1574736, 0.57, 12.8, 0.0, 7),
            ("battery", {"battery_pct": 77}),
            ("activity", {"steps": 0}),
        ],
    ),
    (
        b"[3G*2104326058*00E9*UD_LTE,300621,135101,A,32.162652,N,34.888748,E,30.84,265.158,"
        b"65.621,18,100,83,0,0,00000000,1,1,425,01,10223,8012811,100,3,ES4104,22:74:1d:39:64:ff,"
        b"-46,metropoline-wifi,a8:3f:a1:e0:66:ba,-89,Egged.co.il,00:0c:42:51:cf:cd,-81,1.7055488]",
        [
            loc(32.162652, 34.888748, 30.84, 265.158, 65.621, 18),
            ("battery", {"battery_pct": 83}),
            ("activity", {"steps": 0}),
        ],
    ),
    (  # no fix (V, 0,0): no location; the rest still counts
        b"[3G*0304187088*0100*UD_WCDMA,100720,094202,V,0.0,N,0.0,E,22.0,0,-1,21,75,92,0,0,"
        b"00000000,1,1,425,01,10192,1282125,75,5,Inet,04:f0:21:46:1f:57,-54,iNetSecurity,"
        b"00:1e:42:25:2f:3e,-71,Gilad,58:d5:6e:9d:1b:af,-80,weekend,14:ae:db:cb:99:25,-82,"
        b"advancemed1,04:f0:21:4c:c8:3e,-89,0.0]",
        [("battery", {"battery_pct": 92}), ("activity", {"steps": 0})],
    ),
    (  # SOS (bit 16) with no fix: an SOS without a position, never a rejected frame
        b"[3G*8809008845*00C0*AL,271219,094744,V,00.000000,N, 0.0000000,E,0.00,0.0,0.0,0,100,"
        b"81,0,0,00010000,7,0,460,0,9336,3981,141,9336,3912,141,9336,3982,140,9765,4233,134,"
        b"9765,4071,134,9765,4321,134,9336,4353,132,0,0.0]",
        [("sos", {}), ("battery", {"battery_pct": 81}), ("activity", {"steps": 0})],
    ),
    (  # fall (bit 21) with a fix, moving (bit 4)
        b"[3G*8308373902*0080*AL,230817,095346,A,47.083950,N,15.4821850,E,7.60,273.8,0.0,4,15,"
        b"44,0,0,00200010,2,255,232,1,7605,42530,118,7605,58036,119,0,65.8]",
        [
            ("fall", {"lat": 47.08395, "lon": 15.482185}),
            loc(47.08395, 15.482185, 7.6, 273.8, 0.0, 4),
            ("battery", {"battery_pct": 44}),
            ("activity", {"steps": 0, "motion": True}),
        ],
    ),
    (  # removed from the wrist (bit 20), no fix, index field
        b"[3G*358839237678820*0122*ALCUSTOMER1,251120,081821,V,0.0,N,0.0,E,2.58,317.462,35.147,"
        b"14,100,2,11089,0,00100008,1,1,460,01,42308,101992452,100,5,shizhou1,44:56:e2:03:ea:2a,"
        b"-69,FART3,30:0d:9e:bb:fa:4d,-70,ZKY-A209,88:c3:97:c1:f4:7f,-73,ChinaNet-HNeD,"
        b"e8:84:c6:21:7c:dc,-77,,30:45:96:10:14:5d,-79,1.2035439]",
        [
            ("worn", {"worn": False}),
            ("battery", {"battery_pct": 2}),
            ("activity", {"steps": 11089}),
        ],
    ),
    (
        b"[ZJ*014111001332708*0075*0064*AL,040418,052156,A,22.536207,N,113.938673,E,0,0,0,5,100,"
        b"82,1000,50,00100000,1,255,460,0,9340,3663,35]",
        [
            ("worn", {"worn": False}),
            loc(22.536207, 113.938673, 0.0, 0.0, 0.0, 5),
            ("battery", {"battery_pct": 82}),
            ("activity", {"steps": 1000}),
        ],
    ),
    (  # an AL with no alarm bit at all is still an alarm: SOS, here without a fix
        b"[SG*9051004074*0058*AL,120117,145602,V,40.058413,N,76.336618,W,11.519,188,99,00,01,80,"
        b"0,50,00000000,0,1,0,0,,10]",
        [
            ("sos", {}),  # no fix: the alarm has no position...
            # ...and the stale coordinates are the last known position, flagged as such
            ("location", {**loc(40.058413, -76.336618, 11.519, 188.0, 99.0, 0)[1], "fix": False}),
            ("battery", {"battery_pct": 80}),
            ("activity", {"steps": 0}),
        ],
    ),
    (  # an AL for low battery (bit 0) names its alarm: no SOS
        b"[SG*8800000015*0087*AL,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,"
        b"1000,50,0001,4,1,460,0,9360,4082,131,9360,4092,148,9360,4091,143,9360,4153,141]",
        [
            loc(22.571707, 113.8613968, 0.1, 0.0, 100.0, 7),
            ("battery", {"battery_pct": 90}),
            ("activity", {"steps": 1000}),
        ],
    ),
    (b"[CS*8800000015*0008*PULSE,72]", [("vitals", {"heart_rate_bpm": 72})]),
    (b"[3G*6005412902*0008*heart,71]", [("vitals", {"heart_rate_bpm": 71})]),
    (b"[3G*6005412902*0007*heart,0]", []),  # a failed measurement
    (
        b"[3G*4700609403*0013*bphrt,120,79,73,,,,]",
        [("vitals", {"systolic_mmhg": 120, "diastolic_mmhg": 79, "heart_rate_bpm": 73})],
    ),
    (
        b"[ZJ*357653059860416*0007*000c*BLOOD,109,68]",
        [("vitals", {"systolic_mmhg": 109, "diastolic_mmhg": 68})],
    ),
    (b"[3G*2104326058*000E*btemp2,1,35.29]", [("vitals", {"body_temp_c": 35.29})]),
    (b"[3G*2104326058*000E*btemp2,0,35.29]", []),  # flagged invalid by the watch
    (b"[3G*8800000015*0003*TKQ]", []),
    (b"[3G*8308406279*0008*rcapture]", []),  # acknowledges a remote-capture command
    (b"[CS*1234567890*000e*TK,#!AMR" + bytes.fromhex("7d017d027d037d047d05ff") + b"]", []),
]


@pytest.mark.parametrize(("frame", "expected"), CAPTURED, ids=lambda v: None)
def test_captured_frames(frame: bytes, expected: list[tuple[str, dict[str, Any]]]) -> None:
    decoded = decode(frame)
    assert facts(decoded.events) == expected
    assert decoded.rejects == []
    assert all(e.device_id == _device(frame) and e.source == "watch" for e in decoded.events)


def test_device_time_is_read_as_utc_and_frames_without_one_use_receive_time() -> None:
    ud = decode(CAPTURED[3][0]).events
    assert {e.ts for e in ud} == {at("2016-03-12 14:04:44")}
    assert {e.ts for e in decode(b"[3G*4700186508*000B*LK,0,10,100]").events} == {NOW}


# -- the alarm safety rules ---------------------------------------------------------

WATCH = WatchEncoder("8800000015")
WHEN = at("2026-11-22 07:59:30")
HOME = Fix(lat=31.230416, lon=121.473701, speed_kmh=0.0, course_deg=0.0, satellites=9)


def _kinds(decoded: Decoded) -> list[str]:
    return [e.kind for e in decoded.events]


@pytest.mark.parametrize("kind", ["AL", "AL_LTE", "ALCUSTOMER1", "UD", "UD2", "UD_LTE", "WT"])
def test_sos_without_a_fix_has_no_position_and_no_location_event(kind: str) -> None:
    decoded = decode(WATCH.alarm(WHEN, sos=True, kind=kind))
    (sos,) = [e for e in decoded.events if e.kind == "sos"]
    assert (sos.lat, sos.lon, sos.ts) == (None, None, WHEN)  # type: ignore[union-attr]
    assert "location" not in _kinds(decoded) and decoded.rejects == []


def test_fall_without_a_fix_has_no_position() -> None:
    decoded = decode(WATCH.alarm(WHEN, fall=True))
    assert facts(decoded.events)[0] == ("fall", {})
    assert "location" not in _kinds(decoded)


def test_alarms_with_a_fix_carry_it() -> None:
    decoded = decode(WATCH.alarm(WHEN, sos=True, fall=True, fix=HOME))
    position = {"lat": HOME.lat, "lon": HOME.lon}
    assert facts(decoded.events)[:2] == [("sos", position), ("fall", position)]
    assert "location" in _kinds(decoded)


@pytest.mark.parametrize(
    "position",
    [
        "V,0.000000,N,0.0000000,E",  # no fix, no last position
        "A,0.000000,N,0.0000000,E",  # 'A' before the first fix, at 0,0
        "A,,N,,E",  # empty coordinates
        "A,95.000000,N,121.4737010,E",  # impossible latitude
        "X,31.230416,N,121.4737010,E",  # unknown validity
    ],
)
def test_sos_survives_any_position(position: str) -> None:
    body = f"AL,221126,075930,{position},0.00,0.0,0.0,0,100,80,0,0,00010000,0,0"
    decoded = decode(build_frame("3G", "8800000015", body.encode()))
    (sos,) = [e for e in decoded.events if e.kind == "sos"]
    assert sos.lat is None and "location" not in _kinds(decoded)  # type: ignore[union-attr]


def test_without_a_fix_the_position_is_kept_as_the_last_known_one_never_on_the_alarm() -> None:
    body = "AL,221126,075930,V,31.230416,N,121.4737010,E,0.00,0.0,0.0,0,100,80,0,0,00010000,0,0"
    decoded = decode(build_frame("3G", "8800000015", body.encode()))
    sos, location = decoded.events[:2]
    assert sos.kind == "sos" and sos.lat is None  # type: ignore[union-attr]
    assert location.kind == "location" and location.fix is False  # type: ignore[union-attr]
    assert (location.lat, location.lon) == (31.230416, 121.473701)  # type: ignore[union-attr]
    assert decoded.rejects == []
    fixed = decode(build_frame("3G", "8800000015", body.replace(",V,", ",A,").encode()))
    assert fixed.events[1].fix is None  # type: ignore[union-attr]  # absent: a current fix


def test_round_trip_of_a_last_known_position() -> None:
    stale = Fix(31.2, 121.4, satellites=2, current=False)
    decoded = decode(WATCH.alarm(WHEN, fix=stale, sos=True))
    sos, location = decoded.events[:2]
    assert facts([sos]) == [("sos", {})]
    assert location.model_dump(include={"lat", "lon", "fix"}) == {
        "lat": 31.2, "lon": 121.4, "fix": False}  # fmt: skip


def test_an_alarm_with_an_unreadable_body_is_still_an_sos() -> None:
    for body in (b"AL", b"AL,221126,075930,V", b"ALCUSTOMER1,garbage"):
        decoded = decode(build_frame("3G", "8800000015", body))
        assert facts(decoded.events) == [("sos", {})], body
        assert decoded.events[0].ts == NOW
        assert [r.reason for r in decoded.rejects] == [Reason.TRUNCATED]


def test_an_alarm_with_a_broken_status_is_an_sos_and_the_status_is_rejected() -> None:
    body = b"AL,221126,075930,V,0,N,0,E,0,0,0,0,100,80,0,0,zz,0,0"
    decoded = decode(build_frame("3G", "8800000015", body))
    assert _kinds(decoded)[0] == "sos"
    assert [r.reason for r in decoded.rejects] == [Reason.INVALID_FIELD]


def test_an_alarm_with_a_broken_time_alerts_at_receive_time_and_drops_the_telemetry() -> None:
    body = b"AL,000000,000000,A,31.230416,N,121.4737010,E,0,0,0,9,100,80,0,0,00210000,0,0"
    decoded = decode(build_frame("3G", "8800000015", body))
    assert _kinds(decoded) == ["sos", "fall"]
    assert {e.ts for e in decoded.events} == {NOW}
    assert [r.reason for r in decoded.rejects] == [Reason.INVALID_TIMESTAMP]


def test_an_alarm_dated_before_2000_alerts_at_receive_time_flagged() -> None:
    # 2000-01-01 00:00:05 on a Beijing-time watch is 1999-12-31 in UTC: a clock never set.
    body = b"AL,010100,000005,A,31.230416,N,121.4737010,E,0,0,0,9,100,80,0,0,00010000,0,0"
    frame = build_frame("3G", "8800000015", body)
    decoded = watch.decode(frame, "8800000015", NOW, ZoneInfo("Asia/Shanghai"))
    (sos,) = decoded.events  # the telemetry, dated 1999, is refused
    assert (sos.kind, sos.ts, sos.salvaged) == ("sos", NOW, ["ts"])  # type: ignore[union-attr]
    assert (sos.lat, sos.lon) == (31.230416, 121.473701)  # type: ignore[union-attr]
    reasons = [r.reason for r in decoded.rejects]
    assert reasons.count(Reason.SALVAGED_ALARM) == 1
    assert set(reasons) == {Reason.SALVAGED_ALARM, Reason.INVALID_TIMESTAMP}
    assert all("before 2000-01-01" in r.detail for r in decoded.rejects)


def test_status_bits() -> None:
    def kinds(status: int, kind: str = "UD") -> list[tuple[str, dict[str, Any]]]:
        frame = WATCH.report(WHEN, kind=kind, status=status, steps=5)
        return [f for f in facts(decode(frame).events) if f[0] not in ("battery", "activity")]

    assert kinds(watch.STATUS_SOS) == [("sos", {})]
    assert kinds(watch.STATUS_FALL) == kinds(watch.STATUS_FALL_2) == [("fall", {})]
    assert kinds(watch.STATUS_REMOVED) == [("worn", {"worn": False})]
    assert kinds(watch.STATUS_FENCE_OUT_ALARM) == [
        ("geofence", {"transition": "leave", "zone": "device"})
    ]
    assert kinds(watch.STATUS_FENCE_IN_ALARM) == [
        ("geofence", {"transition": "enter", "zone": "device"})
    ]
    # State bits repeat in every report; only the AL the watch sends for them is a transition.
    assert kinds(watch.STATUS_FENCE_OUT | watch.STATUS_LOW_BATTERY) == []
    assert kinds(watch.STATUS_FENCE_OUT, kind="AL") == [
        ("geofence", {"transition": "leave", "zone": "device"})
    ]
    assert kinds(watch.STATUS_POWER_CUT, kind="AL") == []  # a named alarm: not an SOS
    assert kinds(0x00000008, kind="AL") == [("sos", {})]  # bit 3 names no alarm


def test_an_sos_frame_type_is_a_command_acknowledgement_not_an_alarm() -> None:
    for frame in (b"[3G*1*0003*SOS]", b"[3G*1*0013*SOS,123,456,789]", b"[3G*1*000A*FALLDOWN,1]"):
        assert decode(frame) == Decoded(), frame


# -- quirks of real firmware --------------------------------------------------------


def _location(frame: bytes) -> tuple[float, float]:
    (loc,) = [e for e in decode(frame).events if e.kind == "location"]
    return loc.lat, loc.lon  # type: ignore[union-attr]


def _ud(position: str, cells: str = "1,1,460,0,9360,4082,131") -> bytes:
    body = f"UD,221126,075930,{position},0.00,0.0,0.0,5,100,80,0,0,00000000,{cells}"
    return build_frame("3G", "8800000015", body.encode())


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        ("A,-33.480366,N,-70.7630692,E", (-33.480366, -70.7630692)),  # signed: the sign wins
        ("A,38.000000,N,-9.000000,W", (38.0, -9.0)),  # both say west
        ("A,16.479064,S,68.119072,", (-16.479064, 68.119072)),  # empty hemisphere
        ("A, 48.779045,N, 9.1574736,E", (48.779045, 9.1574736)),  # leading spaces
        ("A,22.571707,n,113.8613968,e", (22.571707, 113.8613968)),  # lower case
    ],
)
def test_coordinate_quirks(position: str, expected: tuple[float, float]) -> None:
    assert _location(_ud(position)) == expected


def test_a_hemisphere_on_the_wrong_axis_is_rejected_not_guessed() -> None:
    decoded = decode(_ud("A,22.5,E,113.8,N"))
    assert "location" not in _kinds(decoded)
    assert [r.reason for r in decoded.rejects] == [Reason.INVALID_FIELD]


def test_hex_cell_ids_and_odd_tails_are_ignored() -> None:
    for cells in ("3,0,460,0,4E20,12AB34CD,25,4E20,12AB35CE,22,4E20,12AB36CF,18", "", "x,y,z"):
        assert _location(_ud("A,22.5,N,113.8,E", cells)) == (22.5, 113.8)


def test_lower_case_types() -> None:
    frame = build_frame("3G", "1", b"ud,221126,075930,A,22.5,N,113.8,E,0,0,0,5,100,80,3,0,0,0,0")
    assert _kinds(decode(frame)) == ["location", "battery", "activity"]
    assert _kinds(decode(b"[3G*1*0005*lk,0,0,50]"))[0] == "heartbeat"


def test_implausible_extras_are_dropped_not_rejected() -> None:
    body = b"UD,221126,075930,A,22.5,N,113.8,E,-1,400,-12.5,-3,100,80,3,0,0,0,0"
    (loc, *_) = decode(build_frame("3G", "1", body)).events
    assert facts([loc]) == [("location", {"lat": 22.5, "lon": 113.8, "altitude_m": -12.5})]


def test_broken_battery_and_steps_are_rejected_alone() -> None:
    body = b"UD,221126,075930,A,22.5,N,113.8,E,0,0,0,5,100,8x,-,0,0,0,0"
    decoded = decode(build_frame("3G", "1", body))
    assert _kinds(decoded) == ["location"]
    assert [r.reason for r in decoded.rejects] == [Reason.INVALID_FIELD] * 2


def test_a_position_report_that_is_too_short_is_truncated() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(build_frame("3G", "1", b"UD,221126,075930,A,22.5,N"))
    assert caught.value.reason == Reason.TRUNCATED


def test_a_report_with_a_broken_time_keeps_nothing_but_says_why() -> None:
    decoded = decode(
        build_frame("3G", "1", b"UD,311326,256199,A,22.5,N,113.8,E,0,0,0,5,100,80,3,0,0")
    )
    assert decoded.events == []
    assert [r.reason for r in decoded.rejects] == [Reason.INVALID_TIMESTAMP]


@pytest.mark.parametrize(
    ("frame", "kinds", "reason"),
    [
        (b"[3G*1*000A*LK,0,0,150]", ["heartbeat", "activity"], Reason.INVALID_FIELD),
        (b"[3G*1*0008*LK,a,0,b]", ["heartbeat"], Reason.INVALID_FIELD),
        (b"[3G*1*0009*heart,400]", [], Reason.INVALID_FIELD),
        (b"[3G*1*0009*TEMP,98.6]", [], Reason.INVALID_FIELD),  # Fahrenheit: not guessed
    ],
)
def test_a_bad_value_is_rejected_alone(frame: bytes, kinds: list[str], reason: Reason) -> None:
    decoded = decode(frame)
    assert _kinds(decoded) == kinds
    assert [r.reason for r in decoded.rejects] == [reason]


def test_oxygen_and_temperature_frames() -> None:
    assert facts(decode(b"[3G*1*000C*oxygen,75,97]").events) == [("vitals", {"spo2_pct": 97})]
    assert facts(decode(b"[3G*1*0009*oxygen,98]").events) == [("vitals", {"spo2_pct": 98})]
    assert facts(decode(b"[3G*1*0009*TEMP,36.6]").events) == [("vitals", {"body_temp_c": 36.6})]


@pytest.mark.parametrize(
    "frame",
    [b"[3G*1*0004*INIT]", b"[3G*1*000A*INIT,1,2,3]"],
)
def test_init_is_a_heartbeat(frame: bytes) -> None:
    assert _kinds(decode(frame)) == ["heartbeat"]


@pytest.mark.parametrize(
    "frame",
    [b"[3G*1*0009*UPLOAD,60]", b"[3G*1*0002*CR]", b"[3G*1*0005*img,1]", b"[3G*1*0004*JXTK]"],
)
def test_other_types_decode_to_nothing(frame: bytes) -> None:
    assert decode(frame) == Decoded()


def test_a_frame_of_another_device_is_rejected() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(b"[SG*8800000015*0002*LK]", device="8800000016")
    assert caught.value.reason == Reason.DEVICE_MISMATCH


@pytest.mark.parametrize("payload", [b"", b"{}", b"[SG*1*0002*LK", b"[3G*1*0000*]", b"\xff" * 20])
def test_what_is_not_a_frame_is_an_invalid_frame(payload: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(payload, device="1")
    assert caught.value.reason == Reason.INVALID_FRAME


# -- event ids ------------------------------------------------------------------------


def test_a_redelivered_or_resent_alarm_keeps_its_event_ids() -> None:
    # The watch repeats an unacknowledged AL, with its next index: the same alarm.
    first = WatchEncoder("1", maker="ZJ", indexed=True, first_index=0x75)
    frame, resent = (first.alarm(WHEN, sos=True) for _ in range(2))
    assert frame != resent
    ids = [e.event_id for e in decode(frame).events]
    assert [e.event_id for e in decode(frame, at=NOW + timedelta(minutes=5)).events] == ids
    assert [e.event_id for e in decode(resent).events] == ids
    later = decode(first.alarm(WHEN + timedelta(seconds=30), sos=True)).events
    assert later[0].event_id != ids[0]


# -- round trips through the simulator's encoder ---------------------------------------


def test_round_trip_through_the_simulator() -> None:
    enc = WatchEncoder("352661090143150", maker="SG")
    wifi = [WifiSighting("[LG_Wall-Mount A/C]e725", "66:a1:ed:e1:e7:25", -82)]
    stream = b"".join(
        (
            enc.init(),
            enc.link(steps=1200, rolls=3, battery=76),
            enc.report(WHEN, fix=HOME, battery=75, steps=1250, moving=True, wifi=wifi),
            enc.alarm(WHEN, sos=True),
            enc.alarm(WHEN, fix=HOME, fall=True, kind="AL_LTE"),
            enc.alarm(WHEN, removed=True, fence="leave", kind="ALCUSTOMER1"),
            enc.heart(68),
            enc.blood_pressure(128, 82, 70),
            enc.blood_pressure(118, 76),
            enc.oxygen(96),
            enc.temperature(36.75),
            enc.voice(b"#!AMR\n}[],*" * 10),
        )
    )
    frames = FrameSplitter().feed(stream)
    assert len(frames) == 12 and b"".join(frames) == stream
    decoded = [decode(f) for f in frames]
    assert all(d.rejects == [] for d in decoded)
    got = [facts(d.events) for d in decoded]
    position = {"lat": HOME.lat, "lon": HOME.lon}
    assert got[0] == [("heartbeat", {})]
    assert got[1][1:] == [("activity", {"steps": 1200}), ("battery", {"battery_pct": 76})]
    extras = {"speed_kmh": 0.0, "course_deg": 0.0, "altitude_m": 0.0, "satellites": 9}
    assert got[2][0] == ("location", {**position, **extras})
    assert got[2][2] == ("activity", {"steps": 1250, "motion": True})
    assert got[3][0] == ("sos", {}) and "location" not in [k for k, _ in got[3]]
    assert got[4][0] == ("fall", position)
    assert got[5][:2] == [
        ("worn", {"worn": False}),
        ("geofence", {"transition": "leave", "zone": "device"}),
    ]
    assert got[6:11] == [
        [("vitals", {"heart_rate_bpm": 68})],
        [("vitals", {"systolic_mmhg": 128, "diastolic_mmhg": 82, "heart_rate_bpm": 70})],
        [("vitals", {"systolic_mmhg": 118, "diastolic_mmhg": 76})],
        [("vitals", {"spo2_pct": 96})],
        [("vitals", {"body_temp_c": 36.75})],
    ]
    assert got[11] == []


def test_southern_and_western_fixes_round_trip() -> None:
    fix = Fix(lat=-33.480366, lon=-70.7630692, speed_kmh=12.5, course_deg=271.0, altitude_m=-3.0)
    (loc, *_) = decode(WATCH.report(WHEN, fix=fix)).events
    assert facts([loc])[0][1] == {
        **{"lat": fix.lat, "lon": fix.lon, "speed_kmh": 12.5, "course_deg": 271.0},
        **{"altitude_m": -3.0, "satellites": 8},
    }


# -- nothing but DecodeError, whatever the bytes ----------------------------------------


def _decodes_or_raises_decode_error(payload: bytes, device: str = "8800000015") -> None:
    try:
        decoded = watch.decode(payload, device, NOW)
    except DecodeError:
        return
    assert all(isinstance(r, DecodeError) for r in decoded.rejects)


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_decode_error(payload: bytes) -> None:
    _decodes_or_raises_decode_error(payload)


_REAL = [frame for frame, _ in CAPTURED] + [WATCH.alarm(WHEN, sos=True, fix=HOME)]


@given(
    st.sampled_from(_REAL),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.binary(max_size=3), st.booleans()),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_real_frames_only_raise_decode_error(
    frame: bytes, edits: list[tuple[int, bytes, bool]]
) -> None:
    mutated = bytearray(frame)
    for pos, data, replace in edits:
        pos %= len(mutated) + 1
        mutated[pos : pos + (len(data) if replace else 0)] = data
    _decodes_or_raises_decode_error(bytes(mutated), device=_device(frame))


_FIELD = st.one_of(
    st.text(alphabet="0123456789.-+ AVNSEWaefx", max_size=12),
    st.sampled_from(["", "A", "V", "N", "S", "E", "W", "00010000", "FFFFFFFF", "nan", "inf",
                     "1e999", "-0", "999999999999999999999", "311299", "000000", " "]),
)  # fmt: skip


@given(
    st.sampled_from(["UD", "AL", "LK", "heart", "bphrt", "BLOOD", "TEMP", "btemp2", "oxygen"]),
    st.lists(_FIELD, max_size=24),
)
def test_any_field_values_only_raise_decode_error(kind: str, values: list[str]) -> None:
    content = ",".join([kind, *values]).encode()
    _decodes_or_raises_decode_error(build_frame("3G", "8800000015", content))


def test_a_watch_on_local_time_is_read_in_its_registered_zone() -> None:
    beijing = ZoneInfo("Asia/Shanghai")
    sent = datetime(2026, 11, 22, 8, 30, 12, tzinfo=beijing)  # 00:30:12 UTC
    frame = WatchEncoder("8800000015", clock=beijing).report(sent, fix=Fix(31.2, 121.4))
    assert b"221126,083012" in frame  # the watch's own digits, no offset
    message = Message(
        frame, watch.topic_for("8800000015"), "8800000015", NOW, None, "Asia/Shanghai"
    )
    location = next(e for e in watch.CODEC.decode(message).events if e.kind == "location")
    assert location.ts == at("2026-11-22 00:30:12")
    # Read as UTC, the same frame is eight hours off:
    location = next(e for e in decode(frame).events if e.kind == "location")
    assert location.ts == at("2026-11-22 08:30:12")


def test_a_decoder_bug_never_costs_an_alarm_frame_its_alarm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(watch, "_read_report", broken)
    decoded = decode(WATCH.alarm(WHEN, sos=True))
    assert [(e.kind, e.salvaged) for e in decoded.events] == [("sos", ["fields"])]  # type: ignore[union-attr]
    assert {r.reason for r in decoded.rejects} == {Reason.INTERNAL_ERROR, Reason.SALVAGED_ALARM}
    report = decode(WATCH.report(WHEN))  # not an alarm frame: only the reject
    assert report.events == [] and [r.reason for r in report.rejects] == [Reason.INTERNAL_ERROR]
