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

from devices.codecs.native import decode, device_from_topic
from devices.events import Event
from simulators.behaviours import CallButton, Device, Watch
from simulators.fleet import FleetStats, plan_fleet
from simulators.native import Encoder, Message, encode

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0


def _run(device: Device, seconds: float) -> list[tuple[float, Message]]:
    """Every message the device sends in its first `seconds`, with the time it was due."""
    out: list[tuple[float, Message]] = []
    while (at := device.next_at()) <= START + seconds:
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
    events = _decode_all(watch := _watch(seed=7), _run(watch, 6 * HOUR))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event.model_dump())
    home_lat, home_lon = watch.home
    assert abs(home_lat - 31.23) < 0.05 and abs(home_lon - 121.47) < 0.05
    for loc in by_kind["location"]:
        north = (loc["lat"] - home_lat) * 111_320
        east = (loc["lon"] - home_lon) * 111_320 * math.cos(math.radians(home_lat))
        assert math.hypot(east, north) <= Watch.ROAM_M + 1
    assert all(60 <= v["heart_rate_bpm"] <= 90 for v in by_kind["vitals"])
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
