"""Small helpers the rules share: times in state, local time windows, the configuration."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, date, datetime, timedelta

from alerts.rules.base import Context
from alerts.rules.config import RulesConfig, parse_window, rules_config

__all__ = ["active_seconds", "config", "in_window", "iso", "local_time", "parse_ts"]


def config(ctx: Context) -> RulesConfig:
    """The device's effective configuration (the defaults when `ctx.config` is empty)."""
    return rules_config(ctx.config)


def iso(ts: datetime) -> str:
    """A UTC time as state keeps it (and as timer keys spell it)."""
    return ts.astimezone(UTC).isoformat()


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def local_time(ts: datetime, tz: str) -> str:
    """A time for a summary, in the resident's time zone."""
    return ts.astimezone(_zone(tz)).strftime("%Y-%m-%d %H:%M")


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def in_window(ts: datetime, window: str, tz: str) -> bool:
    """Whether `ts` falls inside the local-time window (which may cross midnight)."""
    start, end = parse_window(window)
    local = ts.astimezone(_zone(tz))
    minute = local.hour * 60 + local.minute + local.second / 60
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def active_seconds(
    start: datetime, end: datetime, window: str, tz: str, limit: float | None = None
) -> float:
    """Seconds of [start, end) that fall inside the daily local-time window; stops counting
    once past `limit` (so a long silence costs a few days' arithmetic, not one per day)."""
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
