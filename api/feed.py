"""The live feed of alert changes that `/api/v1/stream` sends: one reader per API process,
fanned out to every open stream.

The reader wakes when PostgreSQL notifies `carewatch_alert_history` (a trigger on
`alert_history`, the same one the outbox listens to) and every `interval_s` regardless (a
notification is lost while its connection is down), and reads the changes after the last
it saw. History ids are taken at insert, not at commit, so each round also looks
`OVERLAP` ids back for changes that committed late, and skips the ids it has sent.

A stream that cannot keep up (its queue full) is ended rather than allowed to grow: the
client reconnects with `Last-Event-ID` and reads what it missed from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from prometheus_client import Counter, Gauge

from alerts.outbox import CHANNEL
from alerts.views import changes_after, last_change_id
from plumbing.component import Component

__all__ = ["OVERLAP", "RECENT_S", "AlertFeed", "Change", "Subscription"]

log = logging.getLogger(__name__)

OVERLAP = 256  # ids looked back for changes that committed after a later id was seen
RECENT_S = 60.0  # ... written this recently (a transaction longer than this is not seen)
_BATCH = 500
_QUEUE = 1000  # changes a stream may hold unsent before it is ended

CLIENTS = Gauge("carewatch_api_stream_clients", "open /api/v1/stream connections")
SENT = Counter("carewatch_api_stream_changes", "alert changes read by the live feed")
DROPPED = Counter("carewatch_api_stream_overflows", "streams ended because they fell behind")


@dataclass(frozen=True)
class Change:
    """One alert change as a stream sends it: encoded once, whatever the number of streams."""

    history_id: int
    area: str
    event: bytes  # the Server-Sent Event: id, event type, data

    @classmethod
    def of(cls, change: dict[str, Any]) -> Change:
        data = orjson.dumps(change, default=str)
        event = b"id: %d\nevent: alert\ndata: %s\n\n" % (change["history_id"], data)
        return cls(change["history_id"], change["area"], event)


class Subscription:
    """One stream's queue of changes; `None` in it means: end the stream."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(_QUEUE + 1)

    def offer(self, change: Change | None) -> bool:
        """Queue a change; False (and the end marker queued) when the queue is full."""
        if self.queue.qsize() >= _QUEUE:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
            return False
        self.queue.put_nowait(change)
        return True


class AlertFeed(Component):
    def __init__(self, *, database_url: str, pool: asyncpg.Pool, interval_s: float = 1.0) -> None:
        super().__init__(name="alert-feed")
        self._url = database_url
        self._pool = pool
        self._interval_s = interval_s
        self._subscriptions: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._last = 0
        self._seen: deque[int] = deque(maxlen=4 * OVERLAP)

    async def _open(self) -> None:
        async with self._pool.acquire() as conn:
            self._last = await last_change_id(conn)
        self.supervise("read", self._read, restart=True)

    async def _close(self) -> None:
        for subscription in self._subscriptions:
            subscription.offer(None)  # streams end, so the server can stop
        await self.cancel_tasks()
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            listener.terminate()

    def health(self) -> dict[str, Any]:
        listening = self._listener is not None and not self._listener.is_closed()
        return {**super().health(), "listening": listening, "streams": len(self._subscriptions)}

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """Changes read from now on, until the block ends."""
        subscription = Subscription()
        self._subscriptions.add(subscription)
        CLIENTS.inc()
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            CLIENTS.dec()

    async def _read(self) -> None:
        while True:
            await self._listen()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()
            while await self._round() == _BATCH:
                pass

    async def _round(self) -> int:
        async with self._pool.acquire() as conn:
            changes = await changes_after(
                conn, self._last, limit=_BATCH, overlap=OVERLAP, recent_s=RECENT_S
            )
        seen = set(self._seen)
        for change in changes:
            history_id = change["history_id"]
            if history_id in seen:
                continue
            self._seen.append(history_id)
            self._last = max(self._last, history_id)
            SENT.inc()
            encoded = Change.of(change)
            for subscription in list(self._subscriptions):
                if not subscription.offer(encoded):
                    DROPPED.inc()
                    self._subscriptions.discard(subscription)
        return len(changes)

    async def _listen(self) -> None:
        """(Re)connect the notification listener; without one, the interval still reads."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            conn = await asyncpg.connect(self._url)
            await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning(
                "no notifications of alert changes; reading every interval",
                extra={"error": repr(exc)},
            )
            return
        self._listener = conn
