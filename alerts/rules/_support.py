"""Small helpers the rules share: times in state, local time windows, the configuration.

Date arithmetic here never overflows: ingest refuses device times before 2000, but state
stored earlier (and events read back from it) may hold times near year 1 or 9999, where
`ts + timedelta(...)` or `ts.astimezone(zone)` raise OverflowError and would stop a worker.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, date, datetime, timedelta, tzinfo

from alerts.rules.base import Context
from alerts.rules.config import RulesConfig, parse_window, rules_config

__all__ = ["active_seconds", "config", "in_window", "iso", "local_time", "parse_ts", "shift"]

_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)
# The span `active_seconds` walks day by day: wider than any time a rule counts, narrow
# enough that the walk and the local dates on both ends stay within datetime's years.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def config(ctx: Context) -> RulesConfig:
    """The device's effective configuration (the defaults when `ctx.config` is empty)."""
    return rules_config(ctx.config)


# Several rules write the same event's times into state: formatting them was ~9 % of the
# rules process at saturation (round 4 profile). Recent times are asked for again.
@functools.lru_cache(maxsize=4096)
def iso(ts: datetime) -> str:
    """A UTC time as state keeps it (and as timer keys spell it)."""
    return _in(ts, UTC).isoformat()


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def shift(ts: datetime, delta: timedelta) -> datetime:
    """`ts + delta`, held at the ends of datetime's range instead of overflowing."""
    try:
        return ts + delta
    except OverflowError:
        return _MAX if delta > timedelta(0) else _MIN


def local_time(ts: datetime, tz: str) -> str:
    """A time for a summary, in the resident's time zone."""
    return _in(ts, _zone(tz)).strftime("%Y-%m-%d %H:%M")


def _in(ts: datetime, zone: tzinfo) -> datetime:
    """`ts` in `zone`; as it is where that would leave datetime's years (1-9999)."""
    try:
        return ts.astimezone(zone)
    except OverflowError:
        return ts


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def in_window(ts: datetime, window: str, tz: str) -> bool:
    """Whether `ts` falls inside the local-time window (which may cross midnight)."""
    start, end = parse_window(window)
    local = _in(ts, _zone(tz))
    minute = local.hour * 60 + local.minute + local.second / 60
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def active_seconds(
    start: datetime, end: datetime, window: str, tz: str, limit: float | None = None
) -> float:
    """Seconds of [start, end) that fall inside the daily local-time window; stops counting
    once past `limit` (so a long silence costs a few days' arithmetic, not one per day)."""
    start, end = max(start, _EARLIEST), min(end, _LATEST)  # more than any limit counts
    if end <= start:
        return 0.0
    zone = _zone(tz)
    first, last = parse_window(window)
    day = start.astimezone(zone).date() - timedelta(days=1)  # a window from the day before
    total = 0.0
    while day <= end.astimezone(zone).date():
        opens = _local(day, first, zone)
        closes = _local(day if last > first else day + timedelta(days=1), last, zone)
        overlap = (min(end, closes) - max(start, opens)).total_seconds()
        total += max(overlap, 0.0)
        if limit is not None and total >= limit:
            break
        day += timedelta(days=1)
    return total


def _local(day: date, minutes: int, zone: zoneinfo.ZoneInfo) -> datetime:
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    return (midnight + timedelta(minutes=minutes)).astimezone(UTC)
