"""Running something on a clock: timer rules, escalation waits, maintenance."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from plumbing.component import Component

__all__ = ["Ticker"]

log = logging.getLogger(__name__)


class Ticker(Component):
    """Calls `tick()` every `interval` seconds, skipping a round while `ready()` says no.

    A `transient` error (the database away) is logged and the next round tries again; any
    other exception is a crash, which supervision logs, counts and restarts after a delay,
    so one bad round cannot stop the clock for good. A round that never ends (a lock
    waited on forever) stops the clock too: `health()` turns bad once no round has ended
    for `stall_after_s` (ten rounds, at least a minute, unless given).
    """

    def __init__(
        self,
        *,
        name: str,
        tick: Callable[[], Awaitable[object]],
        interval: float,
        ready: Callable[[], Awaitable[bool]] | None = None,
        transient: tuple[type[BaseException], ...] = (),
        stall_after_s: float | None = None,
    ) -> None:
        super().__init__(name=name)
        self._tick = tick
        self._interval = interval
        self._ready = ready
        self._transient = transient
        self._stall_after_s = stall_after_s or max(60.0, 10 * interval)
        self._round_ended = time.monotonic()

    def health(self) -> dict[str, Any]:
        doc = super().health()
        since = time.monotonic() - self._round_ended
        stalled = since > self._stall_after_s + self._interval
        return {**doc, "ok": doc["ok"] and not stalled, "last_round_s_ago": round(since, 1)}

    async def _open(self) -> None:
        self.supervise("tick", self._run, restart=True)

    async def _run(self) -> None:
        self._round_ended = time.monotonic()
        while True:
            await asyncio.sleep(self._interval)
            if self._ready is None or await self._ready():
                try:
                    await self._tick()
                except self._transient as exc:
                    # The next round tries again: what a tick does must be safe to repeat.
                    log.warning("tick failed", extra={"ticker": self.name, "error": repr(exc)})
            self._round_ended = time.monotonic()
