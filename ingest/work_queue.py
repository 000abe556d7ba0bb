"""Ingest's queue of received messages: those that may carry an alarm go first.

When ingest falls behind, up to its in-flight limit of messages wait here. A message whose
codec says it may carry an alarm (`Codec.urgent`: a cheap look at the bytes, no decode)
is handled before the ordinary ones already waiting, so an SOS does not wait behind a
second of telemetry. Order is kept within each class: a fall and its cancel, or two
reports of one device, are handled in the order they came. PUBACKs keep the receive
order whatever the processing order (`AckSequencer`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["WorkQueue"]

T = TypeVar("T")


class WorkQueue(Generic[T]):
    def __init__(self) -> None:
        self._urgent: deque[T] = deque()
        self._ordinary: deque[T] = deque()
        self._ready = asyncio.Event()

    def put(self, item: T, *, urgent: bool) -> None:
        (self._urgent if urgent else self._ordinary).append(item)
        self._ready.set()

    async def get(self) -> T:
        while not (self._urgent or self._ordinary):
            self._ready.clear()
            await self._ready.wait()
        return self._urgent.popleft() if self._urgent else self._ordinary.popleft()

    def __len__(self) -> int:
        return len(self._urgent) + len(self._ordinary)
