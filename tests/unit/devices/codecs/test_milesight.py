"""Milesight payload decoders: the vendors' documented payloads, what carewatch makes of them,
and what happens to bytes the decoders cannot read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.codecs import milesight
from devices.codecs.milesight import DEVICE_FENCE, Reading
from devices.errors import DecodeError, Reason

# (model, hex payload, readings). Sources: the README / user guide of each model in
# github.com/Milesight-IoT/SensorDecoders and milesight.com/docs; rows marked "layout" are
# built from a documented channel table where Milesight publishes no sample.
DOCUMENTED: list[tuple[str, str, list[Reading]]] = [
    # WS101 README: battery 16 %, short press. Every press of a care button is an SOS.
    ("ws101", "017510 ff2e01", [("battery", {"battery_pct": 16}), ("sos", {})]),
    # WS101 user guide: "ff 2e 01 => short press"; long and double press (layout).
    ("ws101", "ff2e01", [("sos", {})]),
    ("ws101", "ff2e02", [("sos", {})]),
    ("ws101", "ff2e03", [("sos", {})]),
    # A press type no document lists is still a call for help.
    ("ws101", "ff2e07", [("sos", {})]),
    # WS101 uplink docs: the basic information packet after joining (power on, versions...).
    ("ws101", "ff0bff ff0101 ff086538b2232131 ff090100 ff0a0102 ff0f00", []),
    # Older WS101 firmware sends a 16-digit serial (ff 16, 8 bytes).
    ("ws101", "ff1665381234567890ab ff2e01", [("sos", {})]),
    # A configuration echo (LED indicator enabled) in front of a press (layout).
    ("ws101", "ff2f01 ff2e02", [("sos", {})]),
    # WS301 README: battery 100 %, open, tamper 1 -- "uninstalled" in the decoder (the newer
    # README's comment says "installed"; the decoder and the older README agree on removed).
    (
        "ws301",
        "017564 030001 040001",
        [
            ("battery", {"battery_pct": 100}),
            ("sensor", {"sensor": "door", "state": "open"}),
            ("sensor", {"sensor": "tamper", "state": "removed"}),
        ],
    ),
    ("ws301", "030000", [("sensor", {"sensor": "door", "state": "closed"})]),
    ("ws301", "040000", [("sensor", {"sensor": "tamper", "state": "installed"})]),
    # VS373 uplink docs: the basic information packet.
    ("vs373", "ff0101 ff166806e39739840003 ff090100 ff0a0101 ff0f02", []),
    # VS373 alarm event (layout): id 266, fall, triggered -> the device's confirmed fall.
    ("vs373", "06fb 0a01 00 01 00", [("fall", {"confirmed": True})]),
    # The same alarm deactivated / ignored on the device: not a cancelled fall.
    ("vs373", "06fb 0a01 00 02 00", [("sensor", {"sensor": "fall_alarm", "state": "deactivated"})]),
    ("vs373", "06fb 0a01 00 03 00", [("sensor", {"sensor": "fall_alarm", "state": "ignored"})]),
    # A fall with a status no document lists still alerts.
    ("vs373", "06fb 0a01 00 09 00", [("fall", {})]),
    # Out of bed in region 3, motionless, lying down, tachypnea (layout).
    ("vs373", "06fb 3104 03 01 03", [("sensor", {"sensor": "out_of_bed", "state": "alarm"})]),
    ("vs373", "06fb 0200 01 01 00", [("sensor", {"sensor": "motionless", "state": "alarm"})]),
    ("vs373", "06fb 0300 08 01 00", [("sensor", {"sensor": "lying_down", "state": "alarm"})]),
    ("vs373", "06fb 0400 07 04 01", [("sensor", {"sensor": "tachypnea", "state": "report"})]),
    # Room status, 07 b0 (3-byte durations) and firmware 1.0.1's 03 f8 (2-byte) (layout).
    (
        "vs373",
        "07b0 02 00 100e00 201c00",
        [
            ("sensor", {"sensor": "room", "state": "in_bed"}),
            ("sensor", {"sensor": "person", "state": "normal"}),
        ],
    ),
    ("vs373", "03f8 01 00 0000 0000", [("sensor", {"sensor": "room", "state": "vacant"})]),
    (
        "vs373",
        "07b0 04 03 3c0000 3c0000",
        [
            ("sensor", {"sensor": "room", "state": "fall"}),
            ("sensor", {"sensor": "person", "state": "lying_down"}),
        ],
    ),
    # Respiration 16.5 bpm, normal; no data / undetectable carry no rate (layout).
    ("vs373", "08b1 02 7206", [("vitals", {"respiratory_rate_bpm": 16.5})]),
    ("vs373", "08b1 01 0000", []),
    ("vs373", "08b1 05 0000", []),
    # Region channels are known and skipped: the alarm after them still decodes.
    (
        "vs373",
        "04f9 00010101 0a b3 06 05000000 06fb 0100 00 01 00",
        [("fall", {"confirmed": True})],
    ),
    # A settings echo with its result byte (f8 4e: digital output + result) before an alarm.
    ("vs373", "f84e 01 00 06fb 0100 00 01 00", [("fall", {"confirmed": True})]),
    # AT101 README: battery, temperature (skipped), position normal, fix with moving/unset.
    (
        "at101",
        "017564 03671b01 050000 048836bf7701f000090722",
        [
            ("battery", {"battery_pct": 100}),
            ("sensor", {"sensor": "position", "state": "normal"}),
            ("location", {"lat": 24.62495, "lon": 118.030576}),
            ("activity", {"motion": True}),
        ],
    ),
    # AT101 README: a Wi-Fi scan instead of a fix -- no position without a geolocation service.
    (
        "at101",
        "017564 03671b01 050001 06d9081cc316222df9c302 06d90824e124f6a667b602",
        [("battery", {"battery_pct": 100}), ("sensor", {"sensor": "position", "state": "tilt"})],
    ),
    # Outside its own fence, stopped (layout).
    (
        "at101",
        "048836bf7701f000090713",
        [
            ("location", {"lat": 24.62495, "lon": 118.030576}),
            ("activity", {"motion": False}),
            ("geofence", {"transition": "leave", "zone": DEVICE_FENCE}),
        ],
    ),
    # No fix: 0,0 is not a position.
    ("at101", "0488 00000000 00000000 22", [("activity", {"motion": True})]),
    ("at101", "070001", [("sensor", {"sensor": "tamper", "state": "removed"})]),
]


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.mark.parametrize(("model", "payload", "expected"), DOCUMENTED)
def test_documented_payloads(model: str, payload: str, expected: list[Reading]) -> None:
    readings = milesight.decode(model, _hex(payload))
    assert readings.error is None
    assert list(readings) == expected


def test_stored_records_keep_their_device_time() -> None:
    at = datetime(2026, 11, 22, 3, 14, 15, tzinfo=UTC)
    stamp = int(at.timestamp()).to_bytes(4, "little").hex()
    vs373 = milesight.decode("vs373", _hex(f"20ce {stamp} 0a01 00 01 00"))
    assert list(vs373) == [("fall", {"confirmed": True, "ts": at})]
    at101 = milesight.decode("at101", _hex(f"20ce {stamp} f0000907 36bf7701"))
    assert list(at101) == [("location", {"lat": 24.62495, "lon": 118.030576, "ts": at})]


def test_an_unset_device_clock_is_not_a_time() -> None:
    (reading,) = milesight.decode("vs373", _hex("20ce 10000000 0a01 00 01 00"))
    assert reading == ("fall", {"confirmed": True})  # the network's time will stand in


@pytest.mark.parametrize(
    ("model", "payload", "kept", "reason", "where"),
    [
        ("ws101", "01", [], Reason.TRUNCATED, "a lone byte at byte 0"),
        ("ws101", "0175", [], Reason.TRUNCATED, "01 75 wants 1 byte(s), has 0"),
        ("ws101", "017564 ff2e", [("battery", {"battery_pct": 100})], Reason.TRUNCATED, "byte 3"),
        ("vs373", "06fb 0a01 00", [], Reason.TRUNCATED, "06 fb wants 5"),
        # No length byte: nothing after an unknown channel can be read, the SOS included.
        (
            "ws101",
            "017564 9999 00 ff2e01",
            [("battery", {"battery_pct": 100})],
            Reason.UNKNOWN_MESSAGE_TYPE,
            "unknown channel 99 99 at byte 3; 6 byte(s) not decoded",
        ),
        # A door channel means nothing to a button.
        ("ws101", "030001", [], Reason.UNKNOWN_MESSAGE_TYPE, "unknown channel 03 00"),
        # TTN's documented example payload, which is not Milesight's.
        ("ws301", "8241de", [], Reason.UNKNOWN_MESSAGE_TYPE, "unknown channel 82 41"),
    ],
)
def test_what_cannot_be_read_is_reported_after_what_could(
    model: str, payload: str, kept: list[Reading], reason: Reason, where: str
) -> None:
    readings = milesight.decode(model, _hex(payload))
    assert list(readings) == kept
    assert readings.error is not None
    assert (readings.error.reason, readings.error.protocol) == (reason, "milesight")
    assert where in readings.error.detail and model in readings.error.detail


def test_empty_payload_has_no_readings() -> None:
    readings = milesight.decode("ws301", b"")
    assert list(readings) == [] and readings.error is None


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("ws101", "ws101"),
        ("WS101", "ws101"),
        ("Ws301", "ws301"),
        ("VS373-868M", "vs373"),
        ("at101-fh", "at101"),
        ("Milesight WS101 SOS", "ws101"),
        ("milesight_vs373 (EU868)", "vs373"),
        ("ws1010", None),
        ("xws101", None),
        ("em300-th", None),
        ("", None),
        (None, None),
    ],
)
def test_model_names_ignore_case_and_suffixes(name: str | None, model: str | None) -> None:
    assert milesight.find_model(name) == model


def test_every_model_has_a_decoder_under_its_lower_case_name() -> None:
    assert sorted(milesight.DECODERS) == ["at101", "vs373", "ws101", "ws301"]
    readings = milesight.DECODERS["ws101"](_hex("ff2e01"), 85)
    assert list(readings) == [("sos", {})]


def test_unknown_model_is_refused() -> None:
    with pytest.raises(DecodeError) as caught:
        milesight.decode("em300-th", _hex("017564"))
    assert caught.value.reason == Reason.UNKNOWN_MODEL
    assert "WS101" in caught.value.detail


_KINDS = {"battery", "sos", "sensor", "fall", "vitals", "location", "activity", "geofence"}


@pytest.mark.parametrize("model", sorted(milesight.DECODERS))
@given(payload=st.binary(max_size=64))
def test_any_bytes_give_readings_and_at_most_one_error(model: str, payload: bytes) -> None:
    readings = milesight.decode(model, payload)
    assert {kind for kind, _ in readings} <= _KINDS
    if readings.error is not None:
        assert readings.error.reason in (Reason.TRUNCATED, Reason.UNKNOWN_MESSAGE_TYPE)


def _fields(readings: list[Reading]) -> list[dict[str, Any]]:
    return [fields for _, fields in readings]


@given(st.lists(st.sampled_from(["017564", "ff2e01", "ff2e02", "ff0bff", "ff2f01"]), max_size=8))
def test_a_button_payload_has_one_sos_per_press(channels: list[str]) -> None:
    readings = milesight.decode("ws101", _hex("".join(channels)))
    presses = sum(c.startswith("ff2e") for c in channels)
    assert [k for k, _ in readings].count("sos") == presses
    assert readings.error is None and _fields(readings).count({}) == presses
