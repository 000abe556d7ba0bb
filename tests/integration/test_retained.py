"""A retained SOS is one alarm, not one per subscription: the broker keeps the message and
would hand it to every ingest that subscribes later (a restart, another replica)."""

from __future__ import annotations

import uuid

import orjson
import pytest

from alerts import store
from devices.codecs.native import topic_for
from ingest.pipeline import Ingest
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


async def test_a_retained_sos_is_not_replayed_to_an_ingest_that_subscribes_later(
    pipeline: Pipeline, device: str
) -> None:
    client = await pipeline.client(device)
    # No msg_id and no ts: a replay would get a new event id, so only not replaying helps.
    await client.publish(topic_for(device), orjson.dumps({"kind": "sos"}), retain=True)
    alert = await pipeline.wait_alert(device, "sos")
    async with pipeline.db.acquire() as conn:
        await store.resolve(conn, alert["alert_id"], by="operator", note="visited, all well")

    stack, run = pipeline.stack, uuid.uuid4().hex[:8]
    later = Ingest(
        mqtt_url=stack.mqtt_urls["ingest"],
        kafka_bootstrap=stack.kafka_bootstrap,
        database_url=stack.database_url,
        client_id=f"test-ingest-later-{run}",
        mqtt_protocol=stack.mqtt_protocol,
        share_group=f"test-later-{run}" if stack.mqtt_shared else "",
    )
    async with later:
        await pipeline.settle(device)  # a live message, behind anything sent on subscribing

    sos = [a for a in await pipeline.alerts(device) if a["kind"] == "sos"]
    assert [(a["alert_id"], a["status"]) for a in sos] == [(alert["alert_id"], "resolved")]
