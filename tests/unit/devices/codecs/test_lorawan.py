"""The Things Stack v3 and ChirpStack v4 codecs: their documented envelopes, the reason for
every rejection, identity across redeliveries and rejoins, round trips through
simulators/lorawan.py, and fuzzing that only ever meets DecodeError."""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.codecs import Codec, Decoded, Message, chirpstack, lorawan, ttn
from devices.errors import DecodeError, Reason
from devices.events import Event
from simulators import lorawan as sim

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
HEARD = NOW - timedelta(seconds=2)
EUI = "24e124136b316000"
CODECS = {"ttn": ttn.CODEC, "chirpstack": chirpstack.CODEC}


def _decode(codec: Codec, topic: str, raw: bytes, *, model: str | None = None) -> Decoded:
    device_id = codec.device_from_topic(topic)
    assert device_id is not None, topic
    return codec.decode(Message(raw, topic, device_id, NOW, model))


def _shape(events: list[Event]) -> list[tuple[str, dict[str, Any]]]:
    """Kind and kind fields of each event, without what every event has."""
    common = {"event_id", "device_id", "kind", "ts", "received_at", "source", "device_ts"}
    return [
        (e.kind, {k: v for k, v in e.model_dump(exclude_none=True).items() if k not in common})
        for e in events
    ]


def _b64(hex_payload: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_payload)).decode()


# -- topics ------------------------------------------------------------------------------


def test_ttn_topics() -> None:
    assert ttn.device_from_topic("v3/care-home@ttn/devices/button-1/up") == "button-1"
    assert ttn.device_from_topic("v3/care-home/devices/button-1/up") == "button-1"
    assert ttn.topic_for("b-1", "app", "tenant") == "v3/app@tenant/devices/b-1/up"
    assert ttn.topic_for("b-1", "app") == "v3/app/devices/b-1/up"
    for bad in (
        "v3/app@ttn/devices/button-1/join",
        "v3/app@ttn/devices/Button-1/up",
        "v3/app@ttn/devices/-b1/up",
        "v3/app@ttn/devices/b--1/up",
        "v3/app@ttn/devices/" + "a" * 37 + "/up",
        "v3/app@ttn/devices//up",
        "v3/app@ttn/devices/button-1/up/extra",
        "v2/app/devices/button-1/up",
    ):
        assert ttn.device_from_topic(bad) is None, bad
    assert ttn.CODEC.subscriptions == ("v3/+/devices/+/up",)


def test_chirpstack_topics() -> None:
    app = "17c82e96-be03-4f38-aef3-f83d48582d97"
    topic = f"application/{app}/device/24E124136B316000/event/up"
    assert chirpstack.device_from_topic(topic) == EUI  # lower case, whatever was published
    assert chirpstack.topic_for("24E124136B316000", app).endswith(f"/device/{EUI}/event/up")
    for bad in (
        f"application/{app}/device/{EUI}/event/join",
        f"application/{app}/device/{EUI[:-1]}/event/up",
        f"application/{app}/device/{EUI}0/event/up",
        f"application/{app}/device/24e124136b31600g/event/up",
        f"application//device/{EUI}/event/up",
    ):
        assert chirpstack.device_from_topic(bad) is None, bad
    assert chirpstack.CODEC.subscriptions == ("application/+/device/+/event/up",)


# -- the network servers' documented envelopes ---------------------------------------------

# The Things Stack docs, "Data Formats", uplink message example (v3.34+, with version_ids).
TTN_DOC: dict[str, Any] = {
    "end_device_ids": {
        "device_id": "dev1",
        "application_ids": {"application_id": "app1"},
        "dev_eui": "0004A30B001C0530",
        "join_eui": "800000000000000C",
        "dev_addr": "00BCB929",
    },
    "correlation_ids": ["as:up:01E0WZGT6Y7657CPFPE5WEYDSQ", "gs:conn:01E0WDEC6T5T4XXBAX7S1VMFKE"],
    "received_at": "2020-02-12T15:15:46.014773143Z",
    "uplink_message": {
        "session_key_id": "AXA50tHUGUucuzS/bCGMNw==",
        "f_cnt": 1,
        "frm_payload": "gkHe",
        "decoded_payload": {"temperature": 1.0, "luminosity": 0.64},
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "gtw1", "eui": "9C5C8E00001A05C4"},
                "time": "2020-02-12T15:15:45.787Z",
                "rssi": -35,
                "snr": 5,
            }
        ],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}},
        "consumed_airtime": "0.056576s",
        "version_ids": {
            "brand_id": "the-things-products",
            "model_id": "the-things-uno",
            "hardware_version": "1.0",
            "firmware_version": "quickstart",
            "band_id": "US_902_928",
        },
        "network_ids": {"net_id": "000013", "tenant_id": "tenant1", "cluster_id": "nam1"},
        "received_at": "2020-02-12T15:15:45.789585559Z",
    },
}
TTN_DOC_TOPIC = "v3/app1@tenant1/devices/dev1/up"
TTN_HEARD = datetime(2020, 2, 12, 15, 15, 45, 789585, tzinfo=UTC)

# ChirpStack v4 docs, "Event types", `up` example.
CHIRPSTACK_DOC: dict[str, Any] = {
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2022-07-18T09:34:15.775023242+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "ChirpStack",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "Test application",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "Test device-profile",
        "deviceName": "Test device",
        "devEui": "0101010101010101",
        "tags": {"key": "value"},
    },
    "devAddr": "00189440",
    "dr": 1,
    "fPort": 1,
    "data": "qg==",
    "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "rssi": -36}],
    "txInfo": {"frequency": 867100000},
}
CHIRPSTACK_DOC_TOPIC = (
    "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up"
)
CHIRPSTACK_HEARD = datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=UTC)


def _with(doc: dict[str, Any], path: str | tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of `doc` with `path` (dotted, or the keys) set to `value` (removed, for `...`)."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".") if isinstance(path, str) else path
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return out


def _ttn(doc: dict[str, Any], *, model: str | None = None) -> Decoded:
    return _decode(ttn.CODEC, TTN_DOC_TOPIC, orjson.dumps(doc), model=model)


def _chirpstack(doc: dict[str, Any], *, model: str | None = None) -> Decoded:
    return _decode(chirpstack.CODEC, CHIRPSTACK_DOC_TOPIC, orjson.dumps(doc), model=model)


def test_ttn_documented_uplink_of_a_device_we_do_not_decode() -> None:
    with pytest.raises(DecodeError) as caught:
        _ttn(TTN_DOC)
    assert (caught.value.reason, caught.value.protocol) == (Reason.UNKNOWN_MODEL, "ttn")
    assert "the-things-uno" in caught.value.detail


def test_ttn_documented_uplink_decoded_from_the_bytes_not_the_formatter() -> None:
    # A WS101's documented payload in the documented envelope: decoded_payload says
    # temperature and luminosity, the bytes say battery and a press. The bytes win.
    doc = _with(TTN_DOC, "uplink_message.frm_payload", _b64("017510ff2e01"))
    doc = _with(doc, "uplink_message.version_ids.model_id", "ws101")
    decoded = _ttn(doc)
    assert decoded.rejects == []
    assert _shape(decoded.events) == [("battery", {"battery_pct": 16.0}), ("sos", {})]
    for event in decoded.events:
        assert (event.device_id, event.source) == ("dev1", "ttn")
        assert event.ts == TTN_HEARD and event.received_at == NOW


def test_chirpstack_documented_uplink() -> None:
    with pytest.raises(DecodeError) as caught:
        _chirpstack(CHIRPSTACK_DOC)  # "Test device-profile", no model tag
    assert (caught.value.reason, caught.value.protocol) == (Reason.UNKNOWN_MODEL, "chirpstack")
    # Told it is a WS301, its one byte (aa) is not a whole channel.
    with pytest.raises(DecodeError) as caught:
        _chirpstack(_with(CHIRPSTACK_DOC, "deviceInfo.tags.model", "WS301"))
    assert caught.value.reason == Reason.TRUNCATED
    doc = _with(CHIRPSTACK_DOC, "data", _b64("017564030001"))
    decoded = _chirpstack(_with(doc, "deviceInfo.tags.model", "WS301"))
    assert _shape(decoded.events) == [
        ("battery", {"battery_pct": 100.0}),
        ("sensor", {"sensor": "door", "state": "open"}),
    ]
    assert {(e.device_id, e.ts, e.source) for e in decoded.events} == {
        ("0101010101010101", CHIRPSTACK_HEARD, "chirpstack")
    }


def test_the_deployer_docs_examples_decode_as_documented() -> None:
    text = (Path(__file__).parents[4] / "docs/formats/lorawan.md").read_text()
    press, _, fall = re.findall(r"```json\n(.*?)```", text, re.S)[:3]
    topic = "v3/care-home@ttn/devices/room12-button/up"
    assert _shape(_decode(ttn.CODEC, topic, press.encode()).events) == [("sos", {})]
    topic = chirpstack.topic_for(EUI, "17c82e96-be03-4f38-aef3-f83d48582d97")
    (event,) = _decode(chirpstack.CODEC, topic, fall.encode()).events
    assert (event.kind, event.ts) == ("fall", datetime(2026, 11, 22, 8, 0, tzinfo=UTC))


# -- rejections --------------------------------------------------------------------------

# The documented envelopes around a WS101 press, each valid as it stands.
TTN_PRESS = _with(
    _with(TTN_DOC, "uplink_message.frm_payload", _b64("ff2e01")),
    "uplink_message.version_ids.model_id",
    "ws101",
)
CHIRPSTACK_PRESS = _with(
    _with(CHIRPSTACK_DOC, "data", _b64("ff2e01")), "deviceInfo.tags.model", "ws101"
)
FRAMES: list[tuple[Any, Reason]] = [
    (_b64("00" * 243), Reason.INVALID_FIELD),  # longer than any LoRaWAN frame
    (_b64("0175"), Reason.TRUNCATED),
    (_b64("9999"), Reason.UNKNOWN_MESSAGE_TYPE),
    ("not base64!", Reason.INVALID_ENCODING),
    ("AXUQ/y4", Reason.INVALID_ENCODING),  # padding missing
    ("\u20ac\u20ac\u20ac\u20ac", Reason.INVALID_ENCODING),
    (17, Reason.INVALID_FIELD),
]
TTN_REJECTS: list[tuple[str, Any, Reason]] = [
    ("end_device_ids", ..., Reason.MISSING_FIELD),
    ("end_device_ids.device_id", ..., Reason.MISSING_FIELD),
    ("end_device_ids.device_id", "dev2", Reason.DEVICE_MISMATCH),
    ("end_device_ids.device_id", 7, Reason.INVALID_FIELD),
    ("end_device_ids.application_ids.application_id", "app2", Reason.DEVICE_MISMATCH),
    ("uplink_message", ..., Reason.MISSING_PAYLOAD),
    ("uplink_message", [], Reason.INVALID_FIELD),
    *(("uplink_message.frm_payload", frame, reason) for frame, reason in FRAMES),
    ("uplink_message.f_cnt", -1, Reason.INVALID_FIELD),
    ("uplink_message.f_cnt", "7", Reason.INVALID_FIELD),
    ("uplink_message.f_cnt", True, Reason.INVALID_FIELD),
    ("uplink_message.f_cnt", 2**32, Reason.INVALID_FIELD),
    ("uplink_message.f_port", 256, Reason.INVALID_FIELD),
    ("uplink_message.version_ids.model_id", "em300-th", Reason.UNKNOWN_MODEL),
    ("uplink_message.version_ids", ..., Reason.UNKNOWN_MODEL),
]
CHIRPSTACK_REJECTS: list[tuple[str, Any, Reason]] = [
    ("deviceInfo", ..., Reason.MISSING_FIELD),
    ("deviceInfo.devEui", ..., Reason.MISSING_FIELD),
    ("deviceInfo.devEui", "0101010101010102", Reason.DEVICE_MISMATCH),
    ("deviceInfo.applicationId", "6f3f3d36-0000-4000-8000-000000000000", Reason.DEVICE_MISMATCH),
    ("joinServerContext", {"sessionKeyId": "AQID"}, Reason.MISSING_PAYLOAD),
    *(("data", frame, reason) for frame, reason in FRAMES),
    ("fCnt", -1, Reason.INVALID_FIELD),
    ("fPort", 1.5, Reason.INVALID_FIELD),
    # An explicit model tag wins over a profile name, even one naming a model we decode.
    ("deviceInfo.tags.model", "em300-th", Reason.UNKNOWN_MODEL),
    ("deviceInfo.tags.model", 101, Reason.INVALID_FIELD),
]


@pytest.mark.parametrize(("path", "value", "reason"), TTN_REJECTS)
def test_ttn_rejections_name_their_reason(path: str, value: Any, reason: Reason) -> None:
    with pytest.raises(DecodeError) as caught:
        _ttn(_with(TTN_PRESS, path, value))
    assert (caught.value.reason, caught.value.protocol) == (reason, "ttn")


@pytest.mark.parametrize(("path", "value", "reason"), CHIRPSTACK_REJECTS)
def test_chirpstack_rejections_name_their_reason(path: str, value: Any, reason: Reason) -> None:
    doc = _with(_with(CHIRPSTACK_PRESS, "deviceInfo.deviceProfileName", "WS101"), path, value)
    with pytest.raises(DecodeError) as caught:
        _chirpstack(doc)
    assert (caught.value.reason, caught.value.protocol) == (reason, "chirpstack")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", Reason.INVALID_JSON),
        (b"", Reason.INVALID_JSON),
        (b"[]", Reason.NOT_AN_OBJECT),
    ],
)
@pytest.mark.parametrize("server", sorted(CODECS))
def test_what_is_not_a_json_object(server: str, raw: bytes, reason: Reason) -> None:
    topic = TTN_DOC_TOPIC if server == "ttn" else CHIRPSTACK_DOC_TOPIC
    with pytest.raises(DecodeError) as caught:
        _decode(CODECS[server], topic, raw)
    assert (caught.value.reason, caught.value.protocol) == (reason, server)


BAD_TIMES = ["yesterday", "2020-02-12T15:15:45", 1581520545, "0001-01-01T00:00:00+01:00",
             "1999-12-31T23:59:59Z"]  # fmt: skip
PRESS_AND_BATTERY = _b64("0175" + "55" + "ff2e01")  # battery 85 %, then a press


@pytest.mark.parametrize("value", BAD_TIMES)
@pytest.mark.parametrize("server", sorted(CODECS))
def test_a_broken_network_time_costs_the_readings_never_the_alarm(server: str, value: Any) -> None:
    if server == "ttn":
        doc = _with(TTN_PRESS, "uplink_message.frm_payload", PRESS_AND_BATTERY)
        decoded = _ttn(_with(doc, "uplink_message.received_at", value))
    else:
        doc = _with(_with(CHIRPSTACK_PRESS, "data", PRESS_AND_BATTERY), "time", value)
        decoded = _chirpstack(doc)
    (sos,) = decoded.events
    assert (sos.kind, sos.ts, sos.salvaged) == ("sos", NOW, ["ts"])
    battery, salvaged = decoded.rejects
    assert (battery.reason, battery.index) == (Reason.INVALID_TIMESTAMP, 0)
    assert (salvaged.reason, salvaged.index) == (Reason.SALVAGED_ALARM, 1)


def test_the_envelopes_are_valid_as_they_stand() -> None:
    assert _shape(_ttn(TTN_PRESS).events) == [("sos", {})]
    assert _shape(_chirpstack(CHIRPSTACK_PRESS).events) == [("sos", {})]
    upper = _with(CHIRPSTACK_PRESS, "deviceInfo.devEui", "0101010101010101".upper())
    assert _shape(_chirpstack(upper).events) == [("sos", {})]


# -- which model ---------------------------------------------------------------------------


def test_the_registry_model_comes_first() -> None:
    door = _with(TTN_PRESS, "uplink_message.frm_payload", _b64("030001"))
    # The registry says WS301, the network server WS101: the registry wins.
    assert _shape(_ttn(door, model="WS301").events) == [
        ("sensor", {"sensor": "door", "state": "open"})
    ]
    # A registry model without a decoder is refused, not overridden by the envelope's.
    with pytest.raises(DecodeError) as caught:
        _ttn(TTN_PRESS, model="EM300-TH")
    assert caught.value.reason == Reason.UNKNOWN_MODEL and "registry" in caught.value.detail


def test_a_chirpstack_profile_name_is_the_last_resort() -> None:
    doc = _with(CHIRPSTACK_PRESS, "deviceInfo.tags", ...)
    named = _with(doc, "deviceInfo.deviceProfileName", "Milesight WS101 SOS (EU868)")
    assert _shape(_chirpstack(named).events) == [("sos", {})]
    with pytest.raises(DecodeError) as caught:
        _chirpstack(_with(doc, "deviceInfo.deviceProfileName", "Door sensors"))
    assert caught.value.reason == Reason.UNKNOWN_MODEL and "Door sensors" in caught.value.detail


# -- what an uplink becomes ------------------------------------------------------------------


def test_an_uplink_without_readings_is_a_heartbeat() -> None:
    empty = _with(TTN_PRESS, "uplink_message.frm_payload", ...)  # TTS leaves empty fields out
    (event,) = _ttn(empty).events
    assert (event.kind, event.ts) == ("heartbeat", TTN_HEARD)
    boot = _with(CHIRPSTACK_PRESS, "data", base64.b64encode(sim.ws101_boot()).decode())
    assert _shape(_chirpstack(boot).events) == [("heartbeat", {})]


def test_readings_before_an_unreadable_tail_are_kept() -> None:
    doc = _with(
        TTN_PRESS, "uplink_message.frm_payload", _b64("017564ff2e01 9999 ff2e01".replace(" ", ""))
    )
    decoded = _ttn(doc)
    assert _shape(decoded.events) == [("battery", {"battery_pct": 100.0}), ("sos", {})]
    (reject,) = decoded.rejects
    assert (reject.reason, reject.protocol, reject.index) == (
        Reason.UNKNOWN_MESSAGE_TYPE,
        "ttn",
        None,
    )
    assert "unknown channel 99 99 at byte 6" in reject.detail


def test_an_invalid_reading_is_rejected_alone() -> None:
    payload = sim.battery(150) + sim.at101_location(95.0, 121.5) + sim.at101_location(31.2, 121.5)
    doc = _with(CHIRPSTACK_PRESS, "data", base64.b64encode(payload).decode())
    decoded = _chirpstack(_with(doc, "deviceInfo.tags.model", "at101"))
    assert _shape(decoded.events) == [
        ("activity", {"motion": True}),
        ("location", {"lat": 31.2, "lon": 121.5}),
        ("activity", {"motion": True}),
    ]
    assert [(r.reason, r.index) for r in decoded.rejects] == [
        (Reason.INVALID_FIELD, 0),
        (Reason.INVALID_FIELD, 1),
    ]
    assert "battery.battery_pct" in decoded.rejects[0].detail
    assert "location.lat" in decoded.rejects[1].detail


def test_stored_records_keep_device_time_others_get_the_network_time() -> None:
    fell_at = HEARD - timedelta(hours=3)
    payload = sim.vs373_alarm("fall", stored_at=fell_at) + sim.vs373_alarm("fall", alarm_id=2)
    topic, raw = sim.ttn_uplink("radar-1", payload, f_cnt=9, received_at=HEARD, model_id="vs373")
    stored, live = _decode(ttn.CODEC, topic, raw).events
    assert (stored.kind, stored.ts) == ("fall", fell_at)
    assert (live.kind, live.ts) == ("fall", HEARD)


# -- identity ------------------------------------------------------------------------------


def _ids(codec: Codec, topic: str, raw: bytes, received_at: datetime = NOW) -> list[str]:
    device_id = codec.device_from_topic(topic)
    assert device_id is not None
    return [e.event_id for e in codec.decode(Message(raw, topic, device_id, received_at)).events]


@pytest.mark.parametrize("server", sorted(CODECS))
def test_a_redelivered_uplink_gets_the_same_ids_and_a_new_one_does_not(server: str) -> None:
    device = "button-1" if server == "ttn" else EUI
    button = sim.Uplinker(device, server=server, model="WS101")
    codec = CODECS[server]
    press = sim.ws101_press("short")
    topic, first = button.uplink(press + press, HEARD)
    ids = _ids(codec, topic, first)
    assert len(set(ids)) == 2  # two presses in one uplink are two calls
    assert _ids(codec, topic, first, NOW + timedelta(minutes=5)) == ids  # MQTT redelivery
    _, second = button.uplink(press + press, HEARD)  # the next frame, same second
    button.rejoin()
    _, after_rejoin = button.uplink(press + press, HEARD + timedelta(minutes=1))  # f_cnt 0 again
    others = _ids(codec, topic, second) + _ids(codec, topic, after_rejoin)
    assert len(set(ids + others)) == 6


def test_a_rejoin_at_the_same_instant_is_told_apart_by_its_session() -> None:
    def press(session: str) -> tuple[str, bytes]:
        payload = sim.ws101_press()
        return sim.ttn_uplink(
            "button-1",
            payload,
            f_cnt=0,
            received_at=HEARD,
            model_id="ws101",
            session_key_id=session,
        )

    (topic, one), (_, two) = press("AQ=="), press("Ag==")
    assert _ids(ttn.CODEC, topic, one) != _ids(ttn.CODEC, topic, two)


def test_uplink_key_parts() -> None:
    assert lorawan.uplink_key(7, "AXA5", TTN_HEARD) == "7:AXA5:2020-02-12T15:15:45.789585+00:00"
    assert lorawan.uplink_key(0, None, None) == "0::"


# -- round trips through the simulators ----------------------------------------------------

ROUND_TRIPS: list[tuple[str, bytes, list[tuple[str, dict[str, Any]]]]] = [
    (
        "ws101",
        sim.ws101_press("double", battery_pct=87),
        [
            ("battery", {"battery_pct": 87.0}),
            ("sos", {}),
        ],
    ),
    ("ws101", sim.ws101_boot(), [("heartbeat", {})]),
    (
        "ws301",
        sim.ws301_report("closed", tamper="installed", battery_pct=99),
        [
            ("battery", {"battery_pct": 99.0}),
            ("sensor", {"sensor": "door", "state": "closed"}),
            ("sensor", {"sensor": "tamper", "state": "installed"}),
        ],
    ),
    ("ws301", sim.ws301_report("open"), [("sensor", {"sensor": "door", "state": "open"})]),
    ("vs373", sim.vs373_boot(), [("heartbeat", {})]),
    ("vs373", sim.vs373_alarm("fall", alarm_id=266), [("fall", {"confirmed": True})]),
    (
        "vs373",
        sim.vs373_alarm("fall", "ignored"),
        [
            ("sensor", {"sensor": "fall_alarm", "state": "ignored"}),
        ],
    ),
    (
        "vs373",
        sim.vs373_alarm("out_of_bed", region=2),
        [
            ("sensor", {"sensor": "out_of_bed", "state": "alarm"}),
        ],
    ),
    (
        "vs373",
        sim.vs373_room("out_of_bed", seconds=120, today=3600),
        [
            ("sensor", {"sensor": "room", "state": "out_of_bed"}),
            ("sensor", {"sensor": "person", "state": "normal"}),
        ],
    ),
    (
        "vs373",
        sim.vs373_room("vacant", legacy=True),
        [("sensor", {"sensor": "room", "state": "vacant"})],
    ),
    (
        "vs373",
        sim.vs373_breathing(14.25, "bradypnea"),
        [("vitals", {"respiratory_rate_bpm": 14.25})],
    ),
    (
        "at101",
        sim.at101_location(31.230416, 121.473701, fence="inside", battery_pct=64),
        [
            ("battery", {"battery_pct": 64.0}),
            ("location", {"lat": 31.230416, "lon": 121.473701}),
            ("activity", {"motion": True}),
            ("geofence", {"transition": "enter", "zone": "device"}),
        ],
    ),
    (
        "at101",
        sim.at101_location(-33.86, 151.21, motion="stop", fence="outside"),
        [
            ("location", {"lat": -33.86, "lon": 151.21}),
            ("activity", {"motion": False}),
            ("geofence", {"transition": "leave", "zone": "device"}),
        ],
    ),
]


@pytest.mark.parametrize(("model", "payload", "expected"), ROUND_TRIPS)
@pytest.mark.parametrize("server", sorted(CODECS))
def test_round_trip(server: str, model: str, payload: bytes, expected: list[Any]) -> None:
    device = sim.Uplinker("device-7" if server == "ttn" else EUI, server=server, model=model)
    topic, raw = device.uplink(payload, HEARD)
    decoded = _decode(CODECS[server], topic, raw)
    assert decoded.rejects == []
    assert _shape(decoded.events) == expected
    assert {(e.device_id, e.ts, e.source) for e in decoded.events} == {
        (device.device_id, HEARD, server)
    }


def test_round_trip_of_a_stored_fix() -> None:
    at = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
    topic, raw = sim.chirpstack_uplink(
        EUI, sim.at101_history(31.2, 121.5, at), f_cnt=3, time=HEARD, tags={"model": "AT101"}
    )
    (event,) = _decode(chirpstack.CODEC, topic, raw).events
    assert (event.kind, event.ts) == ("location", at)


# -- whatever the bytes: DecodeError or events -----------------------------------------------


def _never_raises_otherwise(call: Callable[[], Decoded]) -> None:
    try:
        decoded = call()
    except DecodeError:
        return
    assert all(isinstance(r, DecodeError) for r in decoded.rejects)


@given(raw=st.binary(max_size=400), server=st.sampled_from(sorted(CODECS)))
def test_any_bytes_decode_or_raise_decode_error(raw: bytes, server: str) -> None:
    topic = TTN_DOC_TOPIC if server == "ttn" else CHIRPSTACK_DOC_TOPIC
    _never_raises_otherwise(lambda: _decode(CODECS[server], topic, raw))


@given(
    payload=st.binary(max_size=80),
    model=st.sampled_from(["ws101", "ws301", "vs373", "at101"]),
    server=st.sampled_from(sorted(CODECS)),
)
def test_any_device_payload_decodes_or_raises_decode_error(
    payload: bytes, model: str, server: str
) -> None:
    device = sim.Uplinker("device-7" if server == "ttn" else EUI, server=server, model=model)
    topic, raw = device.uplink(payload, HEARD)
    _never_raises_otherwise(lambda: _decode(CODECS[server], topic, raw))


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_plausible = st.sampled_from(
    ["", "ws101", "AT101", "qg==", _b64("ff2e01"), _b64("06fb0a01000100"), "2020-02-12T15:15:45Z"]
)


def _paths(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path; as tuples, since a mutation may put a key with a dot in it."""
    out = []
    for key, value in doc.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out.extend(_paths(value, (*prefix, key)))
    return out


@settings(max_examples=300)
@given(data=st.data(), server=st.sampled_from(sorted(CODECS)))
def test_mutated_envelopes_decode_or_raise_decode_error(data: st.DataObject, server: str) -> None:
    doc, topic = (
        (TTN_PRESS, TTN_DOC_TOPIC) if server == "ttn" else (CHIRPSTACK_PRESS, CHIRPSTACK_DOC_TOPIC)
    )
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(_paths(doc)))
        doc = _with(doc, path, data.draw(st.just(...) | _json | _plausible))
    raw = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    _never_raises_otherwise(lambda: _decode(CODECS[server], topic, raw))
