"""SOS and fall: the events that always alert.

No filter applies here on purpose: no position needed, no age limit, no quiet hours. A
late, duplicated or out-of-order alarm still alerts; the store counts a redelivered event
once (by event id) and folds repeats into the open alert.

A wearer may cancel a fall the device reported (a `fall` event with `cancelled`): a cancel
up to `alarms.fall_cancel_window_s` after the fall, by device time, resolves the fall alert
"cancelled by wearer". The fall still alerts first, even when the cancel arrived before it.
A cancel resolves nothing while another fall of the last hours went uncancelled: those
fold into the same open alert, and the alert must stay for them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from alerts.rules._support import config, iso, parse_ts, shift
from alerts.rules.base import Context, Decision, RaiseAlert, ResolveAlert, Rule
from devices.events import Event, FallEvent, SosEvent

__all__ = ["RULE", "evaluate", "raised_by"]

# How long an uncancelled fall keeps a later cancel from resolving the (shared) alert, and
# how long a cancel waits for a fall delivered after it. Counted in device time.
_HOLD = timedelta(hours=6)
_MAX_KEPT = 16


def raised_by(event: Event) -> RaiseAlert | None:
    """The alert an alarm event raises, whatever came before it: no state needed (the
    alarm lane raises from this alone, ahead of the rules worker; see alerts/alarm_lane.py).
    None for other events and for a fall's cancel."""
    if isinstance(event, SosEvent):
        return _raise(event, "sos", "SOS button pressed")
    if isinstance(event, FallEvent) and not event.cancelled:
        confirmed = " (confirmed)" if event.confirmed else ""
        return _raise(event, "fall", f"fall detected{confirmed}")
    return None


def evaluate(event: Event, state: dict[str, Any], ctx: Context) -> list[Decision]:
    raised = raised_by(event)
    if not isinstance(event, FallEvent):
        return [raised] if raised else []  # an SOS, or not an alarm
    window = timedelta(seconds=config(ctx).alarms.fall_cancel_window_s)
    newest = max(event.ts, parse_ts(state.get("newest", iso(event.ts))))
    state["newest"] = iso(newest)
    # [device time, event id, whether cancelled (falls) / used (cancels)]
    falls: list[list[Any]] = _recent(state.get("falls", []), newest)
    cancels: list[list[Any]] = _recent(state.get("cancels", []), newest)
    state["falls"], state["cancels"] = falls, cancels
    if raised is None:
        return _cancel(event, falls, cancels, window)
    return _fall(event, raised, falls, cancels, window)


def _fall(
    event: FallEvent,
    raised: RaiseAlert,
    falls: list[list[Any]],
    cancels: list[list[Any]],
    window: timedelta,
) -> list[Decision]:
    decisions: list[Decision] = [raised]
    if any(f[1] == event.event_id for f in falls):
        return decisions  # redelivered: the store counts its raise once
    cancel = next(
        (c for c in cancels if not c[2] and _within(event.ts, parse_ts(c[0]), window)), None
    )
    falls.append([iso(event.ts), event.event_id, cancel is not None])
    if cancel is None:
        return decisions
    cancel[2] = True  # the cancel came first (out of order): this fall is cancelled
    if not _uncancelled(falls):
        decisions.append(_resolve(event, parse_ts(cancel[0]), cancel[1]))
    return decisions


def _cancel(
    event: FallEvent, falls: list[list[Any]], cancels: list[list[Any]], window: timedelta
) -> list[Decision]:
    if any(c[1] == event.event_id for c in cancels):
        return []  # redelivered
    matched = [f for f in _uncancelled(falls) if _within(parse_ts(f[0]), event.ts, window)]
    cancels.append([iso(event.ts), event.event_id, bool(matched)])
    if not matched:
        return []  # too late, or its fall is still on its way
    max(matched, key=lambda f: parse_ts(f[0]))[2] = True
    if _uncancelled(falls):
        return []  # another fall went uncancelled: the alert stays for it
    return [_resolve(event, event.ts, event.event_id)]


def _uncancelled(falls: list[list[Any]]) -> list[list[Any]]:
    return [f for f in falls if not f[2]]


def _within(fall: datetime, cancel: datetime, window: timedelta) -> bool:
    return fall <= cancel <= shift(fall, window)


def _recent(entries: list[list[Any]], newest: datetime) -> list[list[Any]]:
    oldest = shift(newest, -_HOLD)
    return [e for e in entries if parse_ts(e[0]) >= oldest][-_MAX_KEPT:]


def _resolve(event: FallEvent, ts: datetime, key: str) -> ResolveAlert:
    return ResolveAlert("fall", event.device_id, ts, key, "cancelled by wearer")


def _raise(event: SosEvent | FallEvent, kind: str, summary: str) -> RaiseAlert:
    where = f" at {event.lat:.5f},{event.lon:.5f}" if event.lat is not None else " (no position)"
    # The operator should know that the time (or the position) is carewatch's best guess.
    dropped = f"; invalid data dropped: {', '.join(event.salvaged)}" if event.salvaged else ""
    summary += where + dropped
    return RaiseAlert.for_event(event, kind, "critical", summary, event.lat, event.lon)


RULE = Rule(name="alarms", evaluate=evaluate)
