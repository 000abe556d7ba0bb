"""The native v1 format: what it accepts, and the precise reason for what it rejects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.codecs import native
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
        ({"kind": "sos", "event_id": "x"}, Reason.UNKNOWN_FIELD),
        ({"kind": "sos", "ts": "yesterday"}, Reason.INVALID_TIMESTAMP),
        ({"kind": "sos", "ts": "2026-11-22T08:00:00"}, Reason.INVALID_TIMESTAMP),
        ({"kind": "sos", "msg_id": ""}, Reason.INVALID_MSG_ID),
        ({"kind": "sos", "msg_id": True}, Reason.INVALID_MSG_ID),
        ({"kind": "sos", "lat": 31.2}, Reason.INVALID_FIELD),
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
