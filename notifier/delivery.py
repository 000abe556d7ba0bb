"""Sending what escalation decided: claim due notifications, hand each to its channel,
record the outcome.

At least once: a claimed row's `due_at` moves a lease ahead, so if this process dies
mid-send the row is due again when the lease ends and goes out again, with the same
`notification_id` (receivers deduplicate on it). A failure is retried here, with growing
waits, up to `attempts` tries; a channel that is not configured, or refuses the message
for good, fails at once. A failed notification no longer holds up its step: when nothing
of the step can still be answered, the chain moves on at once instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from notifier import store
from notifier.channels import Channel
from notifier.clock import Clock
from notifier.message import ChannelError, Message
from notifier.metrics import SEND_SECONDS, SENT
from plumbing.component import Component

__all__ = ["LEASE_S", "Delivery"]

log = logging.getLogger(__name__)

LEASE_S = 60.0  # longer than any channel's timeout
_BACKOFF_S = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)


class Delivery(Component):
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        channels: dict[str, Channel],
        clock: Clock,
        attempts: int,
        concurrency: int = 200,
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(name="delivery")
        self._pool = pool
        self._channels = channels
        self._clock = clock
        self._attempts = attempts
        self._concurrency = concurrency
        self._interval_s = interval_s
        self._due = asyncio.Event()
        self.last_round: float = time.monotonic()

    def wake(self) -> None:
        """Something is due now: send without waiting for the next round."""
        self._due.set()

    async def _open(self) -> None:
        self.supervise("send", self._run, restart=True)

    async def _close(self) -> None:
        await self.finish_tasks(10.0)
        await self.close_channels()

    async def close_channels(self) -> None:
        """Release the channels' connections (also for a Delivery never started)."""
        for channel in self._channels.values():
            await channel.close()

    def health(self) -> dict[str, Any]:
        doc = super().health()
        stale = time.monotonic() - self.last_round > max(30.0, 10 * self._interval_s)
        return {**doc, "ok": doc["ok"] and not stale, "last_round_s_ago": self._since()}

    def _since(self) -> float:
        return round(time.monotonic() - self.last_round, 1)

    async def _run(self) -> None:
        while not self.stopping:
            self._due.clear()
            while await self.send_due() == self._concurrency:
                pass  # a full round: more may be waiting
            self.last_round = time.monotonic()
            try:
                await asyncio.wait_for(self._due.wait(), self._interval_s)
            except TimeoutError:
                pass

    async def send_due(self) -> int:
        """Send every notification due now (one round); returns how many were tried."""
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            claimed = await store.claim_due(conn, now, LEASE_S, self._concurrency)
        await asyncio.gather(*(self._send(row) for row in claimed))
        return len(claimed)

    async def _send(self, row: dict[str, Any]) -> None:
        channel = self._channels.get(row["channel"])
        started = time.monotonic()
        try:
            if channel is None:
                raise ChannelError(_unconfigured(row["channel"]), permanent=True)
            outcome = await channel.send(_message(row))
        except ChannelError as exc:
            await self._failed(row, exc)
            return
        except Exception as exc:  # an integration's bug must not stop the others
            log.exception("channel crashed", extra={"channel": row["channel"]})
            await self._failed(row, ChannelError(f"{type(exc).__name__}: {exc}"))
            return
        SEND_SECONDS.labels(row["channel"]).observe(time.monotonic() - started)
        SENT.labels(row["channel"], outcome).inc()
        async with self._pool.acquire() as conn:
            # Cancelled while on its way (someone accepted meanwhile): it was sent all the
            # same, and the log says so.
            await store.mark(
                conn, row["notification_id"], outcome, self._clock.now(),
                only_from=("pending", "cancelled"),
            )  # fmt: skip

    async def _failed(self, row: dict[str, Any], exc: ChannelError) -> None:
        now = self._clock.now()
        final = exc.permanent or row["attempts"] >= self._attempts
        SENT.labels(row["channel"], "failed" if final else "retry").inc()
        log.warning(
            "notification failed" if final else "notification will be retried",
            extra={"notification_id": row["notification_id"], "channel": row["channel"],
                   "attempt": row["attempts"], "error": exc.reason},
        )  # fmt: skip
        async with self._pool.acquire() as conn, conn.transaction():
            if not final:
                wait = _BACKOFF_S[min(row["attempts"], len(_BACKOFF_S)) - 1]
                await store.retry_later(
                    conn, row["notification_id"], now + timedelta(seconds=wait), exc.reason
                )
                return
            done = await store.mark(conn, row["notification_id"], "failed", now, error=exc.reason)
            if done is not None:
                await settle_step(conn, done, now)


async def settle_step(conn: asyncpg.Connection, row: dict[str, Any], now: datetime) -> None:
    """If nothing of the notification's step can still be answered, move the chain on."""
    if row["purpose"] != "alert":
        return
    at = (row["cycle"], row["round"], row["step"])
    if not await store.step_open(conn, row["alert_id"], *at):
        await store.move_on(conn, row["alert_id"], now, step=at)


def _message(row: dict[str, Any]) -> Message:
    m = row["message"]
    return Message(
        notification_id=row["notification_id"], channel=row["channel"], address=row["address"],
        secret=row["secret"], language=row["language"], subject=m["subject"], text=m["text"],
        short=m["short"], body=m["body"],
        reply_code=row["reply_code"] or "",
    )  # fmt: skip


def _unconfigured(channel: str) -> str:
    setting = {
        "email": "CAREWATCH_SMTP_URL", "sms": "CAREWATCH_SMS_GATEWAY",
        "voice": "CAREWATCH_VOICE_GATEWAY",
    }.get(channel)  # fmt: skip
    return f"no {channel} channel here" + (f": set {setting}" if setting else "")
