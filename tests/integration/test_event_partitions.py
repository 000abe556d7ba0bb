"""`events` partitioned by day (migration 0017, alerts/partitions.py): rows land in their
day, a duplicate is still stored once (a redelivery dated by its receive time across
midnight too), a day without a partition costs nothing, retention drops whole days past it
only, and the migration keeps the rows already stored.

Each test has a database of its own: retention drops partitions, which must not be the
other tests' events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from alerts import event_store, partitions
from alerts.telemetry import TelemetryWriter
from carewatch.cli import main
from devices.events import Event, event_to_json, make_event
from plumbing.consumer import Batch
from plumbing.db import connect_pool, migrate

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def db(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(own_database, init=event_store.prepare_staging)
    try:
        yield pool
    finally:
        await pool.close()


def _event(ts: datetime | None, n: int = 0, *, received_at: datetime | None = None) -> Event:
    """A heartbeat of device `dev-1` with message id `n` (ts None: the device sent no time,
    the receive time stands in)."""
    return make_event(
        device_id="dev-1", kind="heartbeat", ts=ts, received_at=received_at or ts or NOW,
        source="native", fields={}, msg_id=f"m{n}",
    )  # fmt: skip


async def _store(pool: asyncpg.Pool, *events: Event, keep_from: date | None = None) -> int:
    async with pool.acquire() as conn:
        rows = [event_store.event_row(e) for e in events]
        return await event_store.store_rows(conn, rows, keep_from=keep_from)


async def _where(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    """(partition, event_id) of every stored event."""
    rows = await pool.fetch(
        "SELECT tableoid::regclass::text AS p, event_id FROM events ORDER BY 1, 2"
    )
    return [(r["p"], r["event_id"]) for r in rows]


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_rows_land_in_the_partition_of_their_day(db: asyncpg.Pool) -> None:
    created = _sample("carewatch_events_partitions_created_total", {"why": "on_demand"})
    late = _event(NOW - timedelta(days=20), 1, received_at=NOW)  # a day with no partition
    events = [_event(NOW, 2), _event(NOW.replace(hour=0, minute=0), 3), late,
              _event(datetime(2026, 12, 3, 23, 59, 59, 999999, tzinfo=UTC), 4)]  # fmt: skip

    assert await _store(db, *events) == 4

    assert await _where(db) == sorted([
        ("events_p20261114", late.event_id),
        ("events_p20261203", events[3].event_id),
        ("events_p20261204", events[0].event_id),
        ("events_p20261204", events[1].event_id),
    ])  # fmt: skip
    # Two days lacked a partition (the migration adds those of the real today and after).
    assert _sample("carewatch_events_partitions_created_total", {"why": "on_demand"}) >= (
        created + 2
    )


async def test_a_duplicate_is_stored_once_within_and_across_batches(db: asyncpg.Pool) -> None:
    first, second = _event(NOW, 1), _event(NOW + timedelta(minutes=1), 2)

    assert await _store(db, first, second, first) == 2
    assert await _store(db, second, first) == 0
    assert len(await _where(db)) == 2


async def test_a_redelivery_dated_by_its_receive_time_is_stored_once_across_midnight(
    db: asyncpg.Pool,
) -> None:
    # The device sent no time: each copy is dated when it arrived, the first before
    # midnight, the redelivery after (same event_id, another day's partition).
    before = datetime(2026, 12, 3, 23, 59, 58, tzinfo=UTC)
    original = _event(None, 7, received_at=before)
    again = _event(None, 7, received_at=before + timedelta(seconds=5))
    days_later = _event(None, 7, received_at=before + timedelta(days=6))
    assert original.event_id == again.event_id and original.ts.date() != again.ts.date()

    assert await _store(db, original) == 1
    assert await _store(db, again) == 0
    assert await _store(db, days_later) == 0
    assert await _where(db) == [("events_p20261203", original.event_id)]
    # Both copies in one batch: the first is kept.
    other, other_again = _event(None, 8, received_at=before), _event(None, 8, received_at=NOW)
    assert await _store(db, other, other_again) == 1
    assert await _where(db) == sorted(
        [("events_p20261203", original.event_id), ("events_p20261203", other.event_id)]
    )


async def test_a_day_without_partition_never_fails_the_batch(db: asyncpg.Pool) -> None:
    """Through the telemetry worker's handler: an event days early and one days late are
    stored with the rest; one past retention is counted, not stored."""
    expired = _sample("carewatch_events_expired_total")
    clock = datetime.now(UTC)
    writer = TelemetryWriter(pool=db, retention_days=30, clock=lambda: clock)
    items = [
        _event(clock, 1),
        _event(clock - timedelta(days=9), 2, received_at=clock),
        _event(clock + timedelta(days=12), 3, received_at=clock),
        _event(clock - timedelta(days=45), 4, received_at=clock),  # past retention
    ]

    await writer.handle(Batch(items=items, sources=[_record(e) for e in items], offsets={}))

    stored = {event_id for _, event_id in await _where(db)}
    assert stored == {e.event_id for e in items[:3]}
    assert _sample("carewatch_events_expired_total") == expired + 1


async def test_retention_drops_whole_days_past_it_only(db: asyncpg.Pool) -> None:
    now = datetime(2026, 12, 14, 6, 0, tzinfo=UTC)  # retention 5 days: cut-off Dec 9 06:00
    days = [date(2026, 12, d) for d in range(5, 15)]
    await _store(db, *(_event(datetime(d.year, d.month, d.day, 3, tzinfo=UTC), d.day)
                       for d in days))  # fmt: skip
    dropped = _sample("carewatch_events_partitions_dropped_total")

    async with db.acquire() as conn:
        # The days before Dec 9: those stored here, and those the migration added.
        past = [
            p.name
            for p in await partitions.list_partitions(conn)
            if p.day and p.day < date(2026, 12, 9)
        ]
        preview = await partitions.maintain(conn, now=now, retention_days=5, dry_run=True)
        assert [p.name for p in preview.dropped] == past
        assert {"events_p20261205", "events_p20261208"} <= set(past)
        assert len(await _where(db)) == 10  # a dry run drops nothing
        done = await partitions.maintain(conn, now=now, retention_days=5)
        again = await partitions.maintain(conn, now=now, retention_days=5)
        kept = await partitions.existing_days(conn)

    assert [p.name for p in done.dropped] == [p.name for p in preview.dropped]
    assert again.dropped == []
    assert _sample("carewatch_events_partitions_dropped_total") == dropped + len(past)
    # Dec 9 holds the cut-off: part of it is within retention, so it stays, whole.
    assert min(kept) == date(2026, 12, 9)
    assert {date(2026, 12, 14) + timedelta(days=n) for n in range(4)} <= kept  # days ahead
    assert sorted(p for p, _ in await _where(db)) == [f"events_p202612{d:02}" for d in range(9, 15)]
    # keep_from: what telemetry leaves out afterwards (Dec 8 has no partition any more).
    assert partitions.keep_from(now, 5) == date(2026, 12, 9)
    assert partitions.keep_from(now, 0) is None
    late = _event(datetime(2026, 12, 8, 23, tzinfo=UTC), 99, received_at=now)
    assert await _store(db, late, keep_from=partitions.keep_from(now, 5)) == 0
    async with db.acquire() as conn:
        assert date(2026, 12, 8) not in await partitions.existing_days(conn)


async def test_the_migration_keeps_the_stored_events(own_database: str) -> None:
    conn = await asyncpg.connect(own_database)
    try:
        await migrate(conn, upto=16)
        rows = [
            (f"e{n}", f"dev-{n % 3}", "location" if n % 2 else "sos", _day(28 + n % 4, n % 24))
            for n in range(40)
        ]
        await conn.executemany(
            "INSERT INTO events (event_id, device_id, kind, ts, received_at, source, body)"
            " VALUES ($1, $2, $3, $4, $4, 'native', '{\"lat\": 31.2, \"lon\": 121.4}')",
            rows,
        )
        before = await conn.fetch("SELECT * FROM events ORDER BY event_id")
        await migrate(conn, upto=17)

        after = await conn.fetch("SELECT * FROM events ORDER BY event_id")
        assert [dict(r) for r in after] == [dict(r) for r in before]
        where = await conn.fetch("SELECT DISTINCT tableoid::regclass::text AS p FROM events")
        assert sorted(r["p"] for r in where) == [
            "events_p20261128", "events_p20261129", "events_p20261130", "events_p20261201",
        ]  # fmt: skip
        indexes = {r["indexname"] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'events'")}  # fmt: skip
        assert indexes == {"events_device_ts", "events_alarms_received",
                           "events_device_readings", "events_device_positions"}  # fmt: skip
        assert await conn.fetchval("SELECT to_regclass('events_0016')") is None
        # The timeline's query reads one day's partition, through its (device_id, ts) index.
        explained = await conn.fetch(
            "EXPLAIN SELECT * FROM events WHERE device_id = 'dev-1'"
            " AND ts >= '2026-11-29T00:00Z' AND ts < '2026-11-30T00:00Z' ORDER BY ts DESC"
        )
        plan = "\n".join(r[0] for r in explained)
        assert "events_p20261129" in plan and "events_p20261128" not in plan
        assert "events_p20261129_device_id_ts_idx" in plan
    finally:
        await conn.close()


async def test_the_cli_lists_and_prunes_partitions(
    own_database: str,
    db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _store(db, _event(datetime(2020, 1, 2, tzinfo=UTC), 1, received_at=NOW))
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", own_database)
    monkeypatch.setenv("CAREWATCH_RETENTION_DAYS", "400")

    assert await asyncio.to_thread(main, ["events", "partitions"]) == 0
    listing = capsys.readouterr().out
    assert "events_p20200102" in listing

    assert await asyncio.to_thread(main, ["events", "prune", "--dry-run"]) == 0
    assert "would drop events_p20200102" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["events", "prune"]) == 0
    assert "dropped events_p20200102" in capsys.readouterr().out
    assert await _where(db) == []


def _day(november: int, hour: int) -> datetime:
    """`november` 28 to 31 (31: December 1st), at `hour` UTC."""
    return datetime(2026, 11, 28, hour, tzinfo=UTC) + timedelta(days=november - 28)


def _record(event: Event) -> ConsumerRecord[bytes, bytes]:
    """The event as telemetry reads it off carewatch.events.v1."""
    value = event_to_json(event)
    return ConsumerRecord("carewatch.events.v1", 0, 0, 0, 0, None, value, None, 0, len(value), ())
