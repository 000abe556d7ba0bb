"""The native v1 format: what it accepts, and the precise reason for what it rejects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.codecs import native
from devices.codecs.base import Message
from devices.errors import DecodeError, Reason

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DEVICE = "watch-1"


def decode(doc: object, device: str = DEVICE):  # type: ignore[no-untyped-def]
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return native.decode(raw, device, NOW)


def test_topic_routing() -> None:
    assert native.device_from_topic("carewatch/v1/devices/watch-1/up") == "watch-1"
    assert native.topic_for("a.b:c_d-9") == "carewatch/v1/devices/a.b:c_d-9/up"
    for bad in (
        "carewatch/v1/devices//up",
        "carewatch/v1/devices/a/b/up",
        "carewatch/v2/devices/a/up",
        "carewatch/v1/devices/-lead/up",
        "carewatch/v1/devices/" + "x" * 65 + "/up",
    ):
        assert native.device_from_topic(bad) is None, bad


def test_sos_without_position_or_time_is_accepted_at_receive_time() -> None:
    (event,) = decode({"kind": "sos"}).events
    assert event.kind == "sos" and event.device_id == DEVICE
    assert event.ts == NOW and event.received_at == NOW and event.source == "native"


def test_timestamps_are_normalised_to_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    local = datetime(2026, 11, 22, 16, 0, tzinfo=shanghai).isoformat()
    (a,) = decode({"kind": "heartbeat", "ts": local}).events
    (b,) = decode({"kind": "heartbeat", "ts": NOW.timestamp()}).events
    assert a.ts == b.ts == NOW and a.ts.tzinfo == UTC


def test_a_batch_keeps_its_valid_elements_when_one_is_bad() -> None:
    decoded = decode(
        [
            {"kind": "location", "lat": 31.2, "lon": 121.5},
            {"kind": "vitals", "heart_rate_bpm": 999},
            {"kind": "sos", "msg_id": "m-1"},
        ]
    )
    assert [e.kind for e in decoded.events] == ["location", "sos"]
    (reject,) = decoded.rejects
    assert (reject.reason, reject.index) == (Reason.INVALID_FIELD, 1)
    assert "heart_rate_bpm" in reject.detail


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", Reason.INVALID_JSON),
        (b"", Reason.INVALID_JSON),
        (b"\xff\xfe", Reason.INVALID_JSON),
        (b"42", Reason.NOT_AN_OBJECT),
        ({"ts": "2026-11-22T08:00:00Z"}, Reason.MISSING_KIND),
        ({"kind": "teleport"}, Reason.UNKNOWN_KIND),
        ({"kind": ["sos"]}, Reason.UNKNOWN_KIND),
        ({"kind": {"sos": 1}}, Reason.UNKNOWN_KIND),
        ({"kind": "battery"}, Reason.MISSING_FIELD),
        ({"kind": "battery", "battery_pct": 101}, Reason.INVALID_FIELD),
        ({"kind": "activity", "steps": 10**10}, Reason.INVALID_FIELD),
        (b'{"kind": "activity", "steps": 1' + b"0" * 30 + b"}", Reason.INVALID_FIELD),
        ({"kind": "battery", "battery_pct": 50, "colour": "red"}, Reason.UNKNOWN_FIELD),
        ({"kind": "heartbeat", "event_id": "x"}, Reason.UNKNOWN_FIELD),
        ({"kind": "heartbeat", "ts": "yesterday"}, Reason.INVALID_TIMESTAMP),
        ({"kind": "heartbeat", "ts": "2026-11-22T08:00:00"}, Reason.INVALID_TIMESTAMP),
        ({"kind": "heartbeat", "ts": "1999-12-31T23:59:59Z"}, Reason.INVALID_TIMESTAMP),
        ({"kind": "heartbeat", "ts": "0001-01-01T00:00:00+01:00"}, Reason.INVALID_TIMESTAMP),
        ({"kind": "heartbeat", "msg_id": ""}, Reason.INVALID_MSG_ID),
        ({"kind": "heartbeat", "msg_id": True}, Reason.INVALID_MSG_ID),
        ({"kind": "location", "lat": 31.2}, Reason.MISSING_FIELD),
        ({"kind": "sensor", "sensor": "door", "state": "a\x00b"}, Reason.INVALID_FIELD),
        ({"kind": "geofence", "transition": "leave", "zone": "h\x00me"}, Reason.INVALID_FIELD),
        (b'{"kind": "sensor", "sensor": "door", "state": "\\ud800"}', Reason.INVALID_FIELD),
        (b'{"kind": "battery", "battery_pct": 5, "\\udc00": 1}', Reason.UNKNOWN_FIELD),
        ({"kind": "battery", "battery_pct": "nan"}, Reason.INVALID_FIELD),
        ({"kind": "location", "lat": 1, "lon": 2, "altitude_m": "inf"}, Reason.INVALID_FIELD),
        ({"kind": "sos", "device_id": "someone-else"}, Reason.DEVICE_MISMATCH),
        ([{"kind": "heartbeat"}] * (native.MAX_BATCH + 1), Reason.BATCH_TOO_LARGE),
    ],
)
def test_rejections_name_their_reason(payload: object, reason: Reason) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(payload)
    assert caught.value.reason == reason
    assert caught.value.protocol == "native"


def test_redelivery_gets_the_same_event_id() -> None:
    msg = {"kind": "sos", "ts": "2026-11-22T07:59:00Z"}
    first = decode(msg).events[0]
    again = native.decode(orjson.dumps(msg), DEVICE, NOW + timedelta(minutes=5)).events[0]
    assert first.event_id == again.event_id
    other_device = decode(msg, device="watch-2").events[0]
    other_time = decode({**msg, "ts": "2026-11-22T07:59:01Z"}).events[0]
    assert len({first.event_id, other_device.event_id, other_time.event_id}) == 3


def test_msg_id_makes_the_id_independent_of_receive_time() -> None:
    # Without device time, the receive time stands in for ts; only msg_id keeps the id stable.
    msg = {"kind": "sos", "msg_id": 7}
    first = decode(msg).events[0]
    again = native.decode(orjson.dumps(msg), DEVICE, NOW + timedelta(minutes=5)).events[0]
    assert first.event_id == again.event_id
    assert decode({"kind": "sos", "msg_id": 8}).events[0].event_id != first.event_id


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_decode_error(payload: bytes) -> None:
    try:
        native.decode(payload, DEVICE, NOW)
    except DecodeError:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(
    st.dictionaries(
        st.sampled_from(["kind", "ts", "msg_id", "lat", "lon", "battery_pct", "device_id"]),
        _json | st.sampled_from(["sos", "fall", "battery", DEVICE]),
    )
)
def test_any_json_object_decodes_or_raises_decode_error(doc: dict[str, object]) -> None:
    try:
        decode(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS) if doc else b"{}")
    except DecodeError:
        pass
    except orjson.JSONEncodeError:
        pass  # hypothesis built something JSON cannot say (nan keys...): not a payload


# -- alarms are salvaged, never dropped for a side field ------------------------------------


@pytest.mark.parametrize(
    ("alarm", "flags"),
    [
        ({"kind": "sos", "lat": 1000, "lon": 121.5}, ["position"]),
        ({"kind": "sos", "lat": 31.2}, ["position"]),  # a latitude alone says nowhere
        ({"kind": "sos", "lat": 31.2, "lon": "east"}, ["position"]),
        ({"kind": "sos", "colour": "red"}, ["unknown_field:colour"]),
        (
            {"kind": "sos", "event_id": "x", "received_at": 1},
            ["unknown_field:event_id", "unknown_field:received_at"],
        ),
        ({"kind": "sos", "ts": "yesterday"}, ["ts"]),
        ({"kind": "sos", "ts": "2026-11-22T08:00:00"}, ["ts"]),  # no offset
        ({"kind": "sos", "ts": "1999-12-31T23:59:59Z"}, ["ts"]),
        ({"kind": "sos", "ts": "0001-01-01T00:00:00+01:00"}, ["ts"]),
        ({"kind": "sos", "msg_id": ""}, ["msg_id"]),
        ({"kind": "fall", "confirmed": "maybe"}, ["invalid_field:confirmed"]),
        (
            {"kind": "fall", "ts": True, "lat": 95, "lon": 0, "note": "\x00"},
            ["ts", "position", "unknown_field:note"],
        ),
    ],
)
def test_an_alarm_is_kept_without_its_bad_side_fields(
    alarm: dict[str, object], flags: list[str]
) -> None:
    decoded = decode(alarm)
    (event,) = decoded.events
    assert (event.kind, event.salvaged) == (alarm["kind"], flags)  # type: ignore[union-attr]
    assert event.lat is None or "position" not in flags  # type: ignore[union-attr]
    if "ts" in flags:
        assert event.ts == NOW  # the receive time stands in
    (record,) = decoded.rejects
    assert (record.reason, record.index) == (Reason.SALVAGED_ALARM, None)
    assert record.detail.startswith(f"{alarm['kind']} kept without: {flags[0]} (")


def test_a_salvaged_alarm_keeps_what_was_valid() -> None:
    decoded = decode({"kind": "fall", "msg_id": "m-1", "lat": 31.2, "lon": 121.5, "x": 1,
                      "confirmed": True, "ts": "2026-11-22T07:59:00Z"})  # fmt: skip
    (fall,) = decoded.events
    assert (fall.lat, fall.lon, fall.confirmed, fall.salvaged) == (  # type: ignore[union-attr]
        31.2, 121.5, True, ["unknown_field:x"])  # fmt: skip
    assert fall.ts == NOW - timedelta(minutes=1)
    assert fall.event_id == decode({"kind": "fall", "msg_id": "m-1"}).events[0].event_id


def test_a_bad_cancel_flag_leaves_a_fall_that_alerts() -> None:
    (fall,) = decode({"kind": "fall", "cancelled": "later"}).events
    assert fall.cancelled is None and fall.salvaged == ["invalid_field:cancelled"]  # type: ignore[union-attr]


def test_a_sibling_dated_year_1_is_rejected_alone_and_the_sos_goes_through() -> None:
    decoded = decode(
        [
            {"kind": "heartbeat", "ts": "0001-01-01T00:00:00+01:00"},
            {"kind": "sos", "msg_id": "m-2"},
            {"kind": "battery", "battery_pct": 50, "ts": "1970-01-01T00:00:00Z"},
        ]
    )
    assert [(e.kind, e.salvaged) for e in decoded.events] == [("sos", None)]  # type: ignore[union-attr]
    assert [(r.reason, r.index) for r in decoded.rejects] == [
        (Reason.INVALID_TIMESTAMP, 0),
        (Reason.INVALID_TIMESTAMP, 2),
    ]
    assert all("before 2000-01-01" in r.detail for r in decoded.rejects)


def test_a_lone_surrogate_costs_its_field_not_the_message() -> None:
    payload = (
        b'[{"kind": "sos", "note": "\\ud800"},'
        b' {"kind": "sensor", "sensor": "door", "state": "\\udfff"}]'
    )
    decoded = decode(payload)
    assert [(e.kind, e.salvaged) for e in decoded.events] == [("sos", ["unknown_field:note"])]  # type: ignore[union-attr]
    sensor = [r for r in decoded.rejects if r.index == 1]
    assert [r.reason for r in sensor] == [Reason.INVALID_FIELD] and "surrogate" in sensor[0].detail


def test_a_number_beyond_double_range_costs_its_field_not_the_message() -> None:
    decoded = decode(b'{"kind": "sos", "lat": 1e400, "lon": 1}')
    assert [(e.kind, e.salvaged) for e in decoded.events] == [("sos", ["position"])]  # type: ignore[union-attr]


def test_a_decoder_bug_costs_one_element_and_never_an_alarm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = native._decode_one

    def broken(item: dict[str, object], *args: object):  # type: ignore[no-untyped-def]
        if item.get("msg_id") == "bug":
            raise ZeroDivisionError("a bug")
        return real(item, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(native, "_decode_one", broken)
    decoded = decode(
        [
            {"kind": "battery", "battery_pct": 5, "msg_id": "bug"},
            {"kind": "sos", "msg_id": "bug", "lat": 31.2, "lon": 121.5},
            {"kind": "heartbeat"},
        ]
    )
    assert [(e.kind, getattr(e, "salvaged", None)) for e in decoded.events] == [
        ("sos", ["fields"]),  # bare, at the receive time: the decoder could not read it
        ("heartbeat", None),
    ]
    assert [(r.reason, r.index) for r in decoded.rejects] == [
        (Reason.INTERNAL_ERROR, 0),
        (Reason.SALVAGED_ALARM, 1),
    ]


def test_the_alarm_topic_names_its_device_and_carries_alarms_only() -> None:
    topic = native.alarm_topic_for("watch-1")
    assert topic == "carewatch/v1/devices/watch-1/alarm"
    assert native.device_from_topic(topic) == "watch-1"
    assert native.CODEC.alarm_subscriptions == ("carewatch/v1/devices/+/alarm",)
    batch = b'[{"kind": "sos"}, {"kind": "heartbeat"}, {"kind": "fall", "lat": "bad"}]'
    message = Message(batch, topic, "watch-1", datetime.now(UTC))
    decoded = native.CODEC.decode(message)
    assert [e.kind for e in decoded.events] == ["sos", "fall"]  # the fall salvaged
    refused = [r for r in decoded.rejects if r.reason == Reason.NOT_AN_ALARM]
    assert [r.index for r in refused] == [1]
    with pytest.raises(DecodeError) as err:
        native.CODEC.decode(Message(b'{"kind": "vitals"}', topic, "watch-1", datetime.now(UTC)))
    assert err.value.reason == Reason.NOT_AN_ALARM
    # The same on `up` is fine.
    up = Message(
        b'{"kind": "heartbeat"}', native.topic_for("watch-1"), "watch-1", datetime.now(UTC)
    )
    assert [e.kind for e in native.CODEC.decode(up).events] == ["heartbeat"]
