"""Every scenario in simulators/scenarios/ through the real pipeline (MQTT -> ingest ->
Kafka -> rules -> PostgreSQL): its device's alerts must be exactly the ones it expects.

A new scenario file is tested by being there. Before an `advance` (the rules worker's test
clock moves and its timers run) and before the alerts are compared, the test waits until
the rules worker has consumed every record the device's messages became on the events
topic, redeliveries included: its offsets stored in PostgreSQL are past them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from alerts.rule_state import stored_positions
from carewatch.cli import main
from devices import registry
from plumbing.kafka import EVENTS_TOPIC
from simulators.scenario import Expected, Scenario, load_scenario, play, scenario_files
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration

# device id -> [(partition, offset)] of its records on the events topic
Landed = dict[str, list[tuple[int, int]]]


@pytest_asyncio.fixture(scope="module")
async def landed(pipeline: Pipeline) -> AsyncIterator[Landed]:
    """Where each device's events land on the events topic, from the module's start on."""
    found: Landed = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=pipeline.stack.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    numbers = consumer.partitions_for_topic(EVENTS_TOPIC)
    assert numbers, f"{EVENTS_TOPIC} has no partitions"
    parts = [TopicPartition(EVENTS_TOPIC, p) for p in numbers]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for part in parts:  # resolve the positions now: everything published later is read
        await consumer.position(part)

    async def read() -> None:
        async for record in consumer:
            found.setdefault(record.key.decode(), []).append((record.partition, record.offset))

    reader = asyncio.create_task(read())
    yield found
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await consumer.stop()


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.name.removesuffix(".yaml"))
async def test_scenario_produces_exactly_its_expected_alerts(
    pipeline: Pipeline, landed: Landed, path: Path
) -> None:
    scenario = load_scenario(path)
    device = await _device_for(pipeline, scenario)
    published = 0

    async def publish(payload: dict[str, Any]) -> None:
        nonlocal published
        await pipeline.publish(device, payload)
        published += 1

    async def advance(by: timedelta) -> None:
        await _through_rules(pipeline, landed, device, published)
        pipeline.rules.clock_offset += by
        await pipeline.rules.tick()

    try:
        await play(scenario, publish=publish, advance=advance)
        await _through_rules(pipeline, landed, device, published)
    finally:
        pipeline.rules.clock_offset = timedelta(0)
    _assert_exactly(scenario, await pipeline.alerts(device))


async def _device_for(pipeline: Pipeline, scenario: Scenario) -> str:
    """A new device; with the scenario's resident and overrides once the worker has them
    (the unit tests check every scenario's overrides as `carewatch rules check` does)."""
    overrides = scenario.resident.overrides
    if not overrides:
        return await pipeline.register()
    return await pipeline.resident_device(
        overrides, name=scenario.name, timezone=scenario.resident.timezone
    )


async def _through_rules(pipeline: Pipeline, landed: Landed, device: str, published: int) -> None:
    """Until the rules worker's stored offset is past the device's newest record, once
    each message published so far is a record (a repeat is one too, and must be counted
    once by the rules, not merely arrive). A rejected message fails with its reason."""
    group = pipeline.rules.group_id  # whose offsets, with its state, are in PostgreSQL

    async def probe() -> bool:
        rejects = {
            f"{r['reason']}: {r['detail']}" for r in pipeline.dlq if r["device_id"] == device
        }
        assert not rejects, f"ingest rejected scenario steps: {sorted(rejects)}"
        records = landed.get(device, [])
        if len(records) < published:
            return False
        partition, newest = max(records)  # one device, one partition
        async with pipeline.db.acquire() as conn:
            done = (await stored_positions(conn, group, EVENTS_TOPIC)).get(partition)
        return done is not None and done > newest

    await eventually(probe)


def _assert_exactly(scenario: Scenario, alerts: list[dict[str, Any]]) -> None:
    """Each expected alert matches its own alert, and no alert is left over."""
    left = list(alerts)
    # The most specific expectations first, so a vaguer one cannot take their alert.
    for expected in sorted(
        scenario.expect, key=lambda e: (e.resolution is None, e.severity is None)
    ):
        match = next((a for a in left if _matches(expected, a)), None)
        assert match is not None, f"{scenario.name}: no alert like {expected!r} in {_brief(alerts)}"
        left.remove(match)
    assert not left, f"{scenario.name}: alerts it does not expect: {_brief(left)}"


def _matches(expected: Expected, alert: dict[str, Any]) -> bool:
    return (
        (alert["kind"], alert["status"], alert["count"])
        == (expected.kind, expected.status, expected.count)
        and expected.severity in (None, alert["severity"])
        and (expected.resolution is None or expected.resolution in (alert["resolution"] or ""))
    )


def _brief(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("kind", "status", "count", "severity", "resolution")
    return [tuple(a[k] for k in keys) for a in alerts]


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
    async with pipeline.db.acquire() as conn:
        devices = await registry.list_devices(conn)
    (device,) = [d for d in devices if d.device_id.startswith("scenario-fall-cancelled-")]
    (alert,) = await pipeline.alerts(device.device_id)
    assert (alert["kind"], alert["status"]) == ("fall", "resolved")
