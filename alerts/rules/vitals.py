"""Abnormal vitals: heart_rate_high / heart_rate_low, spo2_low, body_temp_high.

Each reading falls into a band of its vital (`vitals.<vital>` in the configuration, from
NEWS2): critical low, warning low, normal, warning high, critical high. An alert needs the
newest readings, by device time, to stay out of the normal band for `min_readings` readings
spanning `min_duration_min`, so a single dip does not alert; its severity is critical when
the critical band alone holds that long. Sustained critical readings escalate a warning.
The alert resolves itself once the newest readings have been normal for
`resolve_after_min`.

Readings are kept per vital as runs of one band, [first ts, last ts, band, count], in device
time order; a late reading is put where its device time belongs (a late normal reading can
break a run). Inside a run its exact neighbours are not kept, so splitting a run around a
late reading of another band estimates the counts either side from the times.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from alerts.rules._support import config
from alerts.rules.base import Context, Decision, RaiseAlert, ResolveAlert, Rule, Severity
from alerts.rules.config import Thresholds, VitalsConfig
from devices.events import Event, VitalsEvent

__all__ = ["RULE", "evaluate"]

_MAX_RUNS = 64  # per vital: a flapping sensor must not grow the state without bound
_MAX_SEEN = 16  # recent event ids, so a redelivered reading is not counted twice
_MARGIN_S = 600.0  # runs kept beyond the longest window that needs them


class _Vital(NamedTuple):
    name: str  # section of the configuration and of the state
    field: str  # of the vitals event
    label: str
    unit: str
    low_kind: str | None
    high_kind: str | None


_VITALS = (
    _Vital(
        "heart_rate", "heart_rate_bpm", "heart rate", "/min", "heart_rate_low", "heart_rate_high"
    ),
    _Vital("spo2", "spo2_pct", "SpO2", "%", "spo2_low", None),
    _Vital("body_temp", "body_temp_c", "body temperature", " °C", None, "body_temp_high"),
)


def evaluate(event: Event, state: dict[str, Any], ctx: Context) -> list[Decision]:
    cfg = config(ctx).vitals
    if not isinstance(event, VitalsEvent) or not cfg.enabled:
        return []
    seen: list[str] = state.setdefault("seen", [])
    if event.event_id in seen:
        return []  # redelivered: already counted
    seen[:] = [*seen, event.event_id][-_MAX_SEEN:]
    decisions: list[Decision] = []
    for vital in _VITALS:
        value = getattr(event, vital.field)
        if value is None:
            continue
        thresholds: Thresholds = getattr(cfg, vital.name)
        runs: list[list[Any]] = state.setdefault(vital.name, [])
        _insert(runs, event.ts.timestamp(), _band(value, thresholds))
        _prune(runs, cfg)
        open_: dict[str, str] = state.setdefault("open", {})
        for kind, sign in ((vital.low_kind, -1), (vital.high_kind, 1)):
            if kind is not None:
                decisions += _judge(kind, sign, runs, open_, cfg, event, vital, value)
    return decisions


def _band(value: float, t: Thresholds) -> int:
    """-2 critical low, -1 warning low, 0 normal, 1 warning high, 2 critical high."""
    if t.critical_low is not None and value <= t.critical_low:
        return -2
    if t.warning_low is not None and value <= t.warning_low:
        return -1
    if t.critical_high is not None and value >= t.critical_high:
        return 2
    if t.warning_high is not None and value >= t.warning_high:
        return 1
    return 0


def _insert(runs: list[list[Any]], ts: float, band: int) -> None:
    """Add one reading where its time belongs; neighbouring runs always differ in band."""
    i = len(runs)
    while i and runs[i - 1][0] > ts:
        i -= 1
    if i and ts <= runs[i - 1][1]:  # within the run that starts at or before it
        run = runs[i - 1]
        if run[2] == band:
            run[3] += 1
            return
        if run[0] < ts < run[1]:
            runs[i - 1 : i] = _split(run, ts, band)
            return
        if ts == run[0]:
            i -= 1  # at the run's first reading: goes before it
    before = runs[i - 1] if i else None
    after = runs[i] if i < len(runs) else None
    if before is not None and before[2] == band:
        before[1], before[3] = max(before[1], ts), before[3] + 1
    elif after is not None and after[2] == band:
        after[0], after[3] = min(after[0], ts), after[3] + 1
    else:
        runs.insert(i, [ts, ts, band, 1])


def _split(run: list[Any], ts: float, band: int) -> list[list[Any]]:
    first, last, old, count = run
    left = min(count - 1, max(1, round(count * (ts - first) / (last - first))))
    return [[first, ts, old, left], [ts, ts, band, 1], [ts, last, old, count - left]]


def _prune(runs: list[list[Any]], cfg: VitalsConfig) -> None:
    horizon = max(cfg.min_duration_min, cfg.resolve_after_min) * 60 + _MARGIN_S
    newest = runs[-1][1]
    keep = [run for run in runs if run[1] >= newest - horizon] or runs[-1:]
    runs[:] = keep[-_MAX_RUNS:]


def _suffix(runs: list[list[Any]], matches: Any) -> tuple[int, float | None]:
    """Count and first time of the newest readings that all satisfy `matches(band)`."""
    count, first = 0, None
    for run in reversed(runs):
        if not matches(run[2]):
            break
        count, first = count + run[3], run[0]
    return count, first


def _judge(
    kind: str,
    sign: int,
    runs: list[list[Any]],
    open_: dict[str, str],
    cfg: VitalsConfig,
    event: VitalsEvent,
    vital: _Vital,
    value: float,
) -> list[Decision]:
    """Raise (or escalate) `kind` when its band held long enough, resolve it when the
    readings were normal long enough. `sign` is the direction: -1 low, 1 high."""
    newest = runs[-1][1]
    abnormal = _suffix(runs, lambda band: band * sign > 0)
    critical = _suffix(runs, lambda band: band * sign == 2)
    if _held(critical, newest, cfg) and open_.get(kind) != "critical":
        severity: Severity = "critical"
        count, first = critical
    elif _held(abnormal, newest, cfg) and kind not in open_:
        severity = "warning"
        count, first = abnormal
    else:
        return _resolve_if_normal(kind, sign, runs, open_, cfg, event, vital)
    open_[kind] = severity
    minutes = (newest - (first or newest)) / 60
    summary = (
        f"{vital.label} {'low' if sign < 0 else 'high'}: {value:g}{vital.unit} "
        f"({count} readings over {minutes:.0f} min)"
    )
    return [RaiseAlert.for_event(event, kind, severity, summary)]


def _held(suffix: tuple[int, float | None], newest: float, cfg: VitalsConfig) -> bool:
    count, first = suffix
    return (
        first is not None
        and count >= cfg.min_readings
        and newest - first >= cfg.min_duration_min * 60
    )


def _resolve_if_normal(
    kind: str,
    sign: int,
    runs: list[list[Any]],
    open_: dict[str, str],
    cfg: VitalsConfig,
    event: VitalsEvent,
    vital: _Vital,
) -> list[Decision]:
    _, first = _suffix(runs, lambda band: band * sign <= 0)
    if kind not in open_ or first is None or runs[-1][1] - first < cfg.resolve_after_min * 60:
        return []
    del open_[kind]
    reason = f"{vital.label} normal again for {cfg.resolve_after_min:g} min"
    return [ResolveAlert(kind, event.device_id, event.ts, event.event_id, reason)]


RULE = Rule(name="vitals", evaluate=evaluate)
