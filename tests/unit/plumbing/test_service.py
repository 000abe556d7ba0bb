"""A long-lived process serves with Python's cycle collector tuned (plumbing/service.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from plumbing.service import YOUNG_THRESHOLD, Running, run_service
from plumbing.settings import Settings


@pytest.fixture
def as_it_was() -> Iterator[None]:
    """This test process's collector and logging as they were, afterwards."""
    threshold = gc.get_threshold()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_service_serves_with_the_imports_frozen_and_young_collections_rarer(
    as_it_was: None, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    async def build(settings: Settings, stack: AsyncExitStack) -> Running:
        seen["threshold"] = gc.get_threshold()
        seen["frozen"] = gc.get_freeze_count()
        finished = asyncio.get_running_loop().create_future()
        finished.set_result(None)  # ends the service at once
        return Running(health=lambda: {"ok": True}, watch=[finished])

    run_service("test", Settings(data_dir=tmp_path), build)

    assert seen["threshold"][0] == YOUNG_THRESHOLD
    assert seen["frozen"] > 10_000  # the modules, classes and functions imported so far
