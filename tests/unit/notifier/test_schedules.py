"""Who is on call: the turn arithmetic of a rotation, several rotations as layers, and
overrides that replace the rotations' people for their interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.schedules import active_overrides, on_call, on_turn

SHANGHAI = timezone(timedelta(hours=8))
WEEK = 7 * 86400
# Monday 2026-01-05, 08:00 in Shanghai: the weekly hand-off.
MONDAY = datetime(2026, 1, 5, 8, tzinfo=SHANGHAI)


def _rotation(contacts: list[int], start: datetime = MONDAY, shift_s: int = WEEK) -> dict[str, Any]:
    return {"start": start, "shift_s": shift_s, "contacts": contacts}


def _override(
    contact_id: int, starts_at: datetime, ends_at: datetime, oid: int = 0
) -> dict[str, Any]:
    return {
        "override_id": oid,
        "contact_id": contact_id,
        "starts_at": starts_at,
        "ends_at": ends_at,
    }


def _schedule(
    rotations: list[dict[str, Any]], overrides: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"schedule_id": 1, "rotations": rotations, "overrides": overrides or []}


# -- one rotation --------------------------------------------------------------------------


def test_nobody_is_on_turn_before_the_start_or_without_contacts() -> None:
    assert on_turn(MONDAY, WEEK, [1, 2, 3], MONDAY - timedelta(microseconds=1)) is None
    assert on_turn(MONDAY, WEEK, [1, 2, 3], MONDAY - timedelta(days=400)) is None
    assert on_turn(MONDAY, WEEK, [], MONDAY + timedelta(days=1)) is None


@pytest.mark.parametrize(
    ("after", "who"),
    [
        (timedelta(0), 1),  # the start itself: the first turn
        (timedelta(seconds=WEEK) - timedelta(microseconds=1), 1),  # the last instant of it
        (timedelta(seconds=WEEK), 2),  # exactly at the hand-off: the next one
        (timedelta(seconds=2 * WEEK), 3),
        (timedelta(seconds=3 * WEEK), 1),  # round again
        (timedelta(weeks=52 * 10 + 1), 3),  # ten years on: 521 turns, 521 % 3 == 2
    ],
)
def test_turns_follow_the_order_and_hand_off_exactly_on_time(after: timedelta, who: int) -> None:
    assert on_turn(MONDAY, WEEK, [1, 2, 3], MONDAY + after) == who


def test_the_instant_may_be_given_in_any_offset() -> None:
    # Monday 00:00 UTC is 08:00 in Shanghai: the hand-off instant, whatever the notation.
    handoff = datetime(2026, 1, 12, 0, tzinfo=UTC)
    assert on_turn(MONDAY, WEEK, [1, 2], handoff) == 2
    assert on_turn(MONDAY, WEEK, [1, 2], handoff - timedelta(seconds=1)) == 1


def test_one_participant_is_always_on_turn_after_the_start() -> None:
    for weeks in (0, 1, 7, 500):
        assert on_turn(MONDAY, WEEK, [42], MONDAY + timedelta(weeks=weeks, hours=3)) == 42


def test_shifts_are_fixed_seconds_not_calendar_days() -> None:
    # A daily shift across Europe's spring clock change: 24 h later is 09:00 local, not 08:00
    # (both datetimes share one tzinfo, which Python would compare by their wall clocks).
    paris = ZoneInfo("Europe/Paris")
    start = datetime(2026, 3, 28, 8, tzinfo=paris)
    assert on_turn(start, 86400, [1, 2], datetime(2026, 3, 29, 8, 30, tzinfo=paris)) == 1
    assert on_turn(start, 86400, [1, 2], datetime(2026, 3, 29, 9, 0, tzinfo=paris)) == 2


def test_a_shift_under_a_second_or_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="shift_s"):
        on_turn(MONDAY, 0, [1], MONDAY)
    with pytest.raises(ValueError, match="timezone-aware"):
        on_turn(MONDAY, WEEK, [1], datetime(2026, 1, 5, 8))
    with pytest.raises(ValueError, match="timezone-aware"):
        on_call(_schedule([], [_override(1, MONDAY, MONDAY + timedelta(1))]), datetime(2026, 1, 5))


# -- schedules -----------------------------------------------------------------------------


def test_everyone_on_turn_in_any_rotation_is_on_call() -> None:
    daily = _rotation([7, 8], start=MONDAY + timedelta(hours=12), shift_s=43200)
    schedule = _schedule([_rotation([1, 2, 3]), daily])
    assert on_call(schedule, MONDAY) == [1]  # the second has not started
    assert on_call(schedule, MONDAY + timedelta(hours=12)) == [1, 7]
    assert on_call(schedule, MONDAY + timedelta(days=1)) == [1, 8]
    assert on_call(schedule, MONDAY + timedelta(weeks=1, hours=12)) == [2, 7]
    assert on_call(_schedule([]), MONDAY) == []


def test_someone_on_turn_in_two_rotations_is_named_once() -> None:
    schedule = _schedule([_rotation([1, 2]), _rotation([3, 1], start=MONDAY - timedelta(weeks=1))])
    assert on_call(schedule, MONDAY) == [1]
    assert on_call(schedule, MONDAY + timedelta(weeks=1)) == [2, 3]


def test_an_override_replaces_the_rotations_people_for_its_interval() -> None:
    holiday = _override(9, MONDAY + timedelta(days=2), MONDAY + timedelta(days=4))
    schedule = _schedule([_rotation([1, 2]), _rotation([3])], [holiday])
    assert on_call(schedule, MONDAY + timedelta(days=2) - timedelta(microseconds=1)) == [1, 3]
    assert on_call(schedule, MONDAY + timedelta(days=2)) == [9]  # starts_at: included
    assert on_call(schedule, MONDAY + timedelta(days=3)) == [9]
    assert on_call(schedule, MONDAY + timedelta(days=4)) == [1, 3]  # ends_at: excluded


def test_overlapping_overrides_put_all_their_people_on_call() -> None:
    first = _override(9, MONDAY, MONDAY + timedelta(days=2), oid=1)
    second = _override(8, MONDAY + timedelta(days=1), MONDAY + timedelta(days=3), oid=2)
    twice = _override(9, MONDAY + timedelta(hours=30), MONDAY + timedelta(hours=31), oid=3)
    schedule = _schedule([_rotation([1])], [second, twice, first])
    assert on_call(schedule, MONDAY + timedelta(hours=12)) == [9]
    assert on_call(schedule, MONDAY + timedelta(hours=30)) == [9, 8]  # by start, each once
    assert on_call(schedule, MONDAY + timedelta(days=2, hours=12)) == [8]
    assert on_call(schedule, MONDAY + timedelta(days=3)) == [1]
    assert [
        o["override_id"]
        for o in active_overrides([second, twice, first], MONDAY + timedelta(hours=30))
    ] == [1, 2, 3]


def test_an_override_before_the_rotations_start_still_counts() -> None:
    early = _override(5, MONDAY - timedelta(days=1), MONDAY + timedelta(hours=1))
    schedule = _schedule([_rotation([1])], [early])
    assert on_call(schedule, MONDAY - timedelta(hours=1)) == [5]
    assert on_call(schedule, MONDAY + timedelta(hours=1)) == [1]


# -- properties ----------------------------------------------------------------------------

_instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
_rotations = st.lists(
    st.builds(
        _rotation,
        st.lists(st.integers(1, 30), min_size=1, max_size=8),
        start=_instants,
        shift_s=st.integers(3600, 31 * 86400),
    ),
    min_size=1,
    max_size=4,
)


@given(rotations=_rotations, at=_instants)
def test_without_overrides_each_started_rotation_puts_exactly_one_on_call(
    rotations: list[dict[str, Any]], at: datetime
) -> None:
    found = on_call(_schedule(rotations), at)
    started = [r for r in rotations if r["start"] <= at]
    turns = [on_turn(r["start"], r["shift_s"], r["contacts"], at) for r in started]
    assert all(t is not None and t in r["contacts"] for t, r in zip(turns, started, strict=True))
    assert found == list(dict.fromkeys(turns))  # one per rotation, each person once
    assert set(found) <= {c for r in rotations for c in r["contacts"]}


@given(
    rotations=_rotations,
    at=_instants,
    overrides=st.lists(
        st.tuples(st.integers(100, 110), _instants, st.integers(1, 10 * 86400)), max_size=5
    ),
)
def test_on_call_is_always_among_the_participants(
    rotations: list[dict[str, Any]], at: datetime, overrides: list[tuple[int, datetime, int]]
) -> None:
    given_overrides = [
        _override(c, start, start + timedelta(seconds=length), oid=i)
        for i, (c, start, length) in enumerate(overrides)
    ]
    found = on_call(_schedule(rotations, given_overrides), at)
    overriding = {o["contact_id"] for o in given_overrides if o["starts_at"] <= at < o["ends_at"]}
    assert len(found) == len(set(found))
    if overriding:
        assert set(found) == overriding
    else:
        assert set(found) <= {c for r in rotations for c in r["contacts"]}
        assert len(found) <= len(rotations)
