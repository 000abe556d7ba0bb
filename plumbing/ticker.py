"""Running something on a clock: timer rules, escalation waits, maintenance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from plumbing.component import Component

__all__ = ["Ticker"]

log = logging.getLogger(__name__)


class Ticker(Component):
    """Calls `tick()` every `interval` seconds, skipping a round while `ready()` says no.

    A `transient` error (the database away) is logged and the next round tries again; any
    other exception is a crash, which supervision logs, counts and restarts after a delay,
    so one bad round cannot stop the clock for good.
    """

    def __init__(
        self,
        *,
        name: str,
        tick: Callable[[], Awaitable[object]],
        interval: float,
        ready: Callable[[], Awaitable[bool]] | None = None,
        transient: tuple[type[BaseException], ...] = (),
    ) -> None:
        super().__init__(name=name)
        self._tick = tick
        self._interval = interval
        self._ready = ready
        self._transient = transient

    async def _open(self) -> None:
        self.supervise("tick", self._run, restart=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._ready is not None and not await self._ready():
                continue
            try:
                await self._tick()
            except self._transient as exc:
                # The next round tries again: what a tick does must be safe to repeat.
                log.warning("tick failed", extra={"ticker": self.name, "error": repr(exc)})
