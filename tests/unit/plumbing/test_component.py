"""The supervised component: no background task can die silently."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY

from plumbing.backoff import Backoff
from plumbing.component import Component


def _crashes(component: str, task: str) -> float:
    labels = {"component": component, "task": task}
    return REGISTRY.get_sample_value("carewatch_task_crashes_total", labels) or 0.0


class _Flaky(Component):
    """A loop that raises on its first `failures` runs, then counts ticks."""

    def __init__(self, *, name: str, failures: int, restart: bool) -> None:
        super().__init__(name=name)
        self.failures = failures
        self.restart = restart
        self.ticks = 0
        self.closed = 0
        self.ticked = asyncio.Event()

    async def _open(self) -> None:
        self.supervise("loop", self._loop, restart=self.restart)

    async def _close(self) -> None:
        self.closed += 1

    async def _loop(self) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("injected")
        while True:
            self.ticks += 1
            self.ticked.set()
            await asyncio.sleep(0.01)


async def test_a_restartable_task_that_crashes_is_logged_counted_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = _crashes("flaky-restart", "loop")
    with caplog.at_level(logging.ERROR, logger="plumbing.component"):
        async with _Flaky(name="flaky-restart", failures=1, restart=True) as flaky:
            await asyncio.wait_for(flaky.ticked.wait(), 5)
            health = flaky.health()
            assert not flaky.done.done()
    assert _crashes("flaky-restart", "loop") == before + 1
    assert health["ok"] is True
    assert health["task_crashes"]["loop"]["crashes"] == 1
    assert "injected" in health["task_crashes"]["loop"]["last_error"]
    assert any(r.getMessage().startswith("task crashed") for r in caplog.records)


async def test_a_task_not_allowed_to_restart_fails_the_component_loudly() -> None:
    flaky = _Flaky(name="flaky-fatal", failures=1, restart=False)
    await flaky.start()
    with pytest.raises(RuntimeError, match="injected"):
        await asyncio.wait_for(flaky.done, 5)
    assert flaky.health()["ok"] is False
    await flaky.stop()
    assert flaky.ticks == 0


async def test_stop_is_idempotent_and_ends_every_task() -> None:
    flaky = _Flaky(name="flaky-stop", failures=0, restart=True)
    await flaky.start()
    await flaky.start()  # a second start changes nothing
    await asyncio.wait_for(flaky.ticked.wait(), 5)
    await flaky.stop()
    await flaky.stop()
    assert flaky.closed == 1
    assert flaky.done.done() and flaky.done.exception() is None
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("flaky-stop:")]


async def test_a_failed_start_closes_what_it_opened() -> None:
    class _Broken(_Flaky):
        async def _open(self) -> None:
            await super()._open()
            raise OSError("cannot connect")

    broken = _Broken(name="broken", failures=0, restart=True)
    with pytest.raises(OSError):
        await broken.start()
    assert broken.closed == 1
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("broken:")]


def test_backoff_grows_with_full_jitter_up_to_its_cap_and_resets() -> None:
    ceilings: list[float] = []
    backoff = Backoff(first=0.5, cap=3.0, draw=lambda low, high: ceilings.append(high) or high)
    delays = [backoff.next_delay() for _ in range(5)]
    assert ceilings == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert delays == ceilings
    backoff.reset()
    assert backoff.next_delay() == 0.5
    with pytest.raises(ValueError):
        Backoff(first=0, cap=1)
