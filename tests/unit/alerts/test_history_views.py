"""Chart buckets: never more than max_points of them, whatever the range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from alerts.history_views import bucket_width

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_an_hour_in_50_points_is_72_second_buckets() -> None:
    assert bucket_width(T0, T0 + timedelta(hours=1), 50) == timedelta(seconds=72)


def test_a_bucket_is_at_least_a_second() -> None:
    assert bucket_width(T0, T0 + timedelta(seconds=3), 500) == timedelta(seconds=1)


@given(span_s=st.integers(1, 92 * 86400), max_points=st.integers(1, 5000))
def test_the_buckets_of_a_range_are_at_most_max_points(span_s: int, max_points: int) -> None:
    width = bucket_width(T0, T0 + timedelta(seconds=span_s), max_points)
    buckets = -(-span_s // int(width.total_seconds()))  # date_bin from `since`: ceil
    assert width.total_seconds() == int(width.total_seconds())
    assert 1 <= buckets <= max_points
