"""Each vendor format end to end: over MQTT, with its real account, into stored events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from carewatch.mqtt import MqttError
from simulators import lorawan, owntracks
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


async def test_an_owntracks_phone_is_stored_as_a_wearable(pipeline: Pipeline) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    device = await pipeline.register(f"{user}:phone", format="owntracks")
    now = int(datetime.now(UTC).timestamp())
    fix = owntracks.location(lat=31.2304, lon=121.4737, tst=now, tid="ph", acc=12, batt=64)
    await pipeline.publish_as(device, f"owntracks/{user}/phone", owntracks.encode(fix))

    rows = await pipeline.wait_events(device, 2)
    assert {r["kind"] for r in rows} == {"location", "battery"}
    assert all(r["source"] == "owntracks" for r in rows)


async def test_a_ttn_call_button_press_is_an_sos(pipeline: Pipeline) -> None:
    device = await pipeline.register(f"ws101-{uuid.uuid4().hex[:8]}", format="ttn", model="ws101")
    network = await pipeline.service_account("lorawan")
    topic, payload = lorawan.ttn_uplink(
        device, lorawan.ws101_press("short"), f_cnt=7, received_at=datetime.now(UTC)
    )
    await pipeline.publish_as(network, topic, payload)

    alert = await pipeline.wait_alert(device, "sos")
    assert alert["status"] == "open"


async def test_a_chirpstack_radar_fall_is_a_fall(pipeline: Pipeline) -> None:
    dev_eui = uuid.uuid4().hex[:16]
    device = await pipeline.register(dev_eui, format="chirpstack")
    network = await pipeline.service_account("lorawan")
    topic, payload = lorawan.chirpstack_uplink(
        dev_eui, lorawan.vs373_alarm("fall"), f_cnt=1, time=datetime.now(UTC),
        tags={"model": "vs373"},
    )  # fmt: skip
    await pipeline.publish_as(network, topic, payload)

    alert = await pipeline.wait_alert(device, "fall")
    assert alert["severity"] == "critical"


async def test_a_network_server_cannot_publish_as_a_device(pipeline: Pipeline) -> None:
    network = await pipeline.service_account("lorawan")
    with pytest.raises(MqttError, match="refused"):
        await pipeline.publish_as(network, "carewatch/v1/devices/someone/up", b'{"kind":"sos"}')
