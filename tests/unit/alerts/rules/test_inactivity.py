"""inactivity: a timer, counting only active hours; resolved by activity."""

from __future__ import annotations

from datetime import timedelta

from alerts.rules import RaiseAlert, ResolveAlert
from alerts.rules._support import iso
from alerts.rules.inactivity import RULE
from tests.unit.alerts.rules.rule_harness import T0, Device, local


def _tick_at(device: Device, when: object, heartbeat: bool = True) -> list[object]:
    device.now = when
    if heartbeat:  # the device is online, just not moving
        device.send("heartbeat")
    return device.tick()


def test_three_quiet_hours_alert_once_with_a_key_of_the_silence() -> None:
    device = Device(RULE)
    device.send("activity", steps=100)  # 10:00 local
    assert _tick_at(device, T0 + timedelta(hours=2, minutes=59)) == []
    before = device.snapshot()
    (alert,) = _tick_at(device, T0 + timedelta(hours=3))
    assert isinstance(alert, RaiseAlert)
    assert (alert.kind, alert.severity, alert.ts) == ("inactivity", "warning", device.now)
    assert alert.key == f"inactivity:d1:{iso(T0)}"
    assert "since 2026-11-23 10:00" in alert.summary
    assert _tick_at(device, T0 + timedelta(hours=3, minutes=1)) == []  # raised once
    # a worker that restarts from the state before the raise raises the same key
    replayed = device.tick(before)
    assert [d.key for d in replayed] == [alert.key]


def test_activity_resolves() -> None:
    device = Device(RULE)
    device.send("activity", steps=100)
    assert _tick_at(device, T0 + timedelta(hours=3)) != []
    assert device.send("activity", steps=100) == []  # no new steps: still inactive
    device.advance(minutes=1)
    (resolve,) = device.send("activity", steps=120)
    assert isinstance(resolve, ResolveAlert) and resolve.kind == "inactivity"
    assert _tick_at(device, T0 + timedelta(hours=4)) == []


def test_motion_counts_as_activity() -> None:
    device = Device(RULE)
    device.send("activity", motion=False)
    device.now = T0 + timedelta(hours=2)
    device.send("activity", motion=True)
    assert _tick_at(device, T0 + timedelta(hours=4)) == []
    assert _tick_at(device, T0 + timedelta(hours=5)) != []


def test_only_active_hours_count() -> None:
    device = Device(RULE)
    device.now = local(23, 20)
    device.send("activity", steps=4000)  # 20:00: an hour of active time left today
    for hour in range(21, 24):
        assert _tick_at(device, local(23, hour)) == []
    for hour in range(0, 8):
        assert _tick_at(device, local(24, hour)) == []  # a night's sleep
    assert _tick_at(device, local(24, 9, 59)) == []
    (alert,) = _tick_at(device, local(24, 10))  # 20-21h and 8-10h: three active hours
    assert alert.kind == "inactivity"


def test_a_step_counter_reset_is_not_activity() -> None:
    device = Device(RULE)
    device.send("activity", steps=5000)
    device.now = T0 + timedelta(hours=1)
    device.send("activity", steps=0)  # the counter reset
    assert _tick_at(device, T0 + timedelta(hours=3)) != []


def test_a_late_steps_reading_is_ignored() -> None:
    device = Device(RULE)
    device.send("activity", steps=500)
    device.now = T0 + timedelta(hours=1)
    device.send("activity", at=T0 - timedelta(hours=1), steps=100)
    device.send("activity", at=T0 + timedelta(minutes=30), steps=400)  # newer: a reset
    assert _tick_at(device, T0 + timedelta(hours=3)) != []


def test_a_silent_device_is_device_offlines_case() -> None:
    device = Device(RULE)
    device.send("activity", steps=100)
    assert _tick_at(device, T0 + timedelta(hours=3), heartbeat=False) == []
    assert _tick_at(device, T0 + timedelta(hours=3, minutes=1)) != []  # heard again


def test_a_device_that_never_reports_activity_never_alerts() -> None:
    device = Device(RULE)
    device.send("heartbeat")
    assert _tick_at(device, T0 + timedelta(hours=6)) == []


def test_per_resident_period_and_hours() -> None:
    device = Device(
        RULE, {"inactivity": {"period_min": 60}, "resident": {"active_hours": "00:00-24:00"}}
    )
    device.now = local(23, 2)
    device.send("activity", steps=1)
    assert _tick_at(device, local(23, 3)) != []


def test_disabled() -> None:
    device = Device(RULE, {"inactivity": {"enabled": False}})
    device.send("activity", steps=100)
    assert _tick_at(device, T0 + timedelta(hours=5)) == []
