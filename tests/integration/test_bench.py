"""`carewatch bench` end to end on a tiny plan: its own embedded stack, the services as
processes, load devices on their own connections, SOS presses, and the report."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from carewatch.bench import BenchPlan, run_bench
from plumbing.settings import Settings

pytestmark = pytest.mark.integration


def test_a_tiny_bench_loses_nothing_and_every_sos_alerts(tmp_path: Path) -> None:
    plan = BenchPlan(rates=(200,), step_s=3, devices=10, sos_per_step=3, drain_s=20, warmup_s=1)
    report, plot = tmp_path / "report.json", tmp_path / "bench.png"
    status = run_bench(Settings(data_dir=tmp_path), plan, report=report, plot=plot)

    result = orjson.loads(report.read_bytes())
    assert status == 0
    assert (result["lost"], result["duplicated"]) == (0, 0)
    assert result["settle"]["settled"] is True
    (step,) = result["steps"]
    assert step["sos_alerted"] == step["sos_sent"] == 3
    assert step["acked_events"] > 0 and step["dlq"] == 0
    assert {"p50", "p95", "p99", "max"} <= set(result["sos_latency_ms"])
    assert {"ingest", "alarms", "rules", "telemetry", "postgres", "tansu", "load generator"} <= set(
        step["processes"]
    )
    assert result["machine"]["cpus"] and plot.read_bytes().startswith(b"\x89PNG")
