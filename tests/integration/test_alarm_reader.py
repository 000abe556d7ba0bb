"""The alarm fast path (`carewatch alarms`, ingest/alarm_reader.py): alarms raised straight
from the broker, beside ingest's path and never instead of it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from alerts.alarm_lane import AlarmLane
from alerts.store import get_alert
from carewatch.embedded.stack import EmbeddedStack
from devices.codecs import CODECS
from devices.codecs.native import alarm_topic_for
from ingest.admission import Admission
from ingest.alarm_reader import AlarmReader
from ingest.directory import DeviceDirectory
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def reader(stack: EmbeddedStack, pipeline: Pipeline) -> AsyncIterator[AlarmReader]:
    admission = Admission(
        codecs=CODECS.values(),
        directory=DeviceDirectory(database_url=stack.database_url),
        max_payload_bytes=64 * 1024,
        device_rate=10.0,
        device_burst=60.0,
        max_ahead_s=300.0,
    )
    async with AlarmReader(
        mqtt_url=stack.mqtt_urls["ingest"],
        client_id=f"test-alarms-{uuid.uuid4().hex[:8]}",
        admission=admission,
        raise_alarms=AlarmLane(pool=pipeline.db).raise_alarms,
        mqtt_protocol=stack.mqtt_protocol,
    ) as running:
        yield running


async def test_alarms_alert_while_the_rest_of_the_pipeline_cannot(
    pipeline: Pipeline, reader: AlarmReader
) -> None:
    """With the rules process (alarm lane and worker) down, only the fast path can raise:
    an SOS alerts at once, one device's flood of presses does not hold another's, and a
    message with no alarm raises nothing. Once the rules process is back, ingest's path
    handles the same SOS and changes nothing: one alert, opened once."""
    device, flooder, quiet = [await pipeline.register() for _ in range(3)]
    flooded_before = _outcome("device_over_allowance")
    no_alarm_before = _outcome("no_alarm")
    await pipeline.rules.stop()
    try:
        flood = [{"kind": "sos", "msg_id": f"flood-{n}"} for n in range(40)]
        client = await pipeline.client(flooder)
        await asyncio.gather(
            *(client.publish(alarm_topic_for(flooder), orjson.dumps(m)) for m in flood)
        )
        sos = orjson.dumps({"kind": "sos", "msg_id": "fast-1"})
        await (await pipeline.client(device)).publish(alarm_topic_for(device), sos)
        await pipeline.wait_alert(device, "sos")
        # A burst of five was taken for the flooder; the rest is left to ingest's path.
        assert _outcome("device_over_allowance") - flooded_before >= 30
        heartbeat = orjson.dumps({"kind": "heartbeat", "msg_id": "q-1"})
        await (await pipeline.client(quiet)).publish(alarm_topic_for(quiet), heartbeat)
        await eventually(lambda: _grew("no_alarm", no_alarm_before))
        assert await pipeline.alerts(quiet) == []
    finally:
        await pipeline.rules.start()
    await pipeline.settle(device)  # the rules worker has had the SOS too
    (alert,) = [a for a in await pipeline.alerts(device) if a["kind"] == "sos"]
    async with pipeline.db.acquire() as conn:
        changes = [h["change"] for h in (await get_alert(conn, alert["alert_id"]))["history"]]
    assert (alert["count"], changes) == (1, ["opened"])
    health = reader.health()
    assert health["ok"] and health["waiting"] == 0, health


def _outcome(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("carewatch_alarm_fast_path_messages_total", labels) or 0.0


async def _grew(outcome: str, before: float) -> bool:
    return _outcome(outcome) > before
