"""A Ticker's health says when its clock has stopped: a round that never ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from plumbing.ticker import Ticker


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_a_round_that_never_ends_turns_the_ticker_unhealthy_until_it_ends() -> None:
    release, rounds = asyncio.Event(), []

    async def tick() -> None:
        rounds.append(time.monotonic())
        if len(rounds) == 3:
            await release.wait()  # a lock waited on forever, until released

    ticker = Ticker(name="t", tick=tick, interval=0.01, stall_after_s=0.2)
    async with ticker:
        await _until(lambda: len(rounds) == 3)
        assert ticker.health()["ok"]  # stuck, but not for long yet
        await _until(lambda: not ticker.health()["ok"])
        release.set()
        await _until(lambda: len(rounds) > 3 and ticker.health()["ok"])


async def test_a_ticker_that_keeps_ticking_stays_healthy() -> None:
    rounds: list[float] = []

    async def tick() -> None:
        rounds.append(time.monotonic())

    ticker = Ticker(name="t", tick=tick, interval=0.01, stall_after_s=0.5)
    async with ticker:
        await _until(lambda: len(rounds) > 60)  # past the stall window
        assert ticker.health()["ok"]
