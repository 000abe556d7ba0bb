"""The OwnTracks codec: real app payloads, precise rejections, no crash on any bytes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.codecs import Decoded
from devices.codecs import owntracks as ot
from devices.errors import DecodeError, Reason
from devices.events import ALARM_KINDS, Event
from simulators.owntracks import Phone, Platform

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DEVICE = "jane:phone"


def decode(doc: object, device: str = DEVICE, at: datetime = NOW) -> Decoded:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return ot.decode(raw, device, at)


def summary(event: Event) -> dict[str, Any]:
    """What a test states about an event: everything but its id and receive time."""
    return event.model_dump(exclude={"event_id", "received_at"}, exclude_none=True)


def at(tst: int) -> datetime:
    return datetime.fromtimestamp(tst, UTC)


def expect(kind: str, tst: int, **fields: Any) -> dict[str, Any]:
    return {"device_id": DEVICE, "source": "owntracks", "kind": kind, "ts": at(tst), **fields}


# -- topics ------------------------------------------------------------------------------


def _matches(subscription: str, topic: str) -> bool:
    """MQTT filter matching, enough for `+` (these subscriptions use no `#`)."""
    want, got = subscription.split("/"), topic.split("/")
    return len(want) == len(got) and all(w in ("+", g) for w, g in zip(want, got, strict=True))


@pytest.mark.parametrize(
    "topic", ["owntracks/jane/phone", "owntracks/jane/phone/event", "owntracks/jane/phone/step"]
)
def test_the_base_topic_and_its_data_sub_topics_name_the_phone(topic: str) -> None:
    assert ot.device_from_topic(topic) == DEVICE
    assert any(_matches(s, topic) for s in ot.CODEC.subscriptions)


@pytest.mark.parametrize(
    "topic",
    [
        "owntracks/jane",
        "owntracks/jane/phone/cmd",  # commands go to the phone, not from it
        "owntracks/jane/phone/waypoint",
        "owntracks/jane/phone/info",
        "owntracks/jane/phone/event/x",
        "owntracks//phone",
        "owntracks/jane/",
        "owntracks/-jane/phone",
        "owntracks/jane/.phone",
        "owntracks/ja ne/phone",
        "owntracks/jane/ph:one",  # ':' separates user and device in the id
        "owntracks/" + "u" * 65 + "/phone",
        "OwnTracks/jane/phone",
        "carewatch/v1/devices/jane/up",
        "",
    ],
)
def test_other_topics_are_not_ours(topic: str) -> None:
    assert ot.device_from_topic(topic) is None


def test_topics_for_a_phone_are_its_base_topic_and_below() -> None:
    assert ot.topics_for("jane:phone") == ("owntracks/jane/phone", "owntracks/jane/phone/#")
    assert ot.broker_account("j.doe_2:Pixel-7") == (
        "j.doe_2",
        ("owntracks/j.doe_2/Pixel-7", "owntracks/j.doe_2/Pixel-7/#"),
    )
    assert ot.CODEC.broker_account is ot.broker_account


@pytest.mark.parametrize("device_id", ["jane", "a:b:c", ":phone", "jane:", "-j:phone"])
def test_ids_that_are_not_user_colon_device_do_not_route_back(device_id: str) -> None:
    # The registry validates an id by this round trip.
    assert ot.device_from_topic(ot.topics_for(device_id)[0]) != device_id


@pytest.mark.parametrize("device_id", ["", "a/b:c", "#:phone", "jane:+", "jane:ph\x00one"])
def test_ids_that_would_widen_an_acl_raise(device_id: str) -> None:
    with pytest.raises(ValueError):
        ot.topics_for(device_id)


# -- real payloads -----------------------------------------------------------------------

# Payloads as the apps publish them: the examples of the OwnTracks booklet
# (owntracks.org/booklet: tech/json, features/waypoints, features/pedometer, tech/http) and
# the field sets of the Android and iOS apps' own test fixtures.
ANDROID_LOCATION = {
    "_type": "location",
    "acc": 20,
    "alt": 0,
    "batt": 100,
    "bs": 0,
    "conn": "w",
    "created_at": 1610748273,
    "lat": 51.2,
    "lon": -4,
    "tid": "aa",
    "tst": 1610799026,
    "vac": 40,
    "vel": 7,
}
IOS_MOVE_MODE = {
    "_type": "location",
    "acc": 5,
    "alt": 0,
    "cog": 342,
    "conn": "w",
    "inregions": ["HIGHSPEED|2|1"],
    "inrids": ["49b4ab"],
    "lat": 37.476248,
    "lon": -122.298791,
    "m": 2,
    "t": "t",
    "tid": "S3",
    "tst": 1708789342,
    "vel": 121,
}
MANUAL_PUBLISH = {
    "_type": "location",
    "acc": 6,
    "alt": 56,
    "batt": 96,
    "conn": "w",
    "lat": 38.6873502,
    "lon": -77.4172194,
    "t": "u",
    "tid": "m1",
    "tst": 1553036588,
    "vac": 12,
    "vel": 52,
}
HTTP_MODE_MINIMAL = {
    "_type": "location",
    "lat": 48.858330,
    "lon": 2.295130,
    "tid": "JJ",
    "tst": 1455959765,
    "topic": "owntracks/jane/phone",
}
BOOKLET_TRANSITION = {
    "_type": "transition",
    "desc": "My favorite coffee shop (Delaville)",
    "event": "enter",
    "lat": 48.87069,
    "lon": 2.34916,
    "rid": "f7676c",
    "tid": "j1",
    "tst": 1707057574,
    "wtst": 1610104395,
}
ANDROID_TRANSITION = {
    "_type": "transition",
    "acc": 14.907,
    "desc": "Genitori",
    "event": "leave",
    "lat": 44.2789083,
    "lon": 11.9022358,
    "t": "l",
    "tid": "ic",
    "tst": 1546871328,
    "wtst": 1546866906,
}
BOOKLET_STEPS = {
    "_type": "steps",
    "from": 1400455130,
    "steps": 1234,
    "to": 1400458000,
    "tst": 1400455130,
}
BOOKLET_WAYPOINT = {  # sic: the booklet's waypoint example has strings for numbers
    "_type": "waypoint",
    "desc": "Paris is lovely",
    "lat": "48.858330",
    "lon": "2.295130",
    "rad": "50",
    "tst": "1385997757",
    "rid": "f7676c",
}
BOOKLET_ENCRYPTED = {
    "_type": "encrypted",
    "data": "1Vu7Owp/W4lMnh28FB+el22GsCrlnggvEcp4H8GR9iKJdi1qfwkejYpzrQ+491Mwunjg=",
}
REAL: list[dict[str, Any]] = [
    ANDROID_LOCATION,
    IOS_MOVE_MODE,
    MANUAL_PUBLISH,
    HTTP_MODE_MINIMAL,
    BOOKLET_TRANSITION,
    ANDROID_TRANSITION,
    BOOKLET_STEPS,
    BOOKLET_WAYPOINT,
    BOOKLET_ENCRYPTED,
    {"_type": "lwt", "tst": 1707057000},
]


@pytest.mark.parametrize(
    ("payload", "events"),
    [
        pytest.param(
            ANDROID_LOCATION,
            [
                expect("location", 1610799026, lat=51.2, lon=-4, accuracy_m=20, speed_kmh=7)
                | {"altitude_m": 0},
                expect("battery", 1610799026, battery_pct=100),
            ],
            id="android-location-with-battery",
        ),
        pytest.param(
            IOS_MOVE_MODE,
            [
                expect(
                    "location",
                    1708789342,
                    lat=37.476248,
                    lon=-122.298791,
                    accuracy_m=5,
                    speed_kmh=121,
                    course_deg=342,
                    altitude_m=0,
                )
            ],
            id="ios-move-mode-inregions-ignored",
        ),
        pytest.param(
            MANUAL_PUBLISH,
            [
                expect(
                    "location",
                    1553036588,
                    lat=38.6873502,
                    lon=-77.4172194,
                    accuracy_m=6,
                    speed_kmh=52,
                    altitude_m=56,
                ),
                expect("battery", 1553036588, battery_pct=96),
            ],
            id="manual-publish-is-not-an-sos",
        ),
        pytest.param(
            HTTP_MODE_MINIMAL,
            [expect("location", 1455959765, lat=48.85833, lon=2.29513)],
            id="minimal-with-own-topic",
        ),
        pytest.param(
            BOOKLET_TRANSITION,
            [
                expect(
                    "geofence",
                    1707057574,
                    transition="enter",
                    zone="My favorite coffee shop (Delaville)",
                )
            ],
            id="booklet-transition",
        ),
        pytest.param(
            ANDROID_TRANSITION,
            [expect("geofence", 1546871328, transition="leave", zone="Genitori")],
            id="android-transition",
        ),
        pytest.param(
            {**BOOKLET_TRANSITION, "desc": ""},
            [expect("geofence", 1707057574, transition="enter", zone="f7676c")],
            id="transition-named-by-region-id",
        ),
        pytest.param(
            BOOKLET_STEPS,
            [expect("activity", 1400458000, steps=1234)],
            id="booklet-steps-as-of-to",
        ),
        pytest.param(
            {"_type": "steps", "steps": 0, "tst": 1707057574},
            [expect("activity", 1707057574, steps=0)],
            id="steps-without-period",
        ),
        pytest.param({**BOOKLET_STEPS, "steps": -1}, [], id="phone-cannot-count-steps"),
        pytest.param({"_type": "lwt", "tst": 1707057000}, [], id="lwt"),
        pytest.param({"_type": "lwt"}, [], id="android-lwt-without-tst"),
        pytest.param({"_type": "lwt", "tst": "garbage"}, [], id="lwt-is-never-an-error"),
        pytest.param(BOOKLET_WAYPOINT, [], id="waypoint"),
        pytest.param({"_type": "waypoints", "waypoints": []}, [], id="waypoints"),
        pytest.param({"_type": "cmd", "action": "reportLocation"}, [], id="cmd"),
        pytest.param(
            {"_type": "card", "name": "Jane", "face": "iVBORw0K", "tid": "jj"}, [], id="card"
        ),
        pytest.param({"_type": "configuration", "mode": 0, "port": 8883}, [], id="configuration"),
        pytest.param({"_type": "beacon", "uuid": "x", "major": 1, "rssi": -60}, [], id="beacon"),
        pytest.param({"_type": "status", "iOS": {"locked": False}}, [], id="status"),
        pytest.param({"_type": "request", "request": "tours"}, [], id="request"),
        pytest.param(b"", [], id="cleared-retained-message"),
    ],
)
def test_real_payloads_become_these_events(payload: object, events: list[dict[str, Any]]) -> None:
    decoded = decode(payload)
    assert decoded.rejects == []
    assert [summary(e) for e in decoded.events] == events


def test_owntracks_has_no_alarm_even_for_a_manual_publish() -> None:
    for trigger in ("u", "p", "c", "b", "r", "t", "v"):
        kinds = {e.kind for e in decode({**MANUAL_PUBLISH, "t": trigger}).events}
        assert kinds == {"location", "battery"} and not kinds & ALARM_KINDS


def test_a_transition_published_under_its_own_topic_is_accepted() -> None:
    (event,) = decode({**BOOKLET_TRANSITION, "topic": "owntracks/jane/phone/event"}).events
    assert event.kind == "geofence"


# -- rejections --------------------------------------------------------------------------

_LOC = {"_type": "location", "lat": 48.85833, "lon": 2.29513, "tst": 1707057574}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", Reason.INVALID_JSON),
        (b"  ", Reason.INVALID_JSON),
        (b"\xff\xfe", Reason.INVALID_JSON),
        (b'{"_type":"location","lat":NaN}', Reason.INVALID_JSON),
        (b"[]", Reason.NOT_AN_OBJECT),
        (b"null", Reason.NOT_AN_OBJECT),
        (b'"location"', Reason.NOT_AN_OBJECT),
        ([_LOC], Reason.NOT_AN_OBJECT),
        ({}, Reason.MISSING_FIELD),
        ({"_type": 5}, Reason.INVALID_FIELD),
        ({"_type": "teleport"}, Reason.UNKNOWN_MESSAGE_TYPE),
        (BOOKLET_ENCRYPTED, Reason.UNKNOWN_MESSAGE_TYPE),
        ({**_LOC, "lat": None}, Reason.MISSING_FIELD),
        ({k: v for k, v in _LOC.items() if k != "lon"}, Reason.MISSING_FIELD),
        ({k: v for k, v in _LOC.items() if k != "tst"}, Reason.MISSING_FIELD),
        ({**_LOC, "lat": "48.85833"}, Reason.INVALID_FIELD),
        ({**_LOC, "lat": True}, Reason.INVALID_FIELD),
        ({**_LOC, "lat": 90.5}, Reason.INVALID_FIELD),
        ({**_LOC, "lon": -180.1}, Reason.INVALID_FIELD),
        ({**_LOC, "tst": "1707057574"}, Reason.INVALID_TIMESTAMP),
        ({**_LOC, "tst": False}, Reason.INVALID_TIMESTAMP),
        ({**_LOC, "tst": 0}, Reason.INVALID_TIMESTAMP),
        ({**_LOC, "tst": -1707057574}, Reason.INVALID_TIMESTAMP),
        ({**_LOC, "tst": 5_000_000_000}, Reason.INVALID_TIMESTAMP),
        ({**_LOC, "tst": 1e300}, Reason.INVALID_TIMESTAMP),
        ({**_LOC, "topic": "owntracks/john/phone"}, Reason.DEVICE_MISMATCH),
        ({**_LOC, "topic": "owntracks/jane/tablet/event"}, Reason.DEVICE_MISMATCH),
        ({**_LOC, "topic": "somewhere/else"}, Reason.DEVICE_MISMATCH),
        ({**_LOC, "topic": ["owntracks/jane/phone"]}, Reason.INVALID_FIELD),
        ({**BOOKLET_TRANSITION, "event": "dwell"}, Reason.INVALID_FIELD),
        ({**BOOKLET_TRANSITION, "event": None}, Reason.MISSING_FIELD),
        ({**BOOKLET_TRANSITION, "desc": None, "rid": None}, Reason.MISSING_FIELD),
        ({**BOOKLET_TRANSITION, "desc": 7}, Reason.INVALID_FIELD),
        ({**BOOKLET_TRANSITION, "desc": "x" * 129}, Reason.INVALID_FIELD),
        ({**BOOKLET_TRANSITION, "tst": None}, Reason.MISSING_FIELD),
        ({**BOOKLET_TRANSITION, "topic": "owntracks/john/phone/event"}, Reason.DEVICE_MISMATCH),
        ({"_type": "steps", "tst": 1707057574}, Reason.MISSING_FIELD),
        ({**BOOKLET_STEPS, "steps": -5}, Reason.INVALID_FIELD),
        ({**BOOKLET_STEPS, "steps": 12.5}, Reason.INVALID_FIELD),
        ({**BOOKLET_STEPS, "steps": "1234"}, Reason.INVALID_FIELD),
        ({**BOOKLET_STEPS, "to": "tonight"}, Reason.INVALID_TIMESTAMP),
        ({"_type": "steps", "steps": 10}, Reason.MISSING_FIELD),
    ],
)
def test_rejections_name_their_reason(payload: object, reason: Reason) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(payload)
    assert caught.value.reason == reason
    assert caught.value.protocol == "owntracks"


def test_milliseconds_are_named_as_the_likely_mistake() -> None:
    with pytest.raises(DecodeError) as caught:
        decode({**_LOC, "tst": 1707057574000})
    assert caught.value.reason == Reason.INVALID_TIMESTAMP
    assert "milliseconds" in caught.value.detail


def test_encryption_is_rejected_with_what_to_do() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(BOOKLET_ENCRYPTED)
    assert "encryption" in caught.value.detail and "TLS" in caught.value.detail


def test_a_bad_optional_field_is_left_out_and_the_position_kept() -> None:
    decoded = decode({**_LOC, "acc": -1, "vel": "fast", "cog": 361, "alt": -12, "batt": 101})
    assert [summary(e) for e in decoded.events] == [
        expect("location", 1707057574, lat=48.85833, lon=2.29513, altitude_m=-12)
    ]
    assert {r.reason for r in decoded.rejects} == {Reason.INVALID_FIELD}
    named = sorted(r.detail.split(":")[0] for r in decoded.rejects)
    assert named == ["acc", "batt", "cog", "vel"]
    assert all("left out" in r.detail for r in decoded.rejects)


def test_null_optional_fields_count_as_absent() -> None:
    decoded = decode({**_LOC, "acc": None, "vel": None, "batt": None})
    assert decoded.rejects == [] and [e.kind for e in decoded.events] == ["location"]


# -- identity ----------------------------------------------------------------------------


def test_a_redelivered_or_retained_message_keeps_its_event_ids() -> None:
    first = decode(ANDROID_LOCATION).events
    later = decode(ANDROID_LOCATION, at=NOW + timedelta(hours=1)).events
    # Same content in another key order (another serializer, a bridge): still the same.
    reordered = bytes(orjson.dumps(dict(reversed(list(ANDROID_LOCATION.items())))))
    again = decode(reordered).events
    assert [e.event_id for e in first] == [e.event_id for e in later] == [e.event_id for e in again]


def test_another_fix_or_another_phone_gets_other_ids() -> None:
    base = decode(ANDROID_LOCATION).events[0].event_id
    moved = decode({**ANDROID_LOCATION, "tst": 1610799027}).events[0].event_id
    other = decode(ANDROID_LOCATION, device="jane:tablet").events[0].event_id
    assert len({base, moved, other}) == 3


# -- nothing but DecodeError escapes --------------------------------------------------------


def _decode_or_decode_error(payload: bytes) -> None:
    try:
        decoded = ot.decode(payload, DEVICE, NOW)
    except DecodeError as err:
        assert err.protocol == "owntracks" and isinstance(err.reason, Reason)
        return
    assert all(isinstance(r, DecodeError) for r in decoded.rejects)
    assert all(e.device_id == DEVICE and e.source == "owntracks" for e in decoded.events)


@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_decode_error(payload: bytes) -> None:
    _decode_or_decode_error(payload)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_KEYS = sorted({key for doc in REAL for key in doc} | {"topic", "_id", "steps", "from", "to"})
_VALUES = _json | st.sampled_from(
    [
        "location",
        "transition",
        "steps",
        "enter",
        "leave",
        "owntracks/jane/phone",
        1707057574,
        1707057574000,
        -1,
        360.5,
        "x" * 200,
    ]
)


@given(
    st.sampled_from(REAL),
    st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=4),
    st.sets(st.sampled_from(_KEYS), max_size=3),
)
def test_mutated_real_payloads_decode_or_raise_decode_error(
    real: dict[str, Any], changes: dict[str, Any], dropped: set[str]
) -> None:
    doc = {k: v for k, v in {**real, **changes}.items() if k not in dropped}
    _decode_or_decode_error(orjson.dumps(doc))


@given(st.sampled_from(REAL), st.data())
def test_corrupted_real_bytes_decode_or_raise_decode_error(
    real: dict[str, Any], data: st.DataObject
) -> None:
    raw = bytearray(orjson.dumps(real))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            raw[i] = data.draw(st.integers(0, 255))
        elif action == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=3))
        elif len(raw) > 1:
            del raw[i]
    _decode_or_decode_error(bytes(raw))


# -- round trips through the simulator's encoder ------------------------------------------


def _phone(platform: Platform = "android", seed: int = 1) -> Phone:
    return Phone("jane", "phone", platform=platform, rng=random.Random(seed))


def _round_trip(topic: str, payload: bytes) -> tuple[dict[str, Any], Decoded]:
    device = ot.device_from_topic(topic)
    assert device == DEVICE
    return orjson.loads(payload), ot.decode(payload, device, NOW)


def test_android_location_round_trip() -> None:
    topic, payload = _phone().location(lat=31.2304, lon=121.4737, tst=1763798400, acc=12.6, batt=64)
    doc, decoded = _round_trip(topic, payload)
    assert topic == "owntracks/jane/phone"
    assert doc["acc"] == 13 and doc["vel"] == 0 and len(doc["_id"]) == 8 and doc["tid"] == "ne"
    assert [summary(e) for e in decoded.events] == [
        expect("location", 1763798400, lat=31.2304, lon=121.4737, accuracy_m=13)
        | {"speed_kmh": 0, "altitude_m": 0},
        expect("battery", 1763798400, battery_pct=64),
    ]


def test_ios_location_round_trip_leaves_unknowns_out() -> None:
    phone = _phone("ios")
    topic, payload = phone.location(
        lat=31.23041234, lon=121.4737, tst=1763798400, acc=8, alt=-3.4, vel=-1, cog=90.4
    )
    doc, decoded = _round_trip(topic, payload)
    assert "vel" not in doc and "_id" not in doc and doc["lat"] == 31.230412
    (event,) = decoded.events
    assert summary(event) == expect(
        "location", 1763798400, lat=31.230412, lon=121.4737, accuracy_m=8, altitude_m=-3
    ) | {"course_deg": 90}


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_transition_round_trip(platform: Platform) -> None:
    topic, payload = _phone(platform).transition(
        event="leave", desc="Home", tst=1763798400, wtst=1700000000, lat=31.2, lon=121.5, acc=9.5
    )
    assert topic == "owntracks/jane/phone/event"
    _, decoded = _round_trip(topic, payload)
    assert [summary(e) for e in decoded.events] == [
        expect("geofence", 1763798400, transition="leave", zone="Home")
    ]


def test_steps_round_trip() -> None:
    topic, payload = _phone("ios").steps(
        count=4321, tst=1763798400, start=1763740800, end=1763798390
    )
    assert topic == "owntracks/jane/phone/step"
    _, decoded = _round_trip(topic, payload)
    assert [summary(e) for e in decoded.events] == [expect("activity", 1763798390, steps=4321)]
    _, none = _round_trip(*_phone("ios").steps(count=-1, tst=1763798400, start=0, end=1763798400))
    assert none.events == [] and none.rejects == []


def test_the_will_decodes_to_nothing() -> None:
    _, decoded = _round_trip(*_phone().will(tst=1763798400))
    assert decoded.events == [] and decoded.rejects == []


def test_the_encoder_refuses_what_the_app_cannot_do() -> None:
    with pytest.raises(ValueError):
        _phone().steps(count=1, tst=1763798400, start=0, end=1)
    with pytest.raises(ValueError):
        Phone("jane doe", "phone")


def test_a_seeded_phone_publishes_the_same_bytes() -> None:
    fix = {"lat": 31.2, "lon": 121.5, "tst": 1763798400}
    assert _phone(seed=7).location(**fix) == _phone(seed=7).location(**fix)


@given(
    platform=st.sampled_from(["android", "ios"]),
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    tst=st.integers(946_684_800, 4_102_444_799),
    acc=st.none() | st.floats(0, 5000),
    alt=st.none() | st.floats(-500, 9000),
    vel=st.none() | st.floats(-1, 300),
    cog=st.none() | st.floats(-1, 359.4),
    batt=st.none() | st.integers(0, 100),
)
def test_any_fix_round_trips(platform: Platform, tst: int, batt: int | None, **fix: Any) -> None:
    topic, payload = _phone(platform).location(tst=tst, batt=batt, **fix)
    doc, decoded = _round_trip(topic, payload)
    assert decoded.rejects == []
    names = {"acc": "accuracy_m", "vel": "speed_kmh", "cog": "course_deg", "alt": "altitude_m"}
    extras = {name: doc[key] for key, name in names.items() if key in doc}
    location = expect("location", tst, lat=doc["lat"], lon=doc["lon"], **extras)
    battery = [] if batt is None else [expect("battery", tst, battery_pct=batt)]
    assert [summary(e) for e in decoded.events] == [location, *battery]
