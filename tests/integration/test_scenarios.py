"""Every scenario in simulators/scenarios/ through the real pipeline (MQTT -> ingest ->
Kafka -> rules -> PostgreSQL): its device's alerts must be exactly the ones it expects.

A new scenario file is tested by being there. `advance` steps move the rules worker's test
clock and run its timers, once the worker has handled everything sent before them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from carewatch.cli import main
from devices import registry
from simulators.scenario import Scenario, load_scenario, play, scenario_files
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.stem)
async def test_scenario_produces_exactly_its_expected_alerts(
    pipeline: Pipeline, path: Path
) -> None:
    scenario = load_scenario(path)
    device = await _device_for(pipeline, scenario)
    sent: set[tuple[str, str]] = set()

    async def publish(payload: dict[str, Any]) -> None:
        sent.add((payload["kind"], str(payload["msg_id"])))
        await pipeline.publish(device, payload)

    async def advance(by: timedelta) -> None:
        await _rules_caught_up(pipeline, device, len(sent))
        pipeline.rules.clock_offset += by
        await pipeline.rules.tick()

    try:
        await play(scenario, publish=publish, advance=advance)
        await _rules_caught_up(pipeline, device, len(sent))
    finally:
        pipeline.rules.clock_offset = timedelta(0)

    alerts = await pipeline.alerts(device)
    got = sorted((a["kind"], a["status"], a["count"]) for a in alerts)
    assert got == sorted((e.kind, e.status, e.count) for e in scenario.expect), scenario.name
    for expected in scenario.expect:
        if expected.resolution is not None:
            (alert,) = [a for a in alerts if a["kind"] == expected.kind]
            assert expected.resolution in (alert["resolution"] or ""), alert


async def _device_for(pipeline: Pipeline, scenario: Scenario) -> str:
    """A new device; with the scenario's resident and overrides once the worker has them."""
    overrides = scenario.resident.overrides
    if not overrides:
        return await pipeline.register()
    async with pipeline.db.acquire() as conn:
        resident = await registry.add_resident(
            conn, name=scenario.name, timezone=scenario.resident.timezone
        )
        await conn.execute(
            "INSERT INTO resident_rules (resident_id, overrides) VALUES ($1, $2)",
            resident, orjson.dumps(overrides).decode(),
        )  # fmt: skip
    device = await pipeline.register(resident_id=resident)
    await eventually(lambda: _async(_within(overrides, pipeline.rules.config_for(device))))
    return device


async def _rules_caught_up(pipeline: Pipeline, device: str, events: int) -> None:
    """Once telemetry stored `events` events of the device, and the rules worker's stored
    state has heard the newest of them (every event moves device_offline's `last_heard`)."""

    async def probe() -> bool:
        row = await pipeline.db.fetchrow(
            "SELECT count(*) AS n, max(received_at) AS newest FROM events WHERE device_id = $1",
            device,
        )
        if row["n"] < events:
            return False
        heard = await pipeline.db.fetchval(
            "SELECT (state -> 'device_offline' ->> 'last_heard')::timestamptz"
            " FROM rule_state WHERE device_id = $1",
            device,
        )
        return heard is not None and heard >= row["newest"]

    await eventually(probe)


def _within(wanted: Any, actual: Any) -> bool:
    """Whether every value in `wanted` is in `actual` (which may hold more keys)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and _within(v, actual[k]) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list | tuple)
            and len(wanted) == len(actual)
            and all(_within(w, a) for w, a in zip(wanted, actual, strict=True))
        )
    return bool(wanted == actual)


async def _async(value: bool) -> bool:
    return value


async def test_the_cli_plays_a_scenario_as_a_new_device_and_checks_its_alerts(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As an operator would against `carewatch up`: the stack found from its stack.json.
    monkeypatch.setenv("CAREWATCH_DATA_DIR", str(pipeline.stack.settings.data_dir))
    for name in ("DATABASE_URL", "MQTT_URL", "KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(f"CAREWATCH_{name}", raising=False)
    monkeypatch.setenv("CAREWATCH_MQTT_PROTOCOL", pipeline.stack.mqtt_protocol)
    play_it = ["scenario", "play", "fall_cancelled", "--check", "--within", "30"]
    assert await asyncio.to_thread(main, play_it) == 0
    (device,) = await pipeline.db.fetch(
        "SELECT device_id FROM devices WHERE device_id LIKE 'scenario-fall-cancelled-%'"
    )
    (alert,) = await pipeline.alerts(device["device_id"])
    assert (alert["kind"], alert["status"]) == ("fall", "resolved")
