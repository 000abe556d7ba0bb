"""not_worn: the device was taken off (a `worn` event with worn = false) and not put back
for longer than `worn.removed_min`, counting only time inside the resident's active hours
(a watch on the night-stand at night is fine). A timer judges, against the worker's clock;
the alert's key names the removal, so it is raised once. Worn again resolves it. Device
time orders the worn events: a late one changes nothing.
"""

from __future__ import annotations

from typing import Any

from alerts.rules._support import active_seconds, config, iso, local_time, parse_ts
from alerts.rules.base import Context, Decision, RaiseAlert, ResolveAlert, Rule
from devices.events import Event, WornEvent

__all__ = ["RULE", "evaluate", "tick"]


def evaluate(event: Event, state: dict[str, Any], ctx: Context) -> list[Decision]:
    state["device"] = event.device_id
    if not isinstance(event, WornEvent):
        return []
    if "last_ts" in state and event.ts <= parse_ts(state["last_ts"]):
        return []  # late or repeated
    state["last_ts"] = iso(event.ts)
    if not event.worn:
        state.setdefault("removed_since", iso(event.ts))
        return []
    state.pop("removed_since", None)
    if state.pop("raised", None) is None:
        return []
    return [ResolveAlert("not_worn", event.device_id, event.ts, event.event_id, "worn again")]


def tick(state: dict[str, Any], ctx: Context) -> list[Decision]:
    cfg = config(ctx)
    if not cfg.worn.enabled or "removed_since" not in state or "raised" in state:
        return []
    since = parse_ts(state["removed_since"])
    limit_s = cfg.worn.removed_min * 60
    hours, tz = cfg.resident.active_hours, cfg.resident.timezone
    if active_seconds(since, ctx.now, hours, tz, limit_s) < limit_s:
        return []
    key = f"not_worn:{state['device']}:{state['removed_since']}"
    state["raised"] = key
    summary = f"device taken off since {local_time(since, tz)}"
    return [RaiseAlert("not_worn", cfg.worn.severity, state["device"], ctx.now, key, summary)]


RULE = Rule(name="worn", evaluate=evaluate, tick=tick)
