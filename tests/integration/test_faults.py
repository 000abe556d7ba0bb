"""`carewatch faults` on a short plan: real processes under load, a worker killed with
SIGKILL and the Kafka broker frozen, and what the table counts afterwards. The SOS presses
come on the alarm topic, as devices are asked to send them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from carewatch.faults import FaultPlan, run_faults
from plumbing.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


def test_a_killed_worker_and_a_frozen_kafka_lose_nothing(tmp_path: Path) -> None:
    plan = FaultPlan(
        faults=("rules", "kafka"),
        rate=200,
        devices=10,
        before_s=3,
        after_s=6,
        outage_s=6,
        sos_every_s=1.5,
        settle_s=90,
    )
    report = tmp_path / "faults.json"

    status = run_faults(Settings(data_dir=tmp_path), plan, report=report)

    rows = {row["fault"]: row for row in orjson.loads(report.read_bytes())["faults"]}
    assert set(rows) == {"rules", "kafka"}
    for row in rows.values():
        assert row["events_acked"] > 1000
        assert (row["events_lost"], row["events_duplicated"]) == (0, 0)
        assert row["sos_alerted_once"] == row["sos_pressed"] == plan.presses
    # The alarms did not wait for the restarted rules process (5-6 s) nor for Kafka to come
    # back: the alarm fast path raised them from the broker meanwhile.
    assert rows["rules"]["recovery_s"] > 1  # the rules process was down (its /healthz)
    assert rows["rules"]["sos_worst_alert_s"] < 2
    assert rows["kafka"]["sos_worst_alert_s"] < plan.outage_s - plan.sos_every_s
    assert status == 0


def test_an_unknown_fault_is_refused_before_anything_starts(tmp_path: Path) -> None:
    plan = FaultPlan(faults=("rules", "meteor"))

    assert run_faults(Settings(data_dir=tmp_path), plan, report=None) == 2
