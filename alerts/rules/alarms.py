"""SOS and fall: the events that always alert.

No filter applies here on purpose: no position needed, no age limit, no quiet hours. A
late, duplicated or out-of-order alarm still alerts; the store counts a redelivered event
once (by event id) and folds repeats into the open alert.
"""

from __future__ import annotations

from typing import Any

from alerts.rules import Context, Decision, RaiseAlert, Rule
from devices.events import Event, FallEvent, SosEvent

__all__ = ["RULE", "evaluate"]


def evaluate(event: Event, state: dict[str, Any], ctx: Context) -> list[Decision]:
    if isinstance(event, SosEvent):
        return [_raise(event, "sos", "SOS button pressed")]
    if isinstance(event, FallEvent) and not event.cancelled:
        confirmed = " (confirmed)" if event.confirmed else ""
        return [_raise(event, "fall", f"fall detected{confirmed}")]
    return []


def _raise(event: SosEvent | FallEvent, kind: str, summary: str) -> RaiseAlert:
    where = f" at {event.lat:.5f},{event.lon:.5f}" if event.lat is not None else " (no position)"
    return RaiseAlert.for_event(event, kind, "critical", summary + where, event.lat, event.lon)


RULE = Rule(name="alarms", evaluate=evaluate)
