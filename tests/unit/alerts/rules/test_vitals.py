"""Vitals: NEWS2 bands, sustained before alerting, escalation, auto-resolve, device time."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alerts.rules import Decision, RaiseAlert, ResolveAlert
from alerts.rules.vitals import RULE, _insert
from tests.unit.alerts.rules.rule_harness import T0, Device


def _read(device: Device, minute: float, **values: float) -> list[Decision]:
    return device.send("vitals", T0 + timedelta(minutes=minute), **values)


def _series(device: Device, minutes: list[float], **values: float) -> list[Decision]:
    return [d for m in minutes for d in _read(device, m, **values)]


def test_sustained_low_spo2_alerts_after_three_readings_over_two_minutes() -> None:
    device = Device(RULE)
    assert _read(device, 0, spo2_pct=90) == []
    assert _read(device, 1, spo2_pct=90) == []
    (alert,) = _read(device, 2, spo2_pct=89)
    assert isinstance(alert, RaiseAlert)
    assert (alert.kind, alert.severity) == ("spo2_low", "critical")
    assert alert.ts == T0 + timedelta(minutes=2) and "3 readings over 2 min" in alert.summary
    assert _read(device, 3, spo2_pct=88) == []  # already open: no repeat per reading


def test_a_single_dip_does_not_alert() -> None:
    device = Device(RULE)
    readings = [97, 96, 85, 97, 96, 97, 88, 96, 97]
    assert [d for i, v in enumerate(readings) for d in _read(device, i, spo2_pct=v)] == []


def test_three_quick_readings_wait_for_the_duration() -> None:
    device = Device(RULE)
    assert _series(device, [0, 0.25, 0.5, 1], spo2_pct=90) == []
    assert [d.kind for d in _read(device, 2, spo2_pct=90)] == ["spo2_low"]


def test_duration_alone_is_not_enough_either() -> None:
    device = Device(RULE)
    assert _series(device, [0, 30], spo2_pct=90) == []  # two readings half an hour apart
    assert _read(device, 31, spo2_pct=90) != []


def test_warning_band_then_escalation_to_critical() -> None:
    device = Device(RULE)
    (warning,) = _series(device, [0, 1, 2], spo2_pct=93)
    assert (warning.kind, warning.severity) == ("spo2_low", "warning")
    assert _series(device, [3, 4], spo2_pct=90) == []
    (critical,) = _read(device, 5, spo2_pct=90)
    assert (critical.kind, critical.severity) == ("spo2_low", "critical")
    assert _series(device, [6, 7], spo2_pct=93) == []  # back to warning: no downgrade


def test_normal_readings_for_the_configured_time_resolve() -> None:
    device = Device(RULE)
    assert _series(device, [0, 1, 2], spo2_pct=90) != []
    assert _series(device, [3, 8], spo2_pct=97) == []
    assert _read(device, 9, spo2_pct=91) == []  # a dip starts the normal stretch again
    assert _series(device, [10, 15], spo2_pct=97) == []
    (resolve,) = _read(device, 20, spo2_pct=97)
    assert isinstance(resolve, ResolveAlert) and resolve.kind == "spo2_low"
    assert "normal again for 10 min" in resolve.reason
    assert _series(device, [21, 22, 23], spo2_pct=97) == []
    assert [d.kind for d in _series(device, [30, 31, 32], spo2_pct=90)] == ["spo2_low"]


def test_heart_rate_bands() -> None:
    device = Device(RULE)
    (high,) = _series(device, [0, 1, 2], heart_rate_bpm=115)
    assert (high.kind, high.severity) == ("heart_rate_high", "warning")
    (critical,) = _series(device, [3, 4, 5], heart_rate_bpm=135)
    assert (critical.kind, critical.severity) == ("heart_rate_high", "critical")
    low = _series(device, [20, 21, 22], heart_rate_bpm=38)
    assert [(d.kind, getattr(d, "severity", None)) for d in low] == [("heart_rate_low", "critical")]
    # the low run is also a normal stretch for heart_rate_high: it resolves after 10 min
    assert [d.kind for d in _series(device, [30, 32], heart_rate_bpm=38)] == ["heart_rate_high"]


def test_per_resident_override_of_the_low_heart_rate_threshold() -> None:
    defaults = Device(RULE)
    assert [d.kind for d in _series(defaults, [0, 1, 2], heart_rate_bpm=39)] == ["heart_rate_low"]
    # a resident with a resting heart rate in the low 40s (e.g. on beta blockers)
    override = Device(RULE, {"vitals": {"heart_rate": {"critical_low": 38}}})
    assert _series(override, [0, 1, 2, 3], heart_rate_bpm=45) == []
    assert _series(override, [4, 5, 6, 7], heart_rate_bpm=39) == []
    assert _series(override, [8, 9, 10], heart_rate_bpm=37) != []


def test_fever_bands() -> None:
    device = Device(RULE)
    assert _series(device, [0, 1, 2], body_temp_c=38.0) == []
    (warning,) = _series(device, [3, 4, 5], body_temp_c=38.4)
    assert (warning.kind, warning.severity) == ("body_temp_high", "warning")
    (critical,) = _series(device, [6, 7, 8], body_temp_c=39.3)
    assert critical.severity == "critical"
    assert _series(device, [9, 10, 11], body_temp_c=34.0) == []  # low: no alert kind for it


def test_one_event_with_several_vitals() -> None:
    device = Device(RULE)
    decisions = _series(device, [0, 1, 2], heart_rate_bpm=140, spo2_pct=88, body_temp_c=36.8)
    assert sorted(d.kind for d in decisions) == ["heart_rate_high", "spo2_low"]


def test_a_late_normal_reading_breaks_the_run() -> None:
    device = Device(RULE)
    assert _series(device, [0, 2], spo2_pct=90) == []
    assert _read(device, 1, spo2_pct=97) == []  # late, between the two low readings
    assert _read(device, 3, spo2_pct=90) == []  # only two in a row by device time
    assert _read(device, 4, spo2_pct=90) != []  # three in a row over two minutes


def test_a_late_abnormal_reading_completes_the_run() -> None:
    device = Device(RULE)
    assert _series(device, [0, 2], spo2_pct=90) == []
    (alert,) = _read(device, 1, spo2_pct=90)
    assert alert.ts == T0 + timedelta(minutes=1)


def test_old_readings_arriving_after_newer_normal_ones_do_not_alert() -> None:
    device = Device(RULE)
    assert _series(device, [10, 11, 12], spo2_pct=97) == []
    assert _series(device, [0, 1, 2, 3], spo2_pct=88) == []  # history: the present is normal


def test_a_redelivered_reading_counts_once() -> None:
    device = Device(RULE)
    event = device.event("vitals", T0, spo2_pct=90)
    assert [device.feed(event) for _ in range(3)] == [[], [], []]
    assert _read(device, 2, spo2_pct=90) == []  # two readings, not four


def test_count_or_duration_alone_can_be_configured() -> None:
    immediate = Device(RULE, {"vitals": {"min_readings": 1, "min_duration_min": 0}})
    assert _read(immediate, 0, spo2_pct=85) != []
    by_count = Device(RULE, {"vitals": {"min_readings": 2, "min_duration_min": 0}})
    assert _series(by_count, [0, 0.1], spo2_pct=85) != []


def test_state_stays_small_for_a_fast_sensor() -> None:
    device = Device(RULE)
    values = [96, 97, 93, 97] * 500  # one reading a second, flapping bands
    for i, value in enumerate(values):
        _read(device, i / 60, spo2_pct=value)
    assert len(device.state["spo2"]) <= 64 and len(device.state["seen"]) <= 16


def test_disabled() -> None:
    device = Device(RULE, {"vitals": {"enabled": False}})
    assert _series(device, [0, 1, 2, 3], spo2_pct=80) == []


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(-2, 2)), max_size=60))
def test_runs_stay_ordered_and_count_every_reading(readings: list[tuple[int, int]]) -> None:
    runs: list[list[Any]] = []
    for ts, band in readings:
        _insert(runs, float(ts), band)
    assert sum(run[3] for run in runs) == len(readings)
    assert all(run[0] <= run[1] for run in runs)
    for before, after in itertools.pairwise(runs):
        assert before[1] <= after[0] and before[2] != after[2]
    if readings:  # the last run ends at the newest reading
        newest = max(ts for ts, _ in readings)
        assert runs[-1][1] == newest
