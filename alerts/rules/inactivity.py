"""inactivity: no step-count increase and no motion for `inactivity.period_min`, counting
only the time inside the resident's active hours (a night's sleep does not count).

Nothing arrives when someone is inactive, so a timer judges, against the worker's clock.
The rule arms itself at a device's first `activity` event: a device that never reports
activity never alerts. While the device itself is silent the timer holds off: no news is
device_offline's alert, not evidence of inactivity. New activity resolves the alert.

Step counters are cumulative and reset (usually at midnight): a count below the previous
one is a new baseline, not activity. A steps reading older than the newest one is ignored
(it cannot be compared); a late event counts if it is newer than the last known activity.
"""

from __future__ import annotations

from typing import Any

from alerts.rules._support import active_seconds, config, iso, local_time, parse_ts
from alerts.rules.base import Context, Decision, RaiseAlert, ResolveAlert, Rule
from devices.events import ActivityEvent, Event

__all__ = ["RULE", "evaluate", "tick"]


def evaluate(event: Event, state: dict[str, Any], ctx: Context) -> list[Decision]:
    state["device"] = event.device_id
    if "last_heard" not in state or event.received_at > parse_ts(state["last_heard"]):
        state["last_heard"] = iso(event.received_at)
    if not isinstance(event, ActivityEvent):
        return []
    active = bool(event.motion) or _stepped(event, state)
    last = state.get("last_activity")
    if last is not None and (not active or event.ts <= parse_ts(last)):
        return []
    state["last_activity"] = iso(event.ts)  # the first activity event arms the rule
    if state.pop("raised", None) is None:
        return []
    reason = f"active again at {local_time(event.ts, config(ctx).resident.timezone)}"
    return [ResolveAlert("inactivity", event.device_id, event.ts, event.event_id, reason)]


def _stepped(event: ActivityEvent, state: dict[str, Any]) -> bool:
    if event.steps is None:
        return False
    previous = state.get("steps")  # [device time, count] of the newest reading
    if previous is not None and event.ts <= parse_ts(previous[0]):
        return False
    state["steps"] = [iso(event.ts), event.steps]
    return previous is not None and event.steps > previous[1]


def tick(state: dict[str, Any], ctx: Context) -> list[Decision]:
    cfg = config(ctx)
    if not cfg.inactivity.enabled or "last_activity" not in state or "raised" in state:
        return []
    silent_s = (ctx.now - parse_ts(state["last_heard"])).total_seconds()
    if silent_s >= cfg.device_offline.silence_s:
        return []
    period_s = cfg.inactivity.period_min * 60
    since = parse_ts(state["last_activity"])
    hours = cfg.resident.active_hours
    if active_seconds(since, ctx.now, hours, cfg.resident.timezone, period_s) < period_s:
        return []
    key = f"inactivity:{state['device']}:{state['last_activity']}"
    state["raised"] = key
    summary = (
        f"no activity since {local_time(since, cfg.resident.timezone)} "
        f"({cfg.inactivity.period_min / 60:g} h within active hours {hours})"
    )
    return [
        RaiseAlert("inactivity", cfg.inactivity.severity, state["device"], ctx.now, key, summary)
    ]


RULE = Rule(name="inactivity", evaluate=evaluate, tick=tick)
