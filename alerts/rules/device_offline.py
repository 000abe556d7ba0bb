"""device_offline: nothing heard from a device for max(3 x its heartbeat interval, 10 min).

"Heard" is carewatch's receive time (`received_at`), not the device's clock: a device whose
clock is wrong is still online. The timer compares it with the worker's clock. The alert's
key names the silence (device and last receive time), so a timer that fires again, or a
worker that restarts and replays, raises it once. Any event received after the silence
began resolves it.
"""

from __future__ import annotations

from typing import Any

from alerts.rules._support import config, iso, local_time, parse_ts
from alerts.rules.base import Context, Decision, RaiseAlert, ResolveAlert, Rule
from devices.events import Event

__all__ = ["RULE", "evaluate", "tick"]


def evaluate(event: Event, state: dict[str, Any], ctx: Context) -> list[Decision]:
    state["device"] = event.device_id
    if "last_heard" in state and event.received_at <= parse_ts(state["last_heard"]):
        return []  # received before the newest one we know: a replay, not news
    state["last_heard"] = iso(event.received_at)
    if state.pop("raised", None) is None:
        return []
    reason = "device heard from again"
    return [ResolveAlert("device_offline", event.device_id, event.ts, event.event_id, reason)]


def tick(state: dict[str, Any], ctx: Context) -> list[Decision]:
    cfg = config(ctx)
    if not cfg.device_offline.enabled or "last_heard" not in state or "raised" in state:
        return []
    last_heard = parse_ts(state["last_heard"])
    silent_s = (ctx.now - last_heard).total_seconds()
    if silent_s < cfg.device_offline.silence_s:
        return []
    key = f"offline:{state['device']}:{state['last_heard']}"
    state["raised"] = key
    since = local_time(last_heard, cfg.resident.timezone)
    summary = f"nothing heard from the device since {since} ({silent_s / 60:.0f} min)"
    return [
        RaiseAlert(
            "device_offline", cfg.device_offline.severity, state["device"], ctx.now, key, summary
        )
    ]


RULE = Rule(name="device_offline", evaluate=evaluate, tick=tick)
