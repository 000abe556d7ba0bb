"""The sign-in limit: failures per name and per address in a sliding window."""

from __future__ import annotations

import pytest

from api.throttle import LoginThrottle, TooManyAttempts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_name_is_locked_after_its_limit_until_the_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_name=3, per_address=100, window_s=60, clock=clock)
    for _ in range(3):
        throttle.check("li", "10.0.0.1")
        throttle.failed("li", "10.0.0.1")
        clock.now += 10  # failures at 1000, 1010, 1020
    with pytest.raises(TooManyAttempts) as refused:
        throttle.check("LI", "10.0.0.2")  # any case, any address
    assert refused.value.wait_s == pytest.approx(30)  # 1000 + 60 - 1030
    throttle.check("wang", "10.0.0.1")  # another name is not locked
    clock.now = 1060.5  # the first failure has left the window
    throttle.check("li", "10.0.0.1")


def test_an_address_spraying_names_is_locked() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_name=5, per_address=4, window_s=60, clock=clock)
    for n in range(4):
        throttle.failed(f"user{n}", "10.0.0.9")
    with pytest.raises(TooManyAttempts):
        throttle.check("someone-else", "10.0.0.9")
    throttle.check("someone-else", "10.0.0.10")


def test_expired_failures_are_forgotten() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_name=2, per_address=2, window_s=60, clock=clock)
    throttle.failed("li", "10.0.0.1")
    clock.now += 61
    assert throttle.wait_s("li", "10.0.0.1") == 0
    assert not throttle._failures  # nothing kept for what has expired
