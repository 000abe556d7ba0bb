"""Waiting before trying again: exponential growth with full jitter, capped.

Full jitter (a delay drawn uniformly from [0, cap), the cap doubling per failure) spreads the
retries of many clients that failed together, e.g. every worker when PostgreSQL restarts,
so they do not all come back in the same instant.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """`await backoff.wait()` after each failure; `reset()` after a success."""

    def __init__(
        self,
        *,
        first: float = 0.2,
        cap: float = 10.0,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"want 0 < first <= cap, not first={first}, cap={cap}")
        self._first = first
        self._cap = cap
        self._draw = draw
        self._ceiling = first
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next try; each call doubles the ceiling, up to the cap."""
        delay = self._draw(0.0, self._ceiling)
        self._ceiling = min(self._ceiling * 2, self._cap)
        self.failures += 1
        return delay

    async def wait(self) -> float:
        """Sleep for the next delay; returns it (for the log line)."""
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay

    def reset(self) -> None:
        self._ceiling = self._first
        self.failures = 0
