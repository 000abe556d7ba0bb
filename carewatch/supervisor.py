"""Keeping `carewatch up`'s services running: a child that dies is started again.

A dead worker used to make `up` stop everything, and stopping the embedded Kafka (memory
only) loses what it held: SOS presses ingest had acknowledged but the rules had not read
yet. Now a child that exits on its own is restarted after a growing, jittered delay (1 s,
then up to 30 s; back to short once it has run a minute), and the embedded services are
never touched because of it. A child restarted `CRASH_LOOP` times within `WINDOW_S` is in a
crash loop: the status line and `up`'s `/healthz` (503) say so, and it is still retried.

In production the same job belongs to systemd (`Restart=on-failure`) or Kubernetes
(restart policy, liveness from `/healthz`): docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

from carewatch.embedded.process import ChildProcess, EmbeddedError
from plumbing.backoff import Backoff
from plumbing.component import Component

__all__ = ["CRASH_LOOP", "WINDOW_S", "Supervisor"]

log = logging.getLogger(__name__)

CRASH_LOOP = 5
WINDOW_S = 600.0
_STEADY_S = 60.0  # running this long since its last restart: the next delay starts short

RESTARTS = Counter("carewatch_up_restarts", "children restarted after they exited", ["child"])


@dataclass
class _Child:
    process: ChildProcess
    backoff: Backoff = field(default_factory=lambda: Backoff(first=1.0, cap=30.0))
    restarts: deque[float] = field(default_factory=deque)  # monotonic times, within WINDOW_S
    next_try: float = 0.0
    last_exit: int | None = None


class Supervisor(Component):
    """Watches `children` every `interval` seconds and restarts those that exited."""

    def __init__(self, *, children: Mapping[str, ChildProcess], interval: float = 0.5) -> None:
        super().__init__(name="supervisor")
        self._children = {name: _Child(child) for name, child in children.items()}
        self._interval = interval

    async def _open(self) -> None:
        self.supervise("watch", self._watch, restart=True)

    def crash_looping(self) -> list[str]:
        now = time.monotonic()
        return [name for name, c in self._children.items() if _recent(c, now) >= CRASH_LOOP]

    def summary(self) -> str:
        """'' when nothing was restarted lately; else e.g. 'restarted rules 2 times'."""
        now = time.monotonic()
        parts = []
        for name, child in self._children.items():
            count = _recent(child, now)
            if count:
                loop = " CRASH LOOP" if count >= CRASH_LOOP else ""
                parts.append(f"{name} {count} times{loop}")
        return f"restarted {', '.join(parts)}" if parts else ""

    def health(self) -> dict[str, Any]:
        doc = super().health()
        children = {
            name: {
                "running": c.process.running,
                "restarts_10min": _recent(c, time.monotonic()),
                "last_exit_code": c.last_exit,
            }
            for name, c in self._children.items()
        }
        looping = self.crash_looping()
        ok = doc["ok"] and not looping and all(c["running"] for c in children.values())
        return {**doc, "ok": ok, "children": children, "crash_loop": looping}

    async def _watch(self) -> None:
        while True:
            for name, child in self._children.items():
                if self.stopping:
                    return
                if child.process.running:
                    _settle(child)
                elif time.monotonic() >= child.next_try:
                    await self._restart(name, child)
            await asyncio.sleep(self._interval)

    async def _restart(self, name: str, child: _Child) -> None:
        now = time.monotonic()
        child.last_exit = child.process.returncode
        child.restarts.append(now)
        child.next_try = now + child.backoff.next_delay()
        RESTARTS.labels(name).inc()
        log.error(
            "%s exited with code %s; restarting it (see %s)",
            name, child.last_exit, child.process.log_path,
            extra={"child": name, "restarts_10min": _recent(child, now)},
        )  # fmt: skip
        try:
            await child.process.restart()
        except EmbeddedError as exc:
            log.error("cannot restart %s: %s", name, exc)


def _recent(child: _Child, now: float) -> int:
    while child.restarts and now - child.restarts[0] > WINDOW_S:
        child.restarts.popleft()
    return len(child.restarts)


def _settle(child: _Child) -> None:
    """A child that has run steadily since its last restart starts over with short delays."""
    if child.restarts and time.monotonic() - child.restarts[-1] > _STEADY_S:
        child.backoff.reset()
