"""A background loop that dies of an unexpected exception is seen (log, metric, health) and
comes back: the registry cache and the rule configuration cannot freeze silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from alerts.resident_config import ResidentConfigs
from carewatch.embedded import EmbeddedStack
from ingest.directory import DeviceDirectory
from plumbing.db import connect_pool
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


def _crashes(component: str, task: str) -> float:
    labels = {"component": component, "task": task}
    return REGISTRY.get_sample_value("carewatch_task_crashes_total", labels) or 0.0


class _FailsOnce:
    """Wraps a coroutine function: the first call raises, the later ones run it."""

    def __init__(self, real: Callable[[], Awaitable[None]]) -> None:
        self.real = real
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("injected crash")
        await self.real()


async def _crash_and_recover(
    component: Any, method: str, task: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = _crashes(component.name, task)
    injected = _FailsOnce(getattr(component, method))
    setattr(component, method, injected)
    with caplog.at_level(logging.ERROR, logger="plumbing.component"):
        await eventually(lambda: asyncio.sleep(0, _crashes(component.name, task) > before))
        seen = component.health()
        await eventually(lambda: asyncio.sleep(0, injected.calls >= 2))  # runs again
    assert any(
        r.getMessage().startswith("task crashed") and getattr(r, "task", None) == task
        for r in caplog.records
    )
    assert seen["task_crashes"][task]["crashes"] == 1
    assert "injected crash" in seen["task_crashes"][task]["last_error"]
    await eventually(lambda: asyncio.sleep(0, component.health()["ok"]))


async def test_the_registry_cache_refresh_survives_a_crash(
    stack: EmbeddedStack, caplog: pytest.LogCaptureFixture
) -> None:
    async with DeviceDirectory(database_url=stack.database_url, refresh_s=0.2) as directory:
        await _crash_and_recover(directory, "_reload_all", "refresh", caplog)


async def test_the_rule_configuration_refresh_survives_a_crash(
    stack: EmbeddedStack, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await connect_pool(stack.database_url)
    try:
        async with ResidentConfigs(pool=pool, refresh_s=0.1) as configs:
            await _crash_and_recover(configs, "load", "refresh", caplog)
    finally:
        await pool.close()
