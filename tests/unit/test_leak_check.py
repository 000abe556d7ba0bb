"""The check every async test runs on leaving: tasks of ours still running are a leak."""

from __future__ import annotations

import asyncio

import pytest

from tests import conftest


async def _forever() -> None:
    await asyncio.Event().wait()


async def _briefly() -> None:
    await asyncio.sleep(0.01)


async def test_a_task_left_running_is_reported_and_a_finished_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(conftest, "_LEAK_GRACE_S", 0.5)
    before = asyncio.all_tasks()
    leaked = asyncio.create_task(_forever(), name="leaked")
    finished = asyncio.create_task(_briefly(), name="finished")
    try:
        assert await conftest._tasks_left(before) == {leaked}
        assert finished.done()
    finally:
        leaked.cancel()
        await asyncio.gather(leaked, return_exceptions=True)
