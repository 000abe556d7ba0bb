"""Settings and checks shared by every test."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import settings

# CI runs the same examples every time (a red build must be reproducible, and the
# machine's speed must not fail a test by deadline); developers' runs keep exploring new
# ones, and what they find goes into the example tables.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


# A test that leaves an asyncio task running has lost track of something it started (a
# component not stopped, a background task nobody owns); in production that is a silent
# leak. Tasks get a moment to finish (a component's last callbacks), then the test fails.
_LEAK_GRACE_S = 2.0
_REPO = Path(__file__).resolve().parents[1]
_PACKAGES = {
    "plumbing",
    "devices",
    "ingest",
    "alerts",
    "simulators",
    "notifier",
    "api",
    "console",
    "carewatch",
    "tests",
}
# The integration tests' shared pipeline (tests/integration/conftest.py) opens a device's
# connection the first time a test publishes for it and keeps it for the session, and may
# restart its rules process: tasks it starts during a test belong to the session.
_SESSION_OWNED = {"pipeline"}


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def _no_leaked_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    shared = _SESSION_OWNED & set(request.fixturenames)
    if shared or not inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield
        return
    before = asyncio.all_tasks()
    yield
    leaked = await _tasks_left(before)
    for task in leaked:
        task.cancel()
    if leaked:
        names = sorted(f"{task.get_name()} ({task.get_coro().__qualname__})" for task in leaked)
        pytest.fail(f"the test left {len(leaked)} asyncio task(s) running: {names}")


async def _tasks_left(before: set[asyncio.Task[object]]) -> set[asyncio.Task[object]]:
    """The tasks running carewatch's own code (or the tests') that were started since
    `before` and are still running after the grace period. Libraries' internal tasks are
    left out: a session-wide consumer keeps starting fetches and heartbeats of its own."""
    current = asyncio.current_task()
    left = {
        t for t in asyncio.all_tasks() - before if not t.done() and t is not current and _ours(t)
    }
    if left:
        await asyncio.wait(left, timeout=_LEAK_GRACE_S)
    return {t for t in left if not t.done()}


def _ours(task: asyncio.Task[object]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    if code is None or not Path(code.co_filename).is_relative_to(_REPO):
        return False
    return Path(code.co_filename).relative_to(_REPO).parts[0] in _PACKAGES
