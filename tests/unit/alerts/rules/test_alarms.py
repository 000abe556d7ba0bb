"""A fall the wearer cancels within the window resolves the fall alert."""

from __future__ import annotations

from datetime import timedelta

from alerts.rules import RaiseAlert, ResolveAlert
from alerts.rules.alarms import RULE, raised_by
from tests.unit.alerts.rules.rule_harness import T0, Device


def _after(seconds: float) -> object:
    return T0 + timedelta(seconds=seconds)


def test_a_fall_cancelled_within_the_window_resolves() -> None:
    device = Device(RULE)
    (alert,) = device.send("fall")
    assert isinstance(alert, RaiseAlert) and (alert.kind, alert.severity) == ("fall", "critical")
    cancel = device.event("fall", _after(90), cancelled=True)
    (resolve,) = device.feed(cancel)
    assert isinstance(resolve, ResolveAlert)
    assert (resolve.kind, resolve.reason, resolve.key) == (
        "fall",
        "cancelled by wearer",
        cancel.event_id,
    )
    assert device.feed(cancel) == []  # redelivered


def test_a_cancel_after_the_window_does_not() -> None:
    device = Device(RULE)
    device.send("fall")
    assert device.send("fall", _after(121), cancelled=True) == []


def test_a_cancel_that_arrives_before_its_fall() -> None:
    device = Device(RULE)
    assert device.send("fall", _after(60), cancelled=True) == []
    decisions = device.send("fall")
    assert [type(d).__name__ for d in decisions] == ["RaiseAlert", "ResolveAlert"]  # still alerts


def test_another_uncancelled_fall_keeps_the_alert() -> None:
    device = Device(RULE)
    device.send("fall")
    device.send("fall", _after(30), confirmed=True)
    assert device.send("fall", _after(60), cancelled=True) == []
    assert device.send("fall", _after(100), cancelled=True) != []


def test_a_redelivered_fall_does_not_block_its_cancel() -> None:
    device = Device(RULE)
    fall = device.event("fall")
    assert device.feed(fall) != [] and device.feed(fall) != []  # the store dedups by key
    assert device.send("fall", _after(60), cancelled=True) != []


def test_the_window_is_configurable() -> None:
    device = Device(RULE, {"alarms": {"fall_cancel_window_s": 300}})
    device.send("fall")
    assert device.send("fall", _after(280), cancelled=True) != []


def test_sos_always_alerts() -> None:
    device = Device(RULE)
    assert [d.kind for d in device.send("sos", _after(-86400))] == ["sos"]


def test_the_alarm_lane_raises_what_the_rule_raises_without_state() -> None:
    device = Device(RULE)
    for kind, fields in [("sos", {}), ("fall", {"confirmed": True})]:
        event = device.event(kind, _after(10), **fields)
        assert raised_by(event) == device.feed(event)[0]  # the same key: the store takes one
    assert raised_by(device.event("fall", _after(20), cancelled=True)) is None  # needs state
    assert raised_by(device.event("heartbeat", _after(30))) is None
