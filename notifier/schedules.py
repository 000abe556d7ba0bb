"""Who is on call in a schedule at an instant: pure functions over a schedule as
notifier/schedule_store.py loads it (no I/O, no clock: the instant is an argument).

A schedule has rotations (layers) and overrides:

    {"rotations": [{"start": datetime, "shift_s": int, "contacts": [contact_id, ...]}],
     "overrides": [{"contact_id": int, "starts_at": datetime, "ends_at": datetime}], ...}

In each rotation the contacts take turns of `shift_s` seconds, in order, from `start` (the
first contact's first turn); everyone on turn in any rotation is on call. An override
replaces the rotations' people entirely for [starts_at, ends_at); when several overlap,
all their contacts are on call.

Shifts are fixed lengths of seconds counted from an instant, not calendar weeks: a weekly
hand-off at 08:00 on Mondays stays at 08:00 in Asia/Shanghai (no daylight saving), but in
a zone with daylight saving the local hand-off time moves by an hour when the clocks
change. Every datetime here must be timezone-aware (ValueError for a naive one); they are
compared as instants in UTC (Python compares two datetimes sharing one tzinfo by their wall
clocks, which is wrong across a clock change).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["active_overrides", "on_call", "on_turn"]


def on_turn(
    rotation_start: datetime, shift_s: int, contacts: Sequence[int], at: datetime
) -> int | None:
    """The contact on turn at `at`: turn floor((at - start) / shift) mod len(contacts);
    None before the start or without contacts. ValueError for a shift under a second or
    a naive datetime."""
    if shift_s < 1:
        raise ValueError(f"shift_s must be at least 1 second, not {shift_s}")
    since = _utc(at) - _utc(rotation_start)
    if not contacts or since < timedelta(0):
        return None
    # timedelta // timedelta is exact integer arithmetic (microseconds): no float drift
    # however many turns have passed.
    turn = since // timedelta(seconds=shift_s)
    return contacts[turn % len(contacts)]


def active_overrides(
    overrides: Iterable[Mapping[str, Any]], at: datetime
) -> list[Mapping[str, Any]]:
    """The overrides whose interval [starts_at, ends_at) holds `at`, by start."""
    now = _utc(at)
    active = [o for o in overrides if _utc(o["starts_at"]) <= now < _utc(o["ends_at"])]
    return sorted(active, key=lambda o: (_utc(o["starts_at"]), o.get("override_id") or 0))


def on_call(schedule: Mapping[str, Any], at: datetime) -> list[int]:
    """The contacts on call at `at`, each once: those of the overrides holding `at` (by
    their start) if any, else the one on turn in each rotation (in rotation order)."""
    overriding = active_overrides(schedule.get("overrides", ()), at)
    if overriding:
        return _unique(o["contact_id"] for o in overriding)
    turns = (
        on_turn(r["start"], r["shift_s"], r["contacts"], at) for r in schedule.get("rotations", ())
    )
    return _unique(c for c in turns if c is not None)


def _utc(value: datetime) -> datetime:
    if value.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime, not {value.isoformat()}")
    return value.astimezone(UTC)


def _unique(contacts: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(contacts))
