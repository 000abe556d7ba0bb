"""`carewatch bench-events`: the day-partitioned `events` table at volume, measured.

On an embedded PostgreSQL of its own it stores `rows` events of `devices` devices spread
evenly over the last `days` days, in device-time order as telemetry receives them, through
the telemetry worker's own path (`event_store.store_rows`: COPY into the staging table,
INSERT ... ON CONFLICT DO NOTHING, batches of `batch` rows; the days' partitions added on
demand as the worker does). Then it restarts PostgreSQL, so its buffers are empty, and
times the API's resident timeline (`history_views.timeline`, the last 24 hours of one
device, a page of 200 as the API's default): cold (the first query of a device on a new
connection) and warm (the same devices again), with EXPLAIN (ANALYZE, BUFFERS) of its
events query to show the partitions pruned and the (device_id, ts) index used.

It prints the numbers and writes them to a JSON report (docs/events-benchmark.md reads
one). The full run stores ~10 M rows (about 5.3 GB with indexes) and takes ~15 minutes
on the 2-core box.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from alerts import event_store, history_views, partitions
from alerts.history_views import _EVENTS  # the timeline's events query, to EXPLAIN it
from carewatch.bench import in_a_fresh_directory, percentiles, write_report
from carewatch.extras import needs_extra
from plumbing.db import connect_pool

with needs_extra("embedded", "carewatch bench-events"):
    from carewatch.embedded.postgres import EmbeddedPostgres

__all__ = ["EventsBenchPlan", "run_bench_events"]

_KINDS = ("location", "vitals", "heartbeat", "activity", "battery")


@dataclass(frozen=True)
class EventsBenchPlan:
    rows: int = 10_200_000
    devices: int = 10_000
    days: int = 3
    batch: int = 5_000
    samples: int = 30  # devices whose timeline is timed, cold then warm
    warm_rounds: int = 5

    @classmethod
    def small(cls) -> EventsBenchPlan:
        return cls(rows=60_000, devices=200, samples=5, warm_rounds=2)


def run_bench_events(plan: EventsBenchPlan, *, report: Path | None) -> int:
    result = in_a_fresh_directory("carewatch-bench-events-", lambda d: _bench(plan, d))
    _print(result)
    write_report(result, report)
    return 0 if result["timeline"]["pruned"] else 1


async def _bench(plan: EventsBenchPlan, workdir: Path) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    postgres = EmbeddedPostgres(data_dir=workdir / "postgres")
    await postgres.start()
    try:
        insert = await _load(postgres.url, plan, now)
        print("VACUUM ANALYZE events (as autovacuum would)…", flush=True)
        storage = await _storage(postgres.url)
        print("restarting PostgreSQL: its buffers empty for the cold timelines…", flush=True)
        await postgres.stop()
        await postgres.start()
        timeline = await _timelines(postgres.url, plan, now)
    finally:
        await postgres.stop()
    return {
        "when": now.isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
        },
        "plan": asdict(plan),
        "insert": insert,
        "storage": storage,
        "timeline": timeline,
    }


# -- storing --------------------------------------------------------------------------


def _batches(
    plan: EventsBenchPlan, now: datetime, upto: int | None = None
) -> Iterator[list[tuple[object, ...]]]:
    """Rows as `event_store.event_row` makes them, oldest first, every device in turn (the
    first `upto` only, if given)."""
    start = now - timedelta(days=plan.days)
    step = timedelta(days=plan.days) / plan.rows
    end = plan.rows if upto is None else upto
    for lo in range(0, end, plan.batch):
        rows: list[tuple[object, ...]] = []
        for i in range(lo, min(lo + plan.batch, end)):
            device, kind = f"bench-{i % plan.devices}", _KINDS[i // plan.devices % len(_KINDS)]
            ts = start + step * i
            received = ts + timedelta(milliseconds=200 + i % 800)
            event_id = hashlib.sha256(f"bench/{i}".encode()).hexdigest()[:32]
            rows.append((event_id, device, kind, ts, received, "native",
                         _body(event_id, device, kind, ts, received, i)))  # fmt: skip
        yield rows


def _body(event_id: str, device: str, kind: str, ts: datetime, rx: datetime, i: int) -> str:
    fields = {
        "location": f'"lat":{31.2 + i % 1000 * 1e-5:.5f},"lon":{121.4 + i % 997 * 1e-5:.5f},'
        '"accuracy_m":12.0,',
        "vitals": f'"heart_rate_bpm":{60 + i % 40},"spo2_pct":{95 + i % 5},',
        "heartbeat": "",
        "activity": f'"steps":{i % 5000},',
        "battery": f'"battery_pct":{100 - i % 100},',
    }[kind]
    return (
        f'{{"event_id":"{event_id}","device_id":"{device}","kind":"{kind}",{fields}'
        f'"ts":"{ts.isoformat()}","received_at":"{rx.isoformat()}","source":"native"}}'
    )


async def _load(url: str, plan: EventsBenchPlan, now: datetime) -> dict[str, Any]:
    pool = await connect_pool(url, min_size=1, max_size=1, init=event_store.prepare_staging)
    replayed = min(plan.rows, 200_000)
    stored = 0
    in_store = 0.0
    began = time.monotonic()
    print(f"storing {plan.rows:,} events of {plan.devices:,} devices over {plan.days} days…")
    try:
        async with pool.acquire() as conn:
            for n, rows in enumerate(_batches(plan, now)):
                t0 = time.monotonic()
                stored += await event_store.store_rows(conn, rows)
                in_store += time.monotonic() - t0
                if n % 200 == 199:
                    elapsed = time.monotonic() - began
                    print(f"  {stored:,} rows, {stored / elapsed:,.0f} rows/s", flush=True)
            wall = time.monotonic() - began
            # The same batches again: every row a duplicate, as after a worker's restart.
            t0 = time.monotonic()
            again = 0
            for rows in _batches(plan, now, replayed):
                again += await event_store.store_rows(conn, rows)
            replay_s = time.monotonic() - t0
    finally:
        await pool.close()
    return {
        "rows": stored,
        "wall_s": round(wall, 1),
        "rows_per_s": round(stored / wall),
        "store_s": round(in_store, 1),
        "store_rows_per_s": round(stored / in_store),
        "replayed_rows": replayed,
        "replayed_stored_again": again,
        "replay_rows_per_s": round(replayed / replay_s),
    }


async def _storage(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE events")
        found = await partitions.list_partitions(conn)
        total = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits"
            " WHERE inhparent = 'events'::regclass"
        )
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY 1",
            max(found, key=lambda p: p.rows).name,
        )
    finally:
        await conn.close()
    return {
        "partitions": [
            {"name": p.name, "rows_estimate": p.rows, "mb": round(p.bytes / 2**20)} for p in found
        ],
        "total_mb": round(int(total) / 2**20),
        "indexes_of_a_day": [r["indexdef"] for r in indexes],
    }


# -- reading ---------------------------------------------------------------------------


async def _timelines(url: str, plan: EventsBenchPlan, now: datetime) -> dict[str, Any]:
    devices = random.Random(7).sample(range(plan.devices), plan.samples)
    since, until = now - timedelta(hours=24), now
    cold: list[float] = []
    found: list[int] = []
    for device in devices:  # a new connection each: nothing of it cached in the session
        conn = await asyncpg.connect(url)
        try:
            took, items = await _timeline(conn, f"bench-{device}", since, until)
        finally:
            await conn.close()
        cold.append(took)
        found.append(items)
    warm: list[float] = []
    conn = await asyncpg.connect(url)
    try:
        for _ in range(plan.warm_rounds):
            for device in devices:
                warm.append((await _timeline(conn, f"bench-{device}", since, until))[0])
        explained = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + _EVENTS,
            [f"bench-{devices[0]}"], since, until, None, None, None, 201,
        )  # fmt: skip
    finally:
        await conn.close()
    plan_text = [r[0] for r in explained]
    words = {w for line in plan_text for w in line.split()}
    days_read = sorted({w[:16] for w in words if re.match(r"events_p\d{8}", w)})
    index_used = any("device_id_ts_idx" in line for line in plan_text)
    return {
        "window_h": 24,
        "page": 200,
        "items_per_page": percentiles(found)["p50"],
        "cold_ms": _ms(percentiles(cold)),
        "warm_ms": _ms(percentiles(warm)),
        "explain": plan_text,
        "partitions_read": days_read,
        # A 24-hour window spans two days at most: the others are pruned.
        "pruned": len(days_read) <= 2 and index_used,
    }


async def _timeline(
    conn: asyncpg.Connection, device_id: str, since: datetime, until: datetime
) -> tuple[float, int]:
    t0 = time.perf_counter()
    items, _ = await history_views.timeline(
        conn, resident_id=0, device_ids=[device_id], since=since, until=until, limit=200
    )
    return time.perf_counter() - t0, len(items)


def _ms(p: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(v * 1000, 2) for k, v in p.items()}


def _print(result: dict[str, Any]) -> None:
    ins, tl = result["insert"], result["timeline"]
    print(
        f"\nstored {ins['rows']:,} rows in {ins['wall_s']} s: {ins['rows_per_s']:,} rows/s"
        f" ({ins['store_rows_per_s']:,} rows/s inside store_rows); a replay of"
        f" {ins['replayed_rows']:,} stored {ins['replayed_stored_again']} again"
        f" ({ins['replay_rows_per_s']:,} rows/s)"
    )
    print(f"{len(result['storage']['partitions'])} partitions, {result['storage']['total_mb']} MB")
    print(
        f"24 h timeline of one device (page of {tl['page']}, {tl['items_per_page']} items):"
        f" cold p50 {tl['cold_ms']['p50']} ms p95 {tl['cold_ms']['p95']} ms,"
        f" warm p50 {tl['warm_ms']['p50']} ms p95 {tl['warm_ms']['p95']} ms"
    )
    print(f"partitions read: {', '.join(tl['partitions_read'])}")
