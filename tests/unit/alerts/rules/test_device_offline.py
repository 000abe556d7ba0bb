"""device_offline: the timer, receive time, deterministic keys, resolution."""

from __future__ import annotations

from datetime import timedelta

from alerts.rules import RaiseAlert, ResolveAlert
from alerts.rules._support import iso
from alerts.rules.device_offline import RULE
from tests.unit.alerts.rules.rule_harness import T0, Device


def test_fires_on_a_tick_with_no_events_and_resolves_on_the_next_event() -> None:
    device = Device(RULE)
    assert device.send("heartbeat") == []
    device.advance(minutes=14, seconds=59)
    assert device.tick() == []
    device.advance(seconds=1)  # 3 x 5 min heartbeats missed
    (alert,) = device.tick()
    assert isinstance(alert, RaiseAlert)
    assert (alert.kind, alert.severity, alert.ts) == ("device_offline", "warning", device.now)
    assert alert.key == f"offline:d1:{iso(T0)}" and "15 min" in alert.summary
    device.advance(minutes=30)
    (resolve,) = device.send("battery", battery_pct=80)
    assert isinstance(resolve, ResolveAlert) and resolve.kind == "device_offline"
    assert device.tick() == []


def test_ticking_twice_gives_the_same_key() -> None:
    device = Device(RULE)
    device.send("heartbeat")
    device.advance(minutes=20)
    before = device.snapshot()
    (first,) = device.tick()
    assert device.tick() == []  # the state remembers it
    device.advance(minutes=5)
    (again,) = device.tick(before)  # a restarted worker with the older state
    assert again.key == first.key


def test_heard_means_received_not_device_time() -> None:
    device = Device(RULE)
    device.send("heartbeat", at=T0 - timedelta(hours=2))  # a device with a slow clock
    device.advance(minutes=10)
    assert device.tick() == []


def test_a_replayed_event_does_not_resolve() -> None:
    device = Device(RULE)
    old = device.event("heartbeat")
    device.feed(old)
    device.advance(minutes=20)
    assert device.tick() != []
    assert device.feed(old) == []  # a redelivery of what was received before the silence
    assert device.send("heartbeat") != []


def test_the_silence_is_the_larger_of_three_intervals_and_ten_minutes() -> None:
    slow = Device(RULE, {"device_offline": {"heartbeat_interval_s": 1800}})
    slow.send("heartbeat")
    slow.advance(minutes=89)
    assert slow.tick() == []
    slow.advance(minutes=1)
    assert slow.tick() != []
    chatty = Device(RULE, {"device_offline": {"heartbeat_interval_s": 60}})
    chatty.send("heartbeat")
    chatty.advance(minutes=9)
    assert chatty.tick() == []
    chatty.advance(minutes=1)
    assert chatty.tick() != []


def test_a_new_silence_is_a_new_key() -> None:
    device = Device(RULE)
    device.send("heartbeat")
    device.advance(minutes=20)
    (first,) = device.tick()
    device.send("heartbeat")
    device.advance(minutes=20)
    (second,) = device.tick()
    assert first.key != second.key


def test_a_device_never_heard_from_does_not_tick() -> None:
    assert Device(RULE).tick() == []


def test_disabled() -> None:
    device = Device(RULE, {"device_offline": {"enabled": False}})
    device.send("heartbeat")
    device.advance(hours=5)
    assert device.tick() == []
