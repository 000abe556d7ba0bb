"""Quiet hours: when a contact may be woken for what is not critical."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifier.policy import in_quiet_hours


def _contact(start: str | None, end: str | None, zone: str = "Asia/Shanghai") -> dict[str, Any]:
    return {
        "quiet_from": time.fromisoformat(start) if start else None,
        "quiet_to": time.fromisoformat(end) if end else None,
        "time_zone": zone,
    }


def _shanghai(hour: int, minute: int = 0, day: int = 4) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.mark.parametrize(
    ("local", "ends"),
    [
        ((23, 30), (5, 7)),  # across midnight: ends tomorrow morning
        ((3, 0), (4, 7)),  # after midnight: ends this morning
        ((22, 0), (5, 7)),  # the first minute is quiet
    ],
)
def test_night_quiet_hours_end_in_the_morning(
    local: tuple[int, int], ends: tuple[int, int]
) -> None:
    at = _shanghai(*local)
    end = in_quiet_hours(_contact("22:00", "07:00"), at)
    assert end is not None
    assert (end.day, end.hour, end.utcoffset().total_seconds()) == (ends[0], ends[1], 8 * 3600)  # type: ignore[union-attr]


@pytest.mark.parametrize("local", [(7, 0), (12, 0), (21, 59)])
def test_outside_quiet_hours_nothing_waits(local: tuple[int, int]) -> None:
    assert in_quiet_hours(_contact("22:00", "07:00"), _shanghai(*local)) is None


def test_quiet_hours_within_a_day_and_none_set() -> None:
    nap = _contact("12:00", "14:00")
    end = in_quiet_hours(nap, _shanghai(13, 0))
    assert end is not None and (end.day, end.hour) == (4, 14)
    assert in_quiet_hours(nap, _shanghai(14, 0)) is None
    assert in_quiet_hours(_contact(None, None), _shanghai(3, 0)) is None


def test_the_contacts_own_zone_decides() -> None:
    # 23:30 in Shanghai is 16:30 in Berlin: not quiet there.
    assert in_quiet_hours(_contact("22:00", "07:00", "Europe/Berlin"), _shanghai(23, 30)) is None
