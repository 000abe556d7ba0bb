"""battery_low: at or below `battery.low_pct`; resolved at or above `resolve_pct` (the gap
keeps a reading that wobbles around the threshold from flapping), or when a reading rose
`charging_rise_pct` above the lowest one (events carry no charging flag: a rise is the
evidence). After such a charging resolution the battery is still low, so a reading that
keeps rising changes nothing; one that falls again (unplugged) is low again. Device time
orders the readings: a late one changes nothing.
"""

from __future__ import annotations

from typing import Any

from alerts.rules._support import config, iso, parse_ts
from alerts.rules.base import Context, Decision, RaiseAlert, ResolveAlert, Rule
from alerts.rules.config import BatteryConfig
from devices.events import BatteryEvent, Event

__all__ = ["RULE", "evaluate"]


def evaluate(event: Event, state: dict[str, Any], ctx: Context) -> list[Decision]:
    cfg = config(ctx).battery
    if not isinstance(event, BatteryEvent) or not cfg.enabled:
        return []
    if "last_ts" in state and event.ts <= parse_ts(state["last_ts"]):
        return []  # late or repeated
    state["last_ts"] = iso(event.ts)
    pct = event.battery_pct
    if "lowest" not in state:
        return _low(event, state, cfg)
    lowest = state["lowest"] = min(state["lowest"], pct)
    if pct >= cfg.resolve_pct:
        reason = f"battery at {pct:g}%"
    elif pct >= lowest + cfg.charging_rise_pct:
        reason = f"charging: battery up from {lowest:g}% to {pct:g}%"
        if pct <= cfg.low_pct:
            state["charging"] = pct  # still low, but on the charger: see _low
    else:
        return []
    del state["lowest"]
    return [ResolveAlert("battery_low", event.device_id, event.ts, event.event_id, reason)]


def _low(event: BatteryEvent, state: dict[str, Any], cfg: BatteryConfig) -> list[Decision]:
    """Raise when low, unless the battery is still rising since a charging resolution
    (without this, the next reading under low_pct would raise again while it charges)."""
    pct = event.battery_pct
    charging = state.pop("charging", None)
    if pct > cfg.low_pct:
        return []
    if charging is not None and pct >= charging:
        state["charging"] = pct
        return []
    state["lowest"] = pct
    summary = f"battery low: {pct:g}%"
    return [RaiseAlert.for_event(event, "battery_low", cfg.severity, summary)]


RULE = Rule(name="battery", evaluate=evaluate)
