"""The rule interface. One module per rule; each is a pure function over plain data:

    evaluate(event, state, now) -> list[Decision]

`state` is the rule's own per-device dict, kept by the worker that owns the device's
partition; `now` is the worker's clock, passed in so tests can control it. Rules never do
I/O: the worker stores and publishes what they decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devices.events import Event

__all__ = ["RULES", "Decision", "RaiseAlert", "Rule", "Severity"]

Severity = str  # "critical" | "warning" | "info" (the alerts table checks it)


@dataclass(frozen=True)
class RaiseAlert:
    """Open an alert of `kind` for the event's device, or count a repeat on the open one."""

    kind: str
    severity: Severity
    event: Event
    summary: str
    lat: float | None = None
    lon: float | None = None


Decision = RaiseAlert  # later: ResolveAlert, ... (a union)


@dataclass(frozen=True)
class Rule:
    name: str
    evaluate: Callable[[Event, dict[str, Any], datetime], list[Decision]]


def _registry() -> tuple[Rule, ...]:
    from alerts.rules import alarms

    return (alarms.RULE,)


RULES: tuple[Rule, ...] = _registry()
