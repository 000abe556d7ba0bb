"""Each vendor format end to end: over MQTT, with its real account, into stored events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carewatch.embedded import free_port
from devices import registry
from devices.codecs.watch_frames import FrameSplitter
from ingest.watch_gateway import WatchGateway
from plumbing.mqtt import MqttClient, MqttError
from simulators import lorawan, owntracks
from simulators.watch import Fix, WatchEncoder
from tests.integration.conftest import Pipeline, eventually

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


async def test_a_watch_over_tcp_reaches_stored_telemetry_and_alerts(pipeline: Pipeline) -> None:
    device = await pipeline.register(str(uuid.uuid4().int)[:10], format="watch")
    gateway_mqtt = MqttClient(
        url=pipeline.stack.mqtt_urls["gateway"],
        client_id=f"test-gw-{uuid.uuid4().hex[:8]}",
        protocol=pipeline.stack.mqtt_protocol,
    )
    encoder = WatchEncoder(device)
    now = datetime.now(UTC).replace(microsecond=0)
    async with (
        gateway_mqtt,
        WatchGateway(mqtt=gateway_mqtt, host="127.0.0.1", port=free_port()) as gateway,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(encoder.link(steps=1200, battery=76) + encoder.alarm(now, sos=True))
        await writer.drain()
        splitter, replies = FrameSplitter(), list[bytes]()
        while len(replies) < 2:  # LK and AL answered, each only after its publish
            data = await asyncio.wait_for(reader.read(1024), 20)
            assert data, f"gateway hung up after {replies}"
            replies += splitter.feed(data)
        writer.close()

    alert = await pipeline.wait_alert(device, "sos")
    assert alert["lat"] is None  # no GPS fix in the alarm frame: alerts all the same

    async def stored() -> bool:  # the alert (alarm lane) may come before the rows
        kinds = {e["kind"] for e in await pipeline.events(device)}
        return {"heartbeat", "battery", "sos"} <= kinds

    await eventually(stored)


async def test_a_watch_on_local_time_is_stored_at_the_right_time(pipeline: Pipeline) -> None:
    beijing = ZoneInfo("Asia/Shanghai")
    device = await pipeline.register(str(uuid.uuid4().int)[:10], format="watch")
    gateway = await pipeline.service_account("gateway")
    async with pipeline.db.acquire() as conn:
        await registry.set_clock(conn, device, "Asia/Shanghai")  # after ingest knew it as UTC
    encoder = WatchEncoder(device, clock=beijing)
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)

    async def ingest_knows() -> bool:  # by NOTIFY, without a restart
        cached = pipeline.ingest.directory.cached(device)
        return cached is not None and cached.clock_tz == "Asia/Shanghai"

    await eventually(ingest_knows)
    await pipeline.publish_as(gateway, encoder.topic, encoder.report(sent, fix=Fix(31.2, 121.4)))
    events = await pipeline.wait_events(device, 3)  # read as UTC it would be 8 h ahead: refused
    assert {e["kind"]: e["ts"] for e in events} == {
        "location": sent,
        "battery": sent,
        "activity": sent,
    }
