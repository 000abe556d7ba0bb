"""`carewatch bench-api`: the monitoring-centre API on a full database, measured.

On an embedded PostgreSQL of its own it stores `residents` residents (one device each,
spread over 200 communities of 10 districts), `events` events of the last 30 days and
`alerts` alerts (all resolved but `open_alerts`, the live queue), then starts `carewatch
api` as a process, as production runs it, and measures from a client process:

- `GET /api/v1/alerts?status=open`: the queue, as an admin (the whole city) and as an
  operator of one district, one request at a time and 8 at once;
- `GET /api/v1/residents/{id}/timeline`: a random resident's last 24 hours;
- `GET /api/v1/stream`: `sse_clients` streams open at once; alert changes are committed
  one every 25 ms and each stream's receive time is compared with the commit's.

It prints the percentiles and writes them, with the machine and the data sizes, to a JSON
report (docs/api-benchmark.md reads one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import signal
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from alerts import partitions, store
from api import users
from carewatch.bench import in_a_fresh_directory, percentiles, write_report
from carewatch.extras import needs_extra
from plumbing.db import connect_pool, migrate

with needs_extra("embedded", "carewatch bench-api"):
    from carewatch.embedded.postgres import EmbeddedPostgres
    from carewatch.embedded.process import free_port

__all__ = ["ApiBenchPlan", "run_bench_api"]

_CHUNK = 500_000  # events per INSERT: progress to print, and bounded memory in PostgreSQL
_KINDS = ("location", "battery", "vitals", "heartbeat", "activity")


@dataclass(frozen=True)
class ApiBenchPlan:
    residents: int = 5_000
    events: int = 10_000_000
    alerts: int = 100_000
    open_alerts: int = 1_000
    requests: int = 300
    sse_clients: int = 500
    sse_changes: int = 200

    @classmethod
    def small(cls) -> ApiBenchPlan:
        return cls(residents=200, events=20_000, alerts=2_000, open_alerts=100, requests=30,
                   sse_clients=20, sse_changes=20)  # fmt: skip


def run_bench_api(plan: ApiBenchPlan, *, report: Path | None) -> int:
    write_report(in_a_fresh_directory("carewatch-bench-api-", lambda d: _bench(plan, d)), report)
    return 0


async def _bench(plan: ApiBenchPlan, workdir: Path) -> dict[str, Any]:
    async with EmbeddedPostgres(data_dir=workdir / "postgres") as postgres:
        pool = await connect_pool(postgres.url, min_size=1, max_size=4)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            load_s = await _load(pool, plan)
            admin, operator = await _logins(pool)
            async with _api(postgres.url, workdir) as base:
                result = await _measure(pool, base, plan, admin, operator)
            async with pool.acquire() as conn:
                result["indexes"] = await _indexes(conn)
        finally:
            await pool.close()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
        },
        "plan": asdict(plan),
        "load_s": round(load_s, 1),
        **result,
    }


# -- the data ---------------------------------------------------------------------------

_RESIDENTS = """
INSERT INTO residents (name, area, home_lat, home_lon)
SELECT 'resident ' || g,
       'city/d' || (g % 10) || '/s' || (g / 10 % 5) || '/c' || (g / 50 % 4),
       31.20 + (g % 100) * 0.001, 121.40 + (g % 97) * 0.001
FROM generate_series(1, $1::bigint) g
"""
_DEVICES = """
INSERT INTO devices (device_id, format, resident_id)
SELECT 'bench-' || resident_id, 'native', resident_id FROM residents
"""
# Spread evenly over the last 30 days, every device in turn; bodies as ingest stores them.
_EVENTS = """
INSERT INTO events (event_id, device_id, kind, ts, received_at, source, body)
SELECT md5('bench' || g), 'bench-' || (g % $3 + 1), k, t, t, 'native',
       CASE k
         WHEN 'location' THEN jsonb_build_object('kind', k, 'device_id', 'bench-' || (g % $3 + 1),
              'ts', t, 'lat', 31.2 + (g % 1000) * 0.00001, 'lon', 121.4 + (g % 997) * 0.00001,
              'accuracy_m', 12)
         WHEN 'vitals' THEN jsonb_build_object('kind', k, 'device_id', 'bench-' || (g % $3 + 1),
              'ts', t, 'heart_rate_bpm', 60 + g % 40)
         WHEN 'battery' THEN jsonb_build_object('kind', k, 'device_id', 'bench-' || (g % $3 + 1),
              'ts', t, 'battery_pct', 100 - g % 100)
         ELSE jsonb_build_object('kind', k, 'device_id', 'bench-' || (g % $3 + 1), 'ts', t)
       END
FROM (SELECT g, (ARRAY['location','battery','vitals','heartbeat','activity'])[g % 5 + 1] AS k,
             now() - make_interval(secs => (($4::bigint - g) * 2592000.0 / $4::bigint)) AS t
      FROM generate_series($1::bigint, $2::bigint) g) s
"""
_RESOLVED = """
INSERT INTO alerts (kind, device_id, severity, status, count, first_ts, last_ts, opened_at,
                    updated_at, summary, resident_id, subject, acknowledged_at,
                    acknowledged_by, resolved_at, resolved_by, resolution)
SELECT k, 'bench-' || r, CASE WHEN k IN ('sos', 'fall') THEN 'critical' ELSE 'warning' END,
       'resolved', 1, t, t, t, t + interval '5 min', 'bench', r, 'device:bench-' || r,
       t + interval '1 min', 'operator', t + interval '5 min', 'operator', 'bench'
FROM (SELECT (g % $2 + 1) AS r,
             (ARRAY['sos','fall','battery_low','device_silent','geofence_exit'])[g % 5 + 1] AS k,
             now() - make_interval(secs => g * 25.0) AS t
      FROM generate_series(1, $1::bigint) g) s
"""
_OPEN = """
INSERT INTO alerts (kind, device_id, severity, status, count, first_ts, last_ts, opened_at,
                    updated_at, summary, resident_id, subject)
SELECT 'sos', 'bench-' || r, 'critical', 'open', 1, t, t, t, t, 'SOS', r, 'resident:' || r
FROM (SELECT g AS r, now() - make_interval(secs => g * 30.0) AS t
      FROM generate_series(1, $1::bigint) g) s
"""


async def _load(pool: asyncpg.Pool, plan: ApiBenchPlan) -> float:
    began = time.monotonic()
    async with pool.acquire() as conn:
        print(f"storing {plan.residents:,} residents and their devices…", flush=True)
        await conn.execute(_RESIDENTS, plan.residents)
        await conn.execute(_DEVICES)
        # The events table is partitioned by day: the 30 days of history need their days.
        today = datetime.now(UTC).date()
        await partitions.add_days(conn, {today - timedelta(days=n) for n in range(32)}, why="bench")
        for lo in range(1, plan.events + 1, _CHUNK):
            hi = min(lo + _CHUNK - 1, plan.events)
            await conn.execute(_EVENTS, lo, hi, plan.residents, plan.events)
            print(f"  events {hi:,} of {plan.events:,} ({time.monotonic() - began:.0f} s)",
                  flush=True)  # fmt: skip
        print(f"storing {plan.alerts:,} alerts…", flush=True)
        await conn.execute(_RESOLVED, plan.alerts - plan.open_alerts, plan.residents)
        await conn.execute(_OPEN, min(plan.open_alerts, plan.residents))
        await conn.execute("ANALYZE")
    return time.monotonic() - began


async def _logins(pool: asyncpg.Pool) -> tuple[dict[str, str], dict[str, str]]:
    logins = []
    async with pool.acquire() as conn:
        for name, role, area in (("bench-admin", "admin", ""), ("bench-op", "operator", "city/d3")):
            await users.add_user(conn, name=name, role=role, area=area)
            logins.append({"Authorization": f"Bearer {await users.issue_token(conn, name)}"})
    return logins[0], logins[1]


async def _indexes(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT indexdef FROM pg_indexes WHERE tablename IN ('alerts', 'events', 'alert_history',"
        " 'residents', 'devices') ORDER BY tablename, indexname"
    )
    return [r["indexdef"] for r in rows]


@contextlib.asynccontextmanager
async def _api(database_url: str, workdir: Path) -> AsyncIterator[str]:
    """`carewatch api` as its own process; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREWATCH_")} | {
        "CAREWATCH_DATABASE_URL": database_url,
        "CAREWATCH_DATA_DIR": str(workdir),
        "CAREWATCH_API_PORT": str(port),
        "CAREWATCH_METRICS_PORT": "0",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "carewatch.cli", "api", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)


# -- measuring ----------------------------------------------------------------------------


async def _measure(
    pool: asyncpg.Pool,
    base: str,
    plan: ApiBenchPlan,
    admin: dict[str, str],
    operator: dict[str, str],
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=plan.sse_clients + 50)
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=30, limits=limits) as api:
        queue = "/alerts?status=open"
        result: dict[str, Any] = {}
        print("measuring the open-alert queue…", flush=True)
        result["alerts_open_admin_ms"] = await _timed(api, lambda: queue, admin, plan.requests)
        result["alerts_open_operator_ms"] = await _timed(
            api, lambda: queue, operator, plan.requests
        )
        result["alerts_open_admin_8_at_once_ms"] = await _timed(
            api, lambda: queue, admin, plan.requests, concurrency=8
        )
        print("measuring residents' timelines…", flush=True)
        rng = random.Random(1)
        timeline = lambda: f"/residents/{rng.randint(1, plan.residents)}/timeline"  # noqa: E731
        result["timeline_24h_ms"] = await _timed(api, timeline, admin, plan.requests)
        print(f"measuring {plan.sse_clients} live streams…", flush=True)
        result["stream"] = await _stream(api, pool, plan, admin, f"{base}/healthz")
    _print(result)
    return result


async def _timed(
    api: httpx.AsyncClient,
    path: Callable[[], str],
    headers: dict[str, str],
    count: int,
    *,
    concurrency: int = 1,
) -> dict[str, Any]:
    took: list[float] = []
    failed = 0
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal failed
        async with gate:
            began = time.perf_counter()
            answer = await api.get(path(), headers=headers)
            took.append((time.perf_counter() - began) * 1000)
            failed += answer.status_code != 200

    await one()  # warm: connections, plans
    took.clear()
    await asyncio.gather(*(one() for _ in range(count)))
    return {**percentiles(took), "requests": count, "failed": failed}


async def _stream(
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    plan: ApiBenchPlan,
    admin: dict[str, str],
    health_url: str,
) -> dict[str, Any]:
    received: dict[int, list[float]] = defaultdict(list)
    ready = asyncio.Semaphore(0)
    readers = [
        asyncio.create_task(_read_stream(api, admin, received, ready))
        for _ in range(plan.sse_clients)
    ]
    try:
        for _ in readers:
            await asyncio.wait_for(ready.acquire(), 60)
            failed = next((r for r in readers if r.done()), None)
            if failed is not None:
                failed.result()  # raises what stopped it
        await _until_streams(api, health_url, plan.sse_clients)
        committed = await _commit_changes(pool, plan.sse_changes)

        async def arrived() -> bool:
            return all(len(received.get(h, ())) >= plan.sse_clients for h in committed)

        await _until(arrived, within=30)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    latencies = [
        (at - committed[history_id]) * 1000
        for history_id, ats in received.items() if history_id in committed
        for at in ats
    ]  # fmt: skip
    expected = len(committed) * plan.sse_clients
    return {
        "clients": plan.sse_clients,
        "changes": len(committed),
        "deliveries": len(latencies),
        "missing": expected - len(latencies),
        "commit_to_client_ms": percentiles(latencies),
    }


async def _read_stream(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    received: dict[int, list[float]],
    ready: asyncio.Semaphore,
) -> None:
    async with api.stream("GET", "/stream", headers=headers) as response:
        ready.release()
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                received[int(line[4:])].append(time.time())


async def _until_streams(api: httpx.AsyncClient, health_url: str, count: int) -> None:
    """Until the API's feed holds `count` streams (the responses start before that)."""

    async def holding() -> bool:
        health = (await api.get(health_url)).json()
        return bool(health["feed"]["streams"] >= count)

    await _until(holding, within=60)


async def _commit_changes(pool: asyncpg.Pool, count: int) -> dict[int, float]:
    """Acknowledge `count` open alerts, one every 25 ms; each change's commit time."""
    committed: dict[int, float] = {}
    async with pool.acquire() as conn:
        open_ids = await conn.fetch(
            "SELECT alert_id FROM alerts WHERE status = 'open' ORDER BY alert_id LIMIT $1", count
        )
        for row in open_ids:
            await store.acknowledge(conn, row["alert_id"], by="bench")
            committed_at = time.time()
            history_id = await conn.fetchval(
                "SELECT max(history_id) FROM alert_history WHERE alert_id = $1", row["alert_id"]
            )
            committed[history_id] = committed_at
            await asyncio.sleep(0.025)
    return committed


async def _until(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    """Until `check` holds, or `within` seconds pass (what is missing is then counted)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)


def _print(result: dict[str, Any]) -> None:
    print(f"{'what':<34}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    rows = {k: v for k, v in result.items() if k.endswith("_ms")}
    rows["stream commit→client"] = result["stream"]["commit_to_client_ms"]
    for name, p in rows.items():
        cells = "".join(f"{p[q]:>9.1f}" if p[q] is not None else f"{'-':>9}"
                        for q in ("p50", "p95", "p99", "max"))  # fmt: skip
        print(f"{name:<34}{cells}")
    stream = result["stream"]
    print(f"streams: {stream['clients']} clients, {stream['deliveries']:,} deliveries, "
          f"{stream['missing']} missing")  # fmt: skip
