"""not_worn: a timer over active hours; worn again resolves."""

from __future__ import annotations

from datetime import timedelta

from alerts.rules import RaiseAlert, ResolveAlert
from alerts.rules._support import iso
from alerts.rules.worn import RULE
from tests.unit.alerts.rules.rule_harness import T0, Device, local


def test_taken_off_for_more_than_fifteen_minutes() -> None:
    device = Device(RULE)
    assert device.send("worn", worn=False) == []
    device.advance(minutes=14)
    assert device.send("worn", worn=False) == []  # still off: counts from the first
    assert device.tick() == []
    device.advance(minutes=1)
    before = device.snapshot()
    (alert,) = device.tick()
    assert isinstance(alert, RaiseAlert)
    assert (alert.kind, alert.severity, alert.key) == (
        "not_worn",
        "warning",
        f"not_worn:d1:{iso(T0)}",
    )
    assert device.tick() == [] and [d.key for d in device.tick(before)] == [alert.key]
    device.advance(minutes=10)
    (resolve,) = device.send("worn", worn=True)
    assert isinstance(resolve, ResolveAlert) and resolve.reason == "worn again"


def test_put_back_in_time_does_not_alert() -> None:
    device = Device(RULE)
    device.send("worn", worn=False)
    device.advance(minutes=10)
    assert device.send("worn", worn=True) == []
    device.advance(minutes=30)
    assert device.tick() == []


def test_off_at_night_does_not_count() -> None:
    device = Device(RULE)
    device.now = local(23, 22)
    device.send("worn", worn=False)
    device.now = local(24, 8, 14)
    assert device.tick() == []
    device.now = local(24, 8, 15)
    assert device.tick() != []


def test_a_late_worn_event_changes_nothing() -> None:
    device = Device(RULE)
    device.send("worn", worn=False)
    assert device.send("worn", at=T0 - timedelta(minutes=5), worn=True) == []
    device.advance(minutes=15)
    assert device.tick() != []


def test_per_resident_duration_and_disabled() -> None:
    device = Device(RULE, {"worn": {"removed_min": 60}})
    device.send("worn", worn=False)
    device.advance(minutes=59)
    assert device.tick() == []
    device.advance(minutes=1)
    assert device.tick() != []
    off = Device(RULE, {"worn": {"enabled": False}})
    off.send("worn", worn=False)
    off.advance(hours=3)
    assert off.tick() == []
