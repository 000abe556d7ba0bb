"""Every codec against hostile values: times from year 1 to 9999 with and without offsets,
NULs and lone surrogates in strings, huge, NaN and infinite numbers, missing and extra
fields, arrays mixing good and bad elements. Properties:

- decoding raises nothing but DecodeError;
- an sos/fall message with any damage to its side fields still yields exactly one sos/fall
  event (flagged `salvaged`, with a `salvaged_alarm` record saying what was dropped);
- every event serialises to JSON that PostgreSQL stores (no NUL, no lone surrogate) with
  `ts` not before 2000, and that the workers read back.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.codecs import Decoded, Message, chirpstack, native, owntracks, ttn, watch
from devices.codecs.watch_frames import build_frame
from devices.errors import DecodeError, Reason
from devices.events import ALARM_KINDS, EARLIEST, Event, event_from_json, event_to_json
from simulators import lorawan as sim

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DEVICE = "watch-1"
WATCH = "8800000015"
EUI = "24e124136b316000"

# -- hostile values --------------------------------------------------------------------------

_TEXT = st.text(
    st.sampled_from(["a", "Z", "0", " ", "é", "中", "\x00", "\ud800", "\udfff", "\n", "\u2028"]),
    max_size=8,
) | st.text(max_size=8)
_NUMBER = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**70), 2**70)
    | st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e400", 1e308, -0.0, 2**64])
)
_WHEN = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))
_OFFSET = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_TIME = st.one_of(
    _WHEN.map(datetime.isoformat),  # no offset
    st.builds(lambda w, tz: w.replace(tzinfo=tz).isoformat(), _WHEN, _OFFSET),
    st.sampled_from(
        [
            *"yesterday 0001-01-01T00:00:00+01:00 9999-12-31T23:59:59-01:00".split(),
            *"1999-12-31T23:59:59Z 1970-01-01T00:00:00Z 2026-11-22T08:00:00Z".split(),
            "2026-11-22T08:00:00",  # no offset
            "",
        ]
    ),
    _NUMBER,
    st.booleans(),
)
_VALUE = st.recursive(
    st.none() | st.booleans() | _NUMBER | _TEXT | _TIME,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_TEXT, inner, max_size=2),
    max_leaves=4,
)


def _json(doc: Any) -> bytes:
    """JSON as a device may send it: NULs and lone surrogates escaped (`\\u0000`, `\\ud800`),
    which is valid JSON; orjson cannot write the surrogates."""
    return json.dumps(doc, ensure_ascii=True, allow_nan=False).encode()


# -- what every decoded result must satisfy -----------------------------------------------


def _check(decoded: Decoded, source: str) -> None:
    assert all(isinstance(r, DecodeError) and isinstance(r.reason, Reason) for r in decoded.rejects)
    # The safety nets (a codec bug caught per element) never have to catch anything.
    assert Reason.INTERNAL_ERROR not in {r.reason for r in decoded.rejects}
    assert all("fields" not in (getattr(e, "salvaged", None) or []) for e in decoded.events)
    for reject in decoded.rejects:
        reject.detail.encode("utf-8")  # a DLQ record can carry it
    for event in decoded.events:
        _storable(event)
        assert event.source == source


def _storable(event: Event) -> None:
    """What PostgreSQL's jsonb and timestamptz take, and what a worker reads back."""
    wire = event_to_json(event)
    assert b"\\u0000" not in wire
    for text in _strings(json.loads(wire)):
        text.encode("utf-8")  # no lone surrogate
    assert event.ts >= EARLIEST and event.received_at >= EARLIEST
    assert event_from_json(wire) == event


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(s for v in value.values() for s in _strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _decode(call: Any) -> Decoded | None:
    try:
        return call()  # type: ignore[no-any-return]
    except DecodeError:
        return None


def _alarms(decoded: Decoded | None) -> list[Event]:
    return [e for e in (decoded.events if decoded else []) if e.kind in ALARM_KINDS]


# -- native ------------------------------------------------------------------------------

_SIDE = {
    "ts": _TIME,
    "lat": _NUMBER | _VALUE,
    "lon": _NUMBER | _VALUE,
    "msg_id": _VALUE,
    "confirmed": _VALUE,
    "cancelled": _VALUE,
    "event_id": _VALUE,
    "received_at": _VALUE,
    "salvaged": _VALUE,
    "device_id": st.just(DEVICE),
}
_ALARM = st.builds(
    lambda kind, side, extra: {**extra, **side, "kind": kind},
    st.sampled_from(sorted(ALARM_KINDS)),
    st.fixed_dictionaries({}, optional=_SIDE),
    st.dictionaries(_TEXT, _VALUE, max_size=3),
)
_OTHER = st.one_of(
    st.builds(
        lambda kind, fields: {**fields, "kind": kind},
        st.sampled_from(
            "location vitals activity battery heartbeat geofence sensor worn teleport".split()
        ),
        st.dictionaries(
            st.sampled_from(
                "ts lat lon steps motion battery_pct zone transition sensor state worn "
                "heart_rate_bpm msg_id device_id".split()
            )
            | _TEXT,
            _VALUE,
            max_size=4,
        ),
    ),
    _VALUE,
)


@settings(max_examples=150)
@given(_ALARM)
def test_native_an_alarm_survives_any_damage_to_its_side_fields(alarm: dict[str, Any]) -> None:
    decoded = native.decode(_json(alarm), DEVICE, NOW)
    _check(decoded, "native")
    (event,) = decoded.events
    assert event.kind == alarm["kind"]
    salvaged = [r for r in decoded.rejects if r.reason == Reason.SALVAGED_ALARM]
    assert len(salvaged) == (1 if event.salvaged else 0) and len(decoded.rejects) == len(salvaged)


@settings(max_examples=100)
@given(st.lists(st.one_of(_ALARM, _OTHER), max_size=6))
def test_native_each_element_of_an_array_stands_alone(items: list[Any]) -> None:
    decoded = native.decode(_json(items), DEVICE, NOW)
    _check(decoded, "native")
    wanted = [item["kind"] for item in items if isinstance(item, dict) and _is_alarm(item)]
    assert [e.kind for e in _alarms(decoded)] == wanted
    kept = len(decoded.events) + len([r for r in decoded.rejects if r.reason != "salvaged_alarm"])
    assert kept == len(items)  # each element: an event or a reject, never more, never lost
    assert all(r.index is not None for r in decoded.rejects)


def _is_alarm(item: dict[str, Any]) -> bool:
    return item.get("kind") in ALARM_KINDS


@given(_VALUE)
def test_native_any_json_document_decodes_or_raises_decode_error(doc: Any) -> None:
    decoded = _decode(lambda: native.decode(_json(doc), DEVICE, NOW))
    if decoded is not None:
        _check(decoded, "native")


# -- watch -------------------------------------------------------------------------------

_FIELD = st.text(st.sampled_from("0123456789AVNSEW.-+ x\x00\xff"), max_size=12)
_DATE = st.one_of(_FIELD, st.integers(0, 999999).map("{:06d}".format))
_ZONE = st.sampled_from([None, "Asia/Shanghai", "America/Los_Angeles", "Pacific/Kiritimati"])
_STATUS = st.sampled_from([0x10000, 0x200000, 0x400000, 0x210000])  # sos, fall, fall, both


@settings(max_examples=150)
@given(
    st.sampled_from(["AL", "AL_LTE", "ALCUSTOMER1", "UD"]),
    st.lists(_FIELD, min_size=13, max_size=13),
    st.tuples(_DATE, _DATE),
    _STATUS,
    _ZONE,
)
def test_watch_an_alarm_survives_any_damage_to_its_report(
    kind: str, fields: list[str], when: tuple[str, str], status: int, zone: str | None
) -> None:
    body = ",".join([*when, *fields, f"{status:08X}", "1,1,460,0,9360,4082,131"])
    frame = build_frame("3G", WATCH, f"{kind},{body}".encode("latin-1"))
    message = Message(frame, watch.topic_for(WATCH), WATCH, NOW, None, zone)
    decoded = watch.CODEC.decode(message)
    _check(decoded, "watch")
    kinds = [e.kind for e in _alarms(decoded)]
    assert kinds.count("sos") == (1 if status & 0x10000 else 0)
    assert kinds.count("fall") == (1 if status & 0x600000 else 0)


@given(st.binary(max_size=200), _ZONE)
def test_watch_any_content_decodes_or_raises_decode_error(content: bytes, zone: str | None) -> None:
    message = Message(build_frame("3G", WATCH, content), "t", WATCH, NOW, None, zone)
    decoded = _decode(lambda: watch.CODEC.decode(message))
    if decoded is not None:
        _check(decoded, "watch")


# -- OwnTracks (no alarms: nothing but DecodeError, and storable events) -------------------


@given(
    st.sampled_from(["location", "transition", "steps"]),
    st.dictionaries(
        st.sampled_from(
            "tst lat lon acc vel cog alt batt event desc rid steps from to topic".split()
        ),
        _VALUE | st.sampled_from([1795306530, 31.2, "enter", "leave"]),
        max_size=8,
    ),
)
def test_owntracks_hostile_values_decode_or_raise_decode_error(
    kind: str, fields: dict[str, Any]
) -> None:
    doc = {"tst": 1795306530, "lat": 31.2, "lon": 121.5, **fields, "_type": kind}
    decoded = _decode(lambda: owntracks.decode(_json(doc), "jane:phone", NOW))
    if decoded is not None:
        _check(decoded, "owntracks")


def test_owntracks_a_region_name_with_a_nul_is_refused() -> None:
    doc = {"_type": "transition", "tst": 1795306530, "event": "leave", "desc": "h\x00me"}
    with pytest.raises(DecodeError) as caught:
        owntracks.decode(_json(doc), "jane:phone", NOW)
    assert caught.value.reason == Reason.INVALID_FIELD and "NUL" in caught.value.detail


# -- LoRaWAN: The Things Stack and ChirpStack around a Milesight payload -----------------

_PRESS = sim.ws101_press()
_FALL = sim.vs373_alarm("fall")


def _envelope(server: str, payload: bytes, time: Any) -> tuple[str, dict[str, Any]]:
    data = base64.b64encode(payload).decode()
    if server == "ttn":
        topic = ttn.topic_for("device-7", "app1")
        return topic, {
            "end_device_ids": {"device_id": "device-7"},
            "uplink_message": {"f_cnt": 7, "frm_payload": data, "received_at": time},
        }
    topic = chirpstack.topic_for(EUI, "6f3f3d36-0000-4000-8000-000000000000")
    return topic, {"deviceInfo": {"devEui": EUI}, "fCnt": 7, "data": data, "time": time}


@settings(max_examples=150)
@given(
    st.sampled_from(["ttn", "chirpstack"]),
    st.sampled_from([("ws101", _PRESS, "sos"), ("vs373", _FALL, "fall")]),
    _TIME | _VALUE,
    st.dictionaries(_TEXT, _VALUE, max_size=2),
)
def test_lorawan_an_alarm_survives_any_network_time(
    server: str, device: tuple[str, bytes, str], time: Any, extra: dict[str, Any]
) -> None:
    model, payload, kind = device
    topic, doc = _envelope(server, payload, time)
    codec = ttn.CODEC if server == "ttn" else chirpstack.CODEC
    device_id = codec.device_from_topic(topic)
    assert device_id is not None
    raw = _json({**extra, **doc})  # extra keys: what a network server adds, or a formatter
    decoded = codec.decode(Message(raw, topic, device_id, NOW, model))
    _check(decoded, server)
    assert [e.kind for e in _alarms(decoded)] == [kind]


def test_lorawan_a_formatters_lone_surrogate_does_not_cost_the_press() -> None:
    topic, doc = _envelope("ttn", _PRESS, "2026-11-22T07:59:58Z")
    doc["uplink_message"]["decoded_payload"] = {"note": "\ud800"}
    decoded = ttn.CODEC.decode(Message(_json(doc), topic, "device-7", NOW, "ws101"))
    assert [(e.kind, e.salvaged) for e in decoded.events] == [("sos", None)]
