"""Publishing alert changes on carewatch.alerts.v1 from the `alert_history` outbox.

The store writes every alert change as a history row in the same transaction as the change
(alerts/store.py); this component publishes those rows and only then marks them
`published_at`. A crash between the database write and the publish loses nothing: the row
is still unpublished and goes out on the next round. A crash after Kafka's ack but before
the mark publishes a row twice, so delivery is at least once and consumers dedupe by
`history_id`.

Rounds run when the trigger on `alert_history` notifies `carewatch_alert_history`, and
every `interval_s` regardless (a notification is lost while the connection is down).

Several rules processes each run a publisher. A round claims rows with
`FOR UPDATE SKIP LOCKED`, so no two publishers send the same row, and sends a row only
together with every earlier unpublished row of its alert: an alert's changes reach its
partition in history order even when two publishers share the work.

Each record is keyed by `alert_id`; its value is the alert row with `status` and `count`
as of the change (the other fields are the alert as it is when published, normally the
same moment), plus `history_id`, `change`, `actor`, `note` and `at`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from alerts import metrics
from alerts.store import ALERT_COLUMNS, LIFECYCLE_COLUMNS
from plumbing.backoff import Backoff
from plumbing.component import Component
from plumbing.db import DatabaseError
from plumbing.kafka import ALERTS_TOPIC, make_producer

__all__ = ["CHANNEL", "FIELDS", "AlertPublisher", "change_body"]

log = logging.getLogger(__name__)

CHANNEL = "carewatch_alert_history"

FIELDS = [c.strip() for c in f"{ALERT_COLUMNS}, {LIFECYCLE_COLUMNS}".split(",")]

# The alert's own status and count are selected too, but the history's win in the message.
_CLAIM = f"""
SELECT h.history_id, h.at, h.change, h.actor, h.note,
       h.status AS change_status, h.count AS change_count,
       {", ".join(f"a.{c}" for c in FIELDS)}
FROM alert_history h JOIN alerts a ON a.alert_id = h.alert_id
WHERE h.published_at IS NULL
ORDER BY h.history_id
LIMIT $1
FOR UPDATE OF h SKIP LOCKED
"""

# Per claimed alert, its first unpublished row that this round did not claim (another
# publisher holds it): the claimed rows after it must wait for it.
_BLOCKERS = """
SELECT alert_id, min(history_id) AS first FROM alert_history
WHERE published_at IS NULL AND alert_id = ANY($1::bigint[])
  AND NOT (history_id = ANY($2::bigint[]))
GROUP BY alert_id
"""

# clock_timestamp(): the time of the mark (after Kafka's acks), not the transaction's start.
_MARK = """
UPDATE alert_history SET published_at = clock_timestamp()
WHERE history_id = ANY($1::bigint[])
RETURNING extract(epoch FROM published_at - at)::float8 AS lag
"""

_OLDEST = """
SELECT extract(epoch FROM now() - at)::float8 FROM alert_history
WHERE published_at IS NULL ORDER BY history_id LIMIT 1
"""

_TRANSIENT = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError)


class AlertPublisher(Component):
    """Publishes the unpublished rows of `alert_history`, in order, at least once."""

    def __init__(
        self,
        *,
        database_url: str,
        bootstrap: str,
        topic: str = ALERTS_TOPIC,
        interval_s: float = 1.0,
        batch_size: int = 500,
        client_id: str = "carewatch-alerts",
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(name="alert-publisher")
        self._url = database_url
        self._bootstrap = bootstrap
        self._topic = topic
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._conn: asyncpg.Connection | None = None
        self._stop_timeout = stop_timeout
        self._wake = asyncio.Event()
        self.published = 0

    async def _open(self) -> None:
        """Connect to PostgreSQL and Kafka, then publish in the background."""
        producer = make_producer(self._bootstrap, client_id=self._client_id)
        await producer.start()
        self._producer = producer
        try:
            await self._connection()
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseError(f"alert publisher cannot reach PostgreSQL: {exc}") from exc
        # Restarted if it crashes: what it has not marked published is sent again.
        self.supervise("publish", self._run, restart=True)
        log.info("publishing alert changes", extra={"topic": self._topic})

    async def _close(self) -> None:
        """Publish what is committed by now (within the stop timeout), then disconnect;
        what is left unpublished goes out with the next publisher to start."""
        self._wake.set()
        await self.finish_tasks(self._stop_timeout)
        await self.cancel_tasks()
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
        await self._disconnect()

    def health(self) -> dict[str, Any]:
        connected = self._conn is not None and not self._conn.is_closed()
        return {**super().health(), "connected": connected, "published": self.published}

    async def _run(self) -> None:
        backoff = Backoff(first=0.2, cap=10.0)
        while True:
            self._wake.clear()
            stopping = self.stopping  # a round after stop() covers all committed before it
            try:
                published = await self._round()
                await self._measure_backlog()
                backoff.reset()
            except _TRANSIENT as exc:
                if stopping:
                    return
                metrics.ALERT_PUBLISH_FAILURES.inc()
                log.warning("publishing alert changes failed; retrying", extra={"error": repr(exc)})
                if not isinstance(exc, KafkaError):
                    await self._disconnect()
                await self._sleep(backoff.next_delay())
                continue
            if published < self._batch_size:
                if stopping:
                    return
                await self._sleep(self._interval_s)

    async def _round(self) -> int:
        """Claim, publish and mark one batch; returns how many rows were published."""
        conn = await self._connection()
        async with conn.transaction():
            claimed = await conn.fetch(_CLAIM, self._batch_size)
            if not claimed:
                return 0
            ready = await _in_alert_order(conn, claimed)
            await self._send(ready)
            lags = await conn.fetch(_MARK, [r["history_id"] for r in ready])
        for row in ready:
            metrics.ALERTS_PUBLISHED.labels(row["change"]).inc()
        for lag in lags:
            metrics.ALERT_PUBLISH_LAG.observe(max(lag["lag"], 0.0))
        self.published += len(ready)
        return len(ready)

    async def _send(self, rows: list[asyncpg.Record]) -> None:
        """Hand every record to the producer, then wait for all of Kafka's acks."""
        assert self._producer is not None
        futures = [
            await self._producer.send(self._topic, _message(row), key=str(row["alert_id"]).encode())
            for row in rows
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed

    async def _measure_backlog(self) -> None:
        conn = await self._connection()
        oldest = await conn.fetchval(_OLDEST)
        metrics.ALERT_OUTBOX_OLDEST.set(max(oldest or 0.0, 0.0))

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await asyncpg.connect(self._url)
            await conn.add_listener(CHANNEL, self._notified)
            self._conn = conn
        return self._conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=5)
        except _TRANSIENT:
            conn.terminate()

    async def _sleep(self, seconds: float) -> None:
        """Until `seconds` pass, a notification arrives, or stop() is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _notified(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self._wake.set()


async def _in_alert_order(
    conn: asyncpg.Connection, claimed: list[asyncpg.Record]
) -> list[asyncpg.Record]:
    """The claimed rows that may go now: for each alert, those before its first unpublished
    row held by another publisher (usually all of them)."""
    blockers = await conn.fetch(
        _BLOCKERS,
        list({r["alert_id"] for r in claimed}),
        [r["history_id"] for r in claimed],
    )
    first = {b["alert_id"]: b["first"] for b in blockers}
    return [r for r in claimed if r["history_id"] < first.get(r["alert_id"], r["history_id"] + 1)]


def _message(row: asyncpg.Record) -> bytes:
    return orjson.dumps(change_body(row))


def change_body(row: asyncpg.Record) -> dict[str, Any]:
    """An alert change as carewatch.alerts.v1 carries it, from a row with the alert's
    columns and the history row's (`change_status`, `change_count`: the alert's status and
    count as of the change). The API's live stream sends the same shape."""
    body: dict[str, Any] = {name: row[name] for name in FIELDS}
    body["status"] = row["change_status"]
    body["count"] = row["change_count"]
    body.update(
        history_id=row["history_id"],
        change=row["change"],
        actor=row["actor"],
        note=row["note"],
        at=row["at"],
    )
    return body
