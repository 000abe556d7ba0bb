"""One shape for every long-running component: start, stop, and supervised background tasks.

A component is built with keyword-only configuration and does no I/O until `start()`.
Subclasses fill in two hooks:

    _open()    connect, then start background work with `supervise(...)`;
    _close()   drain and disconnect (tasks still running are cancelled after it).

`start()` and `stop()` are safe to call twice; a failed `start()` closes what it opened.

Every background task runs under supervision, so none can end silently. An unexpected
exception is logged with its traceback, counted in `carewatch_task_crashes_total` and shown
in `health()`, and then either

- the task is started again after a growing, jittered delay (`restart=True`: loops whose
  state lives elsewhere, such as a cache refresh or a timer), or
- the component fails (`restart=False`: loops that cannot resume where they were, such as
  a consumer holding records it has not committed): `done` completes with the exception, and
  the process entry point (plumbing.service) stops the process, loudly, to be restarted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Self

from prometheus_client import Counter

from plumbing.backoff import Backoff

__all__ = ["TASK_CRASHES", "Component"]

log = logging.getLogger(__name__)

TASK_CRASHES = Counter(
    "carewatch_task_crashes",
    "background tasks that ended with an unexpected exception",
    ["component", "task"],
)

# A task that ran this long before crashing starts its next life with a short delay again.
_HEALTHY_RUN_S = 60.0


@dataclass
class _Task:
    """What supervision knows about one named background task."""

    name: str
    restart: bool
    crashes: int = 0
    last_error: str | None = None
    restarting: bool = False  # crashed, waiting for its next start


class Component:
    """Base of the long-running parts of a process (see the module docstring)."""

    def __init__(self, *, name: str) -> None:
        self.name = name
        self._supervised: dict[str, _Task] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._done: asyncio.Future[None] | None = None
        self._started = False
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect and start the background work; safe to call twice."""
        if self._started:
            return
        self._started, self._stopping = True, False
        self._done = asyncio.get_running_loop().create_future()
        try:
            await self._open()
        except BaseException:
            await self.stop()  # nothing half-started may outlive a failed start
            raise

    async def stop(self) -> None:
        """Drain, disconnect and end every background task; safe to call twice."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        try:
            await self._close()
        finally:
            await self.cancel_tasks()
            if self._done is not None and not self._done.done():
                self._done.set_result(None)
            self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _open(self) -> None:
        """Connect and `supervise` the background tasks (override)."""

    async def _close(self) -> None:
        """Drain and disconnect (override); tasks still running are cancelled after it."""

    # -- state -----------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True from the moment `stop()` is called: loops finish what they hold and end."""
        return self._stopping

    @property
    def done(self) -> asyncio.Future[None]:
        """Completes when the component stops, or with the exception of a task that was
        not allowed to restart (`restart=False`)."""
        if self._done is None:
            raise RuntimeError(f"{self.name}: not started")
        return self._done

    def health(self) -> dict[str, Any]:
        """ok while started, not failed, and no task waiting to restart; crashes shown."""
        failed = self._done is not None and self._done.done() and not self._stopping
        restarting = any(t.restarting for t in self._supervised.values())
        doc: dict[str, Any] = {"ok": self._started and not failed and not restarting}
        crashed = {
            t.name: {"crashes": t.crashes, "last_error": t.last_error, "restarting": t.restarting}
            for t in self._supervised.values()
            if t.crashes
        }
        if crashed:
            doc["task_crashes"] = crashed
        return doc

    # -- background tasks ----------------------------------------------------------

    def supervise(
        self, name: str, run: Callable[[], Awaitable[None]], *, restart: bool
    ) -> asyncio.Task[None]:
        """Run `run()` in the background until it returns or the component stops."""
        task = self._supervised.setdefault(name, _Task(name, restart))
        coro = self._keep_running(task, run) if restart else _call(run)
        return self._launch(coro, task)

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A one-off background task (e.g. a retry); if it raises, the component fails."""
        return self._launch(coro, self._supervised.setdefault(name, _Task(name, False)))

    async def finish_tasks(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the background tasks to end by themselves (they see
        `stopping`); True if they all did."""
        pending = {t for t in self._running if not t.done()}
        if not pending:
            return True
        _, still = await asyncio.wait(pending, timeout=timeout)
        return not still

    async def cancel_tasks(self) -> None:
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _launch(self, coro: Coroutine[Any, Any, Any], task: _Task) -> asyncio.Task[Any]:
        running = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{task.name}")
        self._running.add(running)
        running.add_done_callback(lambda t: self._ended(t, task))
        return running

    async def _keep_running(self, task: _Task, run: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(first=0.5, cap=30.0)
        while not self._stopping:
            began = loop.time()
            try:
                await run()
                return
            except Exception as exc:
                if self._stopping:
                    return
                self._crashed(task, exc)
            if loop.time() - began > _HEALTHY_RUN_S:
                backoff.reset()
            task.restarting = True
            try:
                delay = await backoff.wait()
            finally:
                task.restarting = False
            log.warning(
                "restarting task",
                extra={"component": self.name, "task": task.name, "after_s": round(delay, 2)},
            )

    def _ended(self, running: asyncio.Task[Any], task: _Task) -> None:
        self._running.discard(running)
        if running.cancelled() or running.exception() is None:
            return
        exc = running.exception()
        assert exc is not None
        self._crashed(task, exc, fatal=True)
        if self._done is not None and not self._done.done() and not self._stopping:
            self._done.set_exception(exc)

    def _crashed(self, task: _Task, exc: BaseException, *, fatal: bool = False) -> None:
        task.crashes += 1
        task.last_error = repr(exc)[:300]
        TASK_CRASHES.labels(self.name, task.name).inc()
        log.log(
            logging.CRITICAL if fatal else logging.ERROR,
            "task crashed" + ("; the component fails" if fatal else "; it will be restarted"),
            exc_info=exc,
            extra={"component": self.name, "task": task.name},
        )


async def _call(run: Callable[[], Awaitable[None]]) -> None:
    await run()
