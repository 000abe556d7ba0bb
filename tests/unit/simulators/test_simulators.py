"""The simulators: device behaviours, the native encoder round trip, fleet planning."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from devices.codecs import Message as Message_
from devices.codecs import owntracks as owntracks_codec
from devices.codecs.native import alarm_topic_for, decode, device_from_topic, topic_for
from devices.events import Event
from simulators.behaviours import CallButton, Device, Watch, local_hour
from simulators.fleet import (
    FORMATS,
    NATURAL_EVENTS_PER_S,
    FleetStats,
    _topic,
    login_name,
    parse_mix,
    plan_fleet,
    speed_for,
)
from simulators.lorawan_fleet import LoraUplink
from simulators.native import Encoder, Message, encode
from simulators.phone import OwnTracksUplink, Phone, phone_id

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp()  # 16:00 in Shanghai
MORNING = datetime(2025, 3, 1, 0, 0, tzinfo=UTC).timestamp()  # 08:00 in Shanghai
HOUR = 3600.0


def _run(device: Device, seconds: float, start: float = START) -> list[tuple[float, Message]]:
    """Every message the device sends in its first `seconds`, with the time it was due."""
    out: list[tuple[float, Message]] = []
    while (at := device.next_at()) <= start + seconds:
        out.extend((at, message) for message in device.due(at))
    return out


def _decode_all(device: Device, timeline: list[tuple[float, Message]]) -> list[Event]:
    encoder = Encoder(device.device_id, boot_id="test")
    assert device_from_topic(encoder.topic) == device.device_id
    events: list[Event] = []
    for at, message in timeline:
        received = datetime.fromtimestamp(at + 0.2, UTC)
        decoded = decode(encoder.encode(message), device.device_id, received)
        assert decoded.rejects == []
        assert len(decoded.events) == len(message)
        assert all(abs(e.ts.timestamp() - at) < 0.001 for e in decoded.events)
        events.extend(decoded.events)
    return events


def _watch(seed: int = 1) -> Watch:
    return Watch("watch-0001", rng=random.Random(seed), start=START)


def _button(seed: int = 1, mean: float = 180.0) -> CallButton:
    return CallButton("button-0001", rng=random.Random(seed), start=START, sos_mean_interval=mean)


def test_watch_hour_round_trips_through_the_codec() -> None:
    events = _decode_all(watch := _watch(), _run(watch, HOUR))
    kinds = Counter(e.kind for e in events)
    assert set(kinds) == {"location", "vitals", "battery", "activity", "heartbeat"}
    assert 110 <= kinds["location"] == kinds["battery"] == kinds["activity"] <= 130
    assert 55 <= kinds["vitals"] <= 65 and kinds["heartbeat"] == 60


def test_watch_readings_are_plausible() -> None:
    watch = Watch("watch-0001", rng=random.Random(7), start=MORNING)
    events = _decode_all(watch, _run(watch, 6 * HOUR, MORNING))  # 08:00-14:00, up and about
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event.model_dump())
    home_lat, home_lon = watch.home
    assert abs(home_lat - 31.23) < 0.05 and abs(home_lon - 121.47) < 0.05
    for loc in by_kind["location"]:
        north = (loc["lat"] - home_lat) * 111_320
        east = (loc["lon"] - home_lon) * 111_320 * math.cos(math.radians(home_lat))
        assert math.hypot(east, north) <= Watch.ROAM_M + 1
    assert all(55 <= v["heart_rate_bpm"] <= 95 for v in by_kind["vitals"])
    assert all(95 <= v["spo2_pct"] <= 99 for v in by_kind["vitals"])
    battery = [b["battery_pct"] for b in by_kind["battery"]]
    assert battery == sorted(battery, reverse=True) and 5 <= battery[0] - battery[-1] <= 20
    steps = [a["steps"] for a in by_kind["activity"]]
    assert steps == sorted(steps) and steps[-1] > 1000


def test_location_frame_is_one_array_message() -> None:
    watch = _watch()
    frames = [m for _, m in _run(watch, 120) if m[0]["kind"] == "location"]
    assert [item["kind"] for item in frames[0]] == ["location", "battery", "activity"]
    assert isinstance(orjson.loads(encode(frames[0])), list)
    heartbeat = next(m for _, m in _run(_watch(), 120) if m[0]["kind"] == "heartbeat")
    assert isinstance(orjson.loads(encode(heartbeat)), dict)


def test_button_hour_round_trips_through_the_codec() -> None:
    events = _decode_all(button := _button(), _run(button, HOUR))
    kinds = Counter(e.kind for e in events)
    assert set(kinds) == {"heartbeat", "sos"} and kinds["heartbeat"] == 60


@pytest.mark.parametrize("seed", range(50))
def test_first_sos_comes_within_40_seconds(seed: int) -> None:
    first = next(at for at, m in _run(_button(seed), HOUR) if m[0]["kind"] == "sos")
    assert 5 <= first - START <= 40


def test_same_seed_same_sequence() -> None:
    assert _run(_button(3), 4 * HOUR) == _run(_button(3), 4 * HOUR)
    assert _run(_button(3), 4 * HOUR) != _run(_button(4), 4 * HOUR)
    assert _run(_watch(3), HOUR) == _run(_watch(3), HOUR)


def test_sos_gaps_follow_the_configured_mean() -> None:
    presses = [at for at, m in _run(_button(mean=60.0), 1000 * 60.0) if m[0]["kind"] == "sos"]
    assert 50 <= statistics.fmean(b - a for a, b in itertools.pairwise(presses)) <= 70


def test_a_late_timer_fires_once_not_once_per_missed_period() -> None:
    watch = _watch()
    messages = watch.due(START + 10 * HOUR)
    assert sorted(m[0]["kind"] for m in messages) == ["heartbeat", "location", "vitals"]
    assert watch.next_at() > START + 10 * HOUR


def test_encoder_gives_distinct_msg_ids() -> None:
    encoder, watch = Encoder("watch-0001"), _watch()
    ids = [item["msg_id"] for _, m in _run(watch, HOUR) for item in encoder.stamp(m)]
    assert len(ids) == len(set(ids)) > 300
    assert Encoder("watch-0001").boot_id != Encoder("watch-0001").boot_id


def test_redelivered_message_keeps_its_event_ids() -> None:
    encoder = Encoder("watch-0001")
    frame = next(m for _, m in _run(_watch(), 60) if len(m) == 3)
    stamped = encoder.stamp(frame)
    assert encode(stamped) == encode(stamped)

    def ids(payload: bytes, received_at: float) -> list[str]:
        got = decode(payload, "watch-0001", datetime.fromtimestamp(received_at, UTC))
        return [e.event_id for e in got.events]

    first = ids(encode(stamped), START + 1)
    assert ids(encode(stamped), START + 300) == first  # redelivered later: same ids
    assert len(set(first)) == 3
    assert set(ids(encoder.encode(frame), START + 1)).isdisjoint(first)  # resent: new ids


def test_encode_writes_utc_z_timestamps() -> None:
    doc = orjson.loads(encode([{"kind": "heartbeat", "ts": START + 0.25}]))
    assert doc == {"kind": "heartbeat", "ts": "2025-03-01T08:00:00.250Z"}
    with pytest.raises(ValueError):
        encode([{"kind": "heartbeat", "ts": datetime(2025, 3, 1)}])


def test_plan_fleet_splits_by_mix() -> None:
    plan = plan_fleet(10)
    assert Counter(kind for kind, _ in plan) == {"watch": 7, "button": 3}
    assert plan[0] == ("watch", "watch-0001") and plan[-1] == ("button", "button-0003")
    assert len(plan_fleet(7, {"watch": 1, "button": 1})) == 7
    assert plan_fleet(0) == []
    for bad in ({"toaster": 10}, {"watch": 0}, {"watch": -1, "button": 5}):
        with pytest.raises(ValueError):
            plan_fleet(10, bad)


def test_fleet_stats_count_events_by_kind() -> None:
    stats = FleetStats()
    for _, message in _run(_button(), HOUR):
        stats.record(message)
    assert stats.messages == stats.events == sum(stats.events_by_kind.values())
    assert stats.sos_sent == stats.events_by_kind["sos"] > 0
    assert orjson.loads(orjson.dumps(stats.summary()))["sos_sent"] == stats.sos_sent


def _day(watch: Watch, start: float) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    by_kind: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for at, message in _run(watch, 24 * HOUR, start):
        for item in message:
            by_kind.setdefault(item["kind"], []).append((local_hour(at), item))
    return by_kind


def test_watch_has_a_daily_rhythm() -> None:
    midnight = MORNING - 8 * HOUR  # 00:00 in Shanghai
    day = _day(Watch("watch-0001", rng=random.Random(5), start=midnight), midnight)
    night_hr = [v["heart_rate_bpm"] for h, v in day["vitals"] if 2 <= h < 6]
    afternoon_hr = [v["heart_rate_bpm"] for h, v in day["vitals"] if 14 <= h < 18]
    assert statistics.fmean(afternoon_hr) - statistics.fmean(night_hr) > 6
    night_steps = {a["steps"] for h, a in day["activity"] if h < 6.9}
    assert night_steps == {0}  # asleep: no steps
    evening_steps = [a["steps"] for h, a in day["activity"] if 21 <= h]
    assert evening_steps[0] > 1000 and len(set(evening_steps)) == 1  # stopped walking
    charging = [b["battery_pct"] for h, b in day["battery"] if 21.1 <= h]
    assert charging == sorted(charging) and charging[-1] > charging[0]  # on the charger


def test_steps_start_again_at_local_midnight() -> None:
    evening = MORNING + 12 * HOUR  # 20:00 in Shanghai
    watch = Watch("watch-0001", rng=random.Random(2), start=evening)
    frames = [
        (local_hour(at), m[2]["steps"]) for at, m in _run(watch, 6 * HOUR, evening) if len(m) == 3
    ]
    before = [s for h, s in frames if 20 <= h < 21]
    after = [s for h, s in frames if h < 6]
    assert before[-1] > 0 and after and set(after) == {0}


def test_speed_scales_every_timer() -> None:
    fast = Watch("watch-0001", rng=random.Random(1), start=START, speed=10.0)
    kinds = Counter(m[0]["kind"] for _, m in _run(fast, HOUR / 10))
    assert 110 <= kinds["location"] <= 130 and kinds["heartbeat"] == 60
    with pytest.raises(ValueError):
        Watch("watch-0001", rng=random.Random(1), start=START, speed=0)


def test_phone_round_trips_through_the_owntracks_codec() -> None:
    phone = Phone(phone_id("phone-0001"), rng=random.Random(1), start=START)
    uplink = OwnTracksUplink(phone.device_id, rng=random.Random(1))
    assert uplink.topic == "owntracks/phone-0001/phone"
    assert owntracks_codec.device_from_topic(uplink.topic) == phone.device_id
    timeline = _run(phone, HOUR)
    assert 27 <= len(timeline) <= 33  # a fix every two minutes
    for at, message in timeline:
        received = datetime.fromtimestamp(at + 0.2, UTC)
        decoded = owntracks_codec.decode(uplink.encode(message), phone.device_id, received)
        assert decoded.rejects == []
        assert sorted(e.kind for e in decoded.events) == ["battery", "location"]
    assert NATURAL_EVENTS_PER_S["phone"] == pytest.approx(2 / 120)


def test_parse_mix() -> None:
    assert parse_mix("watch:60,button:20,phone:20") == {"watch": 60, "button": 20, "phone": 20}
    assert parse_mix(" watch:1 , watch:2") == {"watch": 3}
    for bad in ("watch", "watch:x", "toaster:5", "watch:0", "watch:-1", ""):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_plan_fleet_with_phones_and_a_prefix() -> None:
    plan = plan_fleet(10, parse_mix("watch:60,button:20,phone:20"), prefix="r1-")
    assert Counter(kind for kind, _ in plan) == {"watch": 6, "button": 2, "phone": 2}
    assert ("phone", "r1-phone-0001:phone") in plan and ("watch", "r1-watch-0006") in plan
    assert login_name("phone", "r1-phone-0001:phone") == "r1-phone-0001"
    assert login_name("watch", "r1-watch-0001") == "r1-watch-0001"
    assert {FORMATS[kind] for kind, _ in plan} == {"native", "owntracks"}


def test_speed_for_offers_the_requested_rate() -> None:
    plan = plan_fleet(100, {"watch": 60, "button": 20, "phone": 20})
    natural = sum(NATURAL_EVENTS_PER_S[kind] for kind, _ in plan)
    assert natural == pytest.approx(60 * (3 / 30 + 2 / 60) + 20 / 60 + 20 / 60)
    assert speed_for(plan, None) == 1.0
    assert speed_for(plan, 1000) * natural == pytest.approx(1000)
    with pytest.raises(ValueError):
        speed_for(plan, 0)


def test_phones_send_at_most_a_fix_a_second_and_the_rest_make_up_the_rate() -> None:
    phone = Phone(phone_id("phone-0001"), rng=random.Random(1), start=START, speed=1000.0)
    times = [at for at, _ in _run(phone, 60)]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))
    plan = plan_fleet(10, {"watch": 50, "phone": 50})
    speed = speed_for(plan, 1000)
    offered = 5 * NATURAL_EVENTS_PER_S["watch"] * speed + 5 * Phone.MAX_EVENTS_PER_S
    assert offered == pytest.approx(1000)


def test_a_4g_watch_hour_as_frames_decodes_to_the_events_the_fleet_counts() -> None:
    from devices.codecs import watch as watch_codec
    from simulators.watch_link import WatchFrames

    device = Watch("4711000001", rng=random.Random(3), start=START)
    frames = WatchFrames(device.device_id)
    assert watch_codec.device_from_topic(frames.topic) == device.device_id
    counted: Counter[str] = Counter()
    decoded: Counter[str] = Counter()
    for at, message in _run(device, HOUR):
        out = watch_codec.decode(
            frames.encode(message), device.device_id, datetime.fromtimestamp(at + 0.2, UTC)
        )
        assert out.rejects == []
        counted.update(item["kind"] for item in message)
        decoded.update(e.kind for e in out.events)
        # only frames carrying the watch's own time may be resent (same event ids)
        assert frames.repeatable(message) == (
            "location" in counted and message[0]["kind"] == "location"
        )
    assert decoded == counted and counted["location"] > 100


@pytest.mark.parametrize("kind", ["lorabutton", "door"])
def test_lorawan_devices_uplinks_decode_to_the_events_the_fleet_counts(kind: str) -> None:
    from devices.codecs import get_codec
    from simulators.lorawan_fleet import DoorSensor, LoraButton, LoraUplink, dev_eui

    codec = get_codec(FORMATS[kind])
    rng = random.Random(5)
    if kind == "door":
        device: Device = DoorSensor(dev_eui("door-0001"), rng=rng, start=START, speed=10)
    else:
        device = LoraButton("lorabutton-0001", rng=rng, start=START, sos_mean_interval=60.0)
    uplink = LoraUplink(device.device_id, kind)
    assert codec.device_from_topic(uplink.topic) == device.device_id
    counted: Counter[str] = Counter()
    decoded: Counter[str] = Counter()
    for at, message in _run(device, HOUR):
        received = datetime.fromtimestamp(at + 0.2, UTC)
        out = codec.decode(Message_(uplink.encode(message), uplink.topic, device.device_id,
                                    received))  # fmt: skip
        assert out.rejects == []
        counted.update(item["kind"] for item in message)
        decoded.update(e.kind for e in out.events)
    assert decoded == counted
    if kind == "door":  # ten times its natural pace: a door event every minute
        assert 55 <= counted["sensor"] <= 66 and 9 <= counted["battery"] <= 11
    else:
        assert counted["sos"] > 0


def test_the_fleet_counts_are_served_as_prometheus_metrics() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from carewatch.simulate import FleetCollector

    stats = FleetStats()
    registry = CollectorRegistry()
    registry.register(FleetCollector(stats))
    stats.connected = 3
    stats.record([{"kind": "sos", "ts": 0.0}, {"kind": "battery", "ts": 0.0}])
    text = generate_latest(registry).decode()  # read at scrape time, not at registration
    assert 'carewatch_sim_events_total{kind="sos"} 1.0' in text
    assert "carewatch_sim_sos_total 1.0" in text
    assert "carewatch_sim_messages_total 1.0" in text
    assert "carewatch_sim_devices_connected 3.0" in text


def test_native_devices_send_alarms_on_their_alarm_topic_and_the_rest_on_up() -> None:
    """As docs/native-format.md asks of devices; formats without an alarm topic send
    everything on their one topic."""
    native = Encoder("button-1")
    assert _topic(native, [{"kind": "sos", "ts": 1.0}]) == alarm_topic_for("button-1")
    assert _topic(native, [{"kind": "fall", "ts": 1.0}]) == alarm_topic_for("button-1")
    mixed = [{"kind": "sos", "ts": 1.0}, {"kind": "battery", "ts": 1.0, "battery_pct": 80}]
    assert _topic(native, mixed) == topic_for("button-1")
    lora = LoraUplink("a84041000181c061", "lorabutton")
    assert _topic(lora, [{"kind": "sos", "ts": 1.0}]) == lora.topic
