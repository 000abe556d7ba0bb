"""The day partitions of the `events` table: adding days, listing them, dropping the days
past retention (migration 0017 made `events` partitioned; docs/events-storage.md).

A partition holds one UTC day of device time (`ts`) and is named `events_pYYYYMMDD`.
Days are added three ways: ahead of time by the telemetry worker's maintenance round, on
demand by `event_store.store_rows` when a row's day has none (a late or early event), and
by the migration for the days already stored. Retention drops whole days only, and only
those that ended before `now - retention_days`: the day the cut-off falls in is kept until
it has passed entirely.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg
from prometheus_client import Counter

from plumbing.db import DatabaseError

__all__ = [
    "AHEAD_DAYS",
    "CREATED",
    "DROPPED",
    "EXPIRED",
    "Maintenance",
    "Partition",
    "add_days",
    "day_of",
    "drop_day",
    "existing_days",
    "keep_from",
    "list_partitions",
    "maintain",
    "partition_name",
]

log = logging.getLogger(__name__)

# Days added ahead of today: a worker that is down over a weekend still finds them, and
# adding a day never happens in the write path for events that arrive on time.
AHEAD_DAYS = 3
# How long adding or dropping a partition may wait for a lock before giving up (the next
# round, or the writer's retry of its batch, tries again): never queue the API's reads.
_LOCK_TIMEOUT = "5s"
_NAME = re.compile(r"events_p(\d{8})")

# Here rather than in alerts/metrics.py: they belong to the partition maintenance.
CREATED = Counter(
    "carewatch_events_partitions_created",
    "day partitions of events added (ahead: by maintenance; on_demand: for a late or early "
    "event whose day had none)",
    ["why"],
)
DROPPED = Counter(
    "carewatch_events_partitions_dropped", "day partitions of events dropped past retention"
)
EXPIRED = Counter(
    "carewatch_events_expired",
    "events not stored because their day (of device time) is already past retention",
)


@dataclass(frozen=True)
class Partition:
    name: str
    day: date | None  # None: attached under another name (by hand)
    rows: int  # PostgreSQL's estimate (pg_class.reltuples; -1 before the first ANALYZE)
    bytes: int  # with its indexes
    attached: bool = True


@dataclass
class Maintenance:
    """What one maintenance round did."""

    created: list[date] = field(default_factory=list)
    dropped: list[Partition] = field(default_factory=list)


def partition_name(day: date) -> str:
    return f"events_p{day:%Y%m%d}"


def day_of(ts: datetime) -> date:
    """The UTC day a device time belongs to (the partition it lands in)."""
    return ts.astimezone(UTC).date()


def keep_from(now: datetime, retention_days: int) -> date | None:
    """The oldest day retention keeps (None: `retention_days` 0, every day is kept). A day
    is past retention once it ended before `now - retention_days`."""
    if retention_days <= 0:
        return None
    return day_of(now - timedelta(days=retention_days))


_PARTITIONS = """
SELECT c.relname AS name, i.inhrelid IS NOT NULL AS attached,
       c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'events'::regclass
WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
  AND (i.inhrelid IS NOT NULL OR c.relname ~ '^events_p[0-9]{8}$')
ORDER BY c.relname
"""


async def list_partitions(conn: asyncpg.Connection) -> list[Partition]:
    """The partitions of `events` by name (oldest day first), and tables named like one
    that are not attached (a day detached but not yet dropped)."""
    return [
        Partition(r["name"], _day(r["name"]), r["rows"], r["bytes"], r["attached"])
        for r in await conn.fetch(_PARTITIONS)
    ]


async def existing_days(conn: asyncpg.Connection) -> set[date]:
    """The days that have a partition."""
    return {p.day for p in await list_partitions(conn) if p.attached and p.day is not None}


async def add_days(conn: asyncpg.Connection, days: set[date], *, why: str) -> list[date]:
    """Add a partition for each of `days` that lacks one; returns those added. Waits at
    most a few seconds for the lock on `events`, then raises DatabaseError (transient: a
    retry cures it)."""
    added = []
    for day in sorted(days):
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
                if await conn.fetchval("SELECT events_add_partition($1)", day):
                    added.append(day)
        except (asyncpg.LockNotAvailableError, asyncpg.RaiseError) as exc:
            # Busy, or a table of that name that is not a partition (detached by hand): a
            # retry, once it is free or renamed, stores the rows; the batch is not poison.
            raise DatabaseError(f"adding the events partition of {day}: {exc}") from exc
    if added:
        CREATED.labels(why).inc(len(added))
        log.info("events partitions added", extra={"days": [str(d) for d in added], "why": why})
    return added


async def drop_day(conn: asyncpg.Connection, partition: Partition) -> None:
    """Drop one day's partition. DETACH ... CONCURRENTLY (outside any transaction) takes no
    lock that stops inserts or reads of the other days; it waits for the queries that may
    still read the day. A detach interrupted half-way is finished first."""
    if partition.attached:
        pending = await conn.fetchval(
            "SELECT inhdetachpending FROM pg_inherits"
            " WHERE inhparent = 'events'::regclass AND inhrelid = $1::regclass",
            partition.name,
        )
        how = "FINALIZE" if pending else "CONCURRENTLY"
        await conn.execute(f'ALTER TABLE events DETACH PARTITION "{partition.name}" {how}')
    await conn.execute(f'DROP TABLE "{partition.name}"')


async def maintain(
    conn: asyncpg.Connection,
    *,
    now: datetime,
    retention_days: int,
    ahead_days: int = AHEAD_DAYS,
    dry_run: bool = False,
) -> Maintenance:
    """One round: add today's partition and `ahead_days` more, drop the days past
    retention (counted in `carewatch_events_partitions_dropped`, each logged). Safe to
    repeat; `dry_run` only says what it would drop."""
    done = Maintenance()
    today = day_of(now)
    if not dry_run:
        done.created = await add_days(
            conn, {today + timedelta(days=n) for n in range(ahead_days + 1)}, why="ahead"
        )
    oldest = keep_from(now, retention_days)
    if oldest is None:
        return done
    for partition in await list_partitions(conn):
        if partition.day is None or partition.day >= oldest:
            continue
        if not dry_run:
            await drop_day(conn, partition)
            DROPPED.inc()
            log.info(
                "events partition dropped past retention",
                extra={"partition": partition.name, "rows_estimate": partition.rows,
                       "bytes": partition.bytes, "retention_days": retention_days},
            )  # fmt: skip
        done.dropped.append(partition)
    return done


def _day(name: str) -> date | None:
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None
