"""The benchmark's arithmetic and bookkeeping, without running it."""

from __future__ import annotations

from carewatch.bench import BenchPlan, _group, percentiles


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "max": 7.0}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None}


def test_processes_are_grouped_by_what_they_run() -> None:
    assert _group(["python", "-m", "carewatch.cli", "ingest"]) == "ingest"
    assert _group(["python", "-m", "carewatch.cli", "watch-gateway"]) == "watch-gateway"
    assert _group(["/x/bin/postgres", "-D", "/d"]) == "postgres"
    assert _group(["postgres: postgres postgres 127.0.0.1 idle"]) == "postgres"
    assert _group(["/x/tansu", "broker"]) == "tansu"
    assert _group(["mosquitto", "-c", "m.conf"]) == "mosquitto"
    assert _group(["sleep", "1"]) is None


def test_short_mode_stays_short() -> None:
    plan = BenchPlan.short()
    started = 40  # s: stack, services, registration and connections, measured
    per_step = plan.step_s + plan.drain_s
    assert started + plan.warmup_s + per_step * len(plan.rates) < 180
