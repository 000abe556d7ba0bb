"""`carewatch bench-notify --small` end to end: its own embedded stack and services (the
notifier among them), SOS presses under load and a small mass event, every webhook checked
at the bench's receiver, and the report."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from carewatch.bench_notify import STAGES, NotifyBenchPlan, run_bench_notify
from plumbing.settings import Settings

pytestmark = pytest.mark.integration


def test_a_small_notify_bench_notifies_every_alert_once(tmp_path: Path) -> None:
    plan = NotifyBenchPlan.small()
    report = tmp_path / "report.json"
    status = run_bench_notify(Settings(data_dir=tmp_path), plan, report=report)

    result = orjson.loads(report.read_bytes())
    assert status == 0
    press, mass = result["press_to_webhook_ms"], result["mass_event"]
    assert press["notified"] == press["presses"] == plan.presses
    assert {"p50", "p95", "p99", "max"} <= set(press)
    assert set(press["stages_ms"]) == set(STAGES)
    assert mass["every_alert_notified"] and mass["alerts_notified"] == plan.mass
    # One step, one contact, a wait longer than the run: each alert is notified once.
    assert mass["posts"] == mass["distinct_notifications"] == plan.mass
    assert mass["duplicates"] == 0 and mass["not_delivered"] == 0
    assert mass["last_notified_s"] > 0 and mass["press_to_webhook_ms"]["max"] is not None
    assert result["bad_signatures"] == 0
    assert set(result["met"]) == {"press_to_webhook_p99", "mass_all_notified", "mass_none_twice"}
    assert result["machine"]["cpus"] and len(result["machine"]["load_avg_after"]) == 3
