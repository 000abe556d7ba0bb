"""battery_low: threshold, hysteresis, charging, device time."""

from __future__ import annotations

from datetime import timedelta

from alerts.rules import Decision, RaiseAlert, ResolveAlert
from alerts.rules.battery import RULE
from tests.unit.alerts.rules.rule_harness import T0, Device


def _levels(device: Device, *levels: float, start: int = 0) -> list[Decision]:
    return [
        d
        for i, pct in enumerate(levels)
        for d in device.send("battery", T0 + timedelta(minutes=start + i), battery_pct=pct)
    ]


def test_low_then_recharged_past_the_hysteresis() -> None:
    device = Device(RULE)
    assert _levels(device, 60, 30, 16) == []
    (alert,) = _levels(device, 15, start=3)
    assert isinstance(alert, RaiseAlert)
    assert (alert.kind, alert.severity, alert.summary) == (
        "battery_low",
        "warning",
        "battery low: 15%",
    )
    assert _levels(device, 14, 16, 17, start=4) == []
    (resolve,) = _levels(device, 20, start=7)
    assert isinstance(resolve, ResolveAlert) and resolve.reason == "battery at 20%"


def test_a_reading_wobbling_at_the_threshold_raises_once() -> None:
    device = Device(RULE)
    decisions = _levels(device, 16, 15, 16, 15, 16, 14, 16, 15, 17)
    assert [type(d).__name__ for d in decisions] == ["RaiseAlert"]


def test_charging_resolves_before_the_threshold() -> None:
    device = Device(RULE)
    assert _levels(device, 8) != []
    assert _levels(device, 7, 9, 11, start=1) == []
    (resolve,) = _levels(device, 12, start=4)
    assert isinstance(resolve, ResolveAlert)
    assert resolve.reason == "charging: battery up from 7% to 12%"
    assert _levels(device, 11, start=5) != []  # unplugged while still low: low again


def test_a_battery_still_rising_on_the_charger_is_not_low_again() -> None:
    # Resolved as charging at 10 %, still under low_pct: the readings that follow while it
    # charges must not open a second alert (they did: 13 % raised, 19 % resolved again).
    device = Device(RULE)
    decisions = _levels(device, 14, 9, 4, 6, 10, 13, 13, 15, 19, 24)
    assert [type(d).__name__ for d in decisions] == ["RaiseAlert", "ResolveAlert"]
    resolve = decisions[1]
    assert isinstance(resolve, ResolveAlert)
    assert resolve.reason == "charging: battery up from 4% to 10%"
    assert _levels(device, 14, 12, start=10) != []  # drained below low_pct again: low again


def test_a_late_reading_changes_nothing() -> None:
    device = Device(RULE)
    assert _levels(device, 10, start=5) != []
    assert _levels(device, 50, start=0) == []  # older than the newest reading
    assert device.state["lowest"] == 10


def test_per_resident_thresholds() -> None:
    device = Device(RULE, {"battery": {"low_pct": 30, "resolve_pct": 50}})
    assert _levels(device, 30) != []
    assert _levels(device, 45, start=1) != []  # charging
    assert _levels(device, 30, start=2) != []
    assert [type(d).__name__ for d in _levels(device, 50, start=3)] == ["ResolveAlert"]


def test_disabled() -> None:
    assert _levels(Device(RULE, {"battery": {"enabled": False}}), 1) == []
