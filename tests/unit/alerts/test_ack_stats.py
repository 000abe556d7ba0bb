"""The centre's shifts for the acknowledgement statistics: local start times, across
midnight and through a daylight-saving change."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from alerts.ack_stats import parse_shift_starts, shifts_between


def test_shift_starts_are_local_times_in_order() -> None:
    assert parse_shift_starts("08:00, 16:00,00:00") == (time(0), time(8), time(16))
    for bad in ("", "8", "25:00", "08:00,", "08:00+08:00"):
        with pytest.raises(ValueError, match="shift starts"):
            parse_shift_starts(bad)


def test_shifts_cover_the_window_in_the_centres_time() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    since = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    until = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # 17:00
    shifts = shifts_between(since, until, zone, parse_shift_starts("08:00,16:00,00:00"))
    assert [s.label for s in shifts] == ["2026-03-01 08:00-16:00", "2026-03-01 16:00-00:00"]
    assert shifts[0].start == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert shifts[1].end == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)


def test_a_shift_across_the_clock_change_is_an_hour_shorter() -> None:
    zone = ZoneInfo("Europe/Berlin")  # clocks go from 02:00 to 03:00 on 2026-03-29
    since = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)  # 22:00 local
    until = datetime(2026, 3, 29, 3, 0, tzinfo=UTC)  # 05:00 local, summer time
    (night,) = shifts_between(since, until, zone, parse_shift_starts("22:00,06:00"))
    assert night.label == "2026-03-28 22:00-06:00"
    assert night.end.astimezone(UTC) - night.start.astimezone(UTC) == (
        datetime(2026, 3, 29, 4, tzinfo=UTC) - datetime(2026, 3, 28, 21, tzinfo=UTC)
    )
