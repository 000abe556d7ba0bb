"""The rule interface. One module per rule; each is pure, over plain data:

    evaluate(event, state, ctx) -> list[Decision]     for every event of a device
    tick(state, ctx) -> list[Decision]                 on the worker's timer (optional)

`state` is the rule's own dict for one device, kept by the worker that owns the device's
partition. It must stay JSON-serialisable (times as ISO strings or epoch seconds): the
worker stores it with the alerts it caused, so it survives restarts and rebalances.
`ctx.now` is the worker's clock, passed in so tests control it; rules judge by *device
time* (`event.ts`) and use `now` only for timers (a device that went silent sends nothing).
Rules never do I/O: the worker stores and publishes what they decide.

A decision's `key` makes it idempotent: the store applies a key once per alert kind, so a
replayed event (same event_id) or a timer firing twice for the same silence changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from devices.events import Event

__all__ = ["Context", "Decision", "RaiseAlert", "ResolveAlert", "Rule", "Severity"]

Severity = Literal["critical", "warning", "info"]


@dataclass(frozen=True)
class RaiseAlert:
    """Open an alert of `kind` for a device, or count a repeat on the one still open."""

    kind: str
    severity: Severity
    device_id: str
    ts: datetime  # device time of the evidence (the worker's clock for timers)
    key: str  # the triggering event's id, or a timer's own deterministic key
    summary: str
    lat: float | None = None
    lon: float | None = None

    @classmethod
    def for_event(cls, event: Event, kind: str, severity: Severity, summary: str,
                  lat: float | None = None, lon: float | None = None) -> RaiseAlert:  # fmt: skip
        return cls(kind, severity, event.device_id, event.ts, event.event_id, summary, lat, lon)


@dataclass(frozen=True)
class ResolveAlert:
    """Resolve the open (or acknowledged) alert of `kind` for a device, if there is one:
    the condition cleared. It stays in the history with `reason`."""

    kind: str
    device_id: str
    ts: datetime
    key: str
    reason: str  # e.g. "cancelled by wearer", "back inside the safe zone"


Decision = RaiseAlert | ResolveAlert


@dataclass(frozen=True)
class Context:
    now: datetime
    # The device's effective rule configuration (defaults merged with its resident's
    # overrides); each rule reads its own section. Empty until configuration exists.
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    name: str
    evaluate: Callable[[Event, dict[str, Any], Context], list[Decision]]
    tick: Callable[[dict[str, Any], Context], list[Decision]] | None = None
