"""plumbing/mqtt.py's own receive path (PUBLISH parsed into `Received`) and its PUBACKs
in one write (`ack_many`), against the real broker, in MQTT 5 and 3.1.1."""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.codecs.native import topic_for
from plumbing.mqtt import MqttClient, Received, parse_mqtt_url, with_login
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration


def _publish_all(url: str, client_id: str, topic: str, messages: list[tuple[bytes, int]]) -> None:
    """As a device with paho's own client: MQTT 5 properties on the first message."""
    target = parse_mqtt_url(url)
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    client.username_pw_set(target.username, target.password)
    client.connect(target.host, target.port)
    client.loop_start()
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("vendor", "acme"), ("fw", "1.2.3")]
        props.ContentType = "application/json"
        props.MessageExpiryInterval = 3600
        for n, (payload, qos) in enumerate(messages):
            info = client.publish(topic, payload, qos=qos, properties=props if n == 0 else None)
            info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_publishes_arrive_whole_and_only_what_was_acked_is_not_sent_again(
    pipeline: Pipeline, protocol: Literal["5", "3.1.1"]
) -> None:
    device = await pipeline.register()
    topic = topic_for(device)
    url = pipeline.stack.mqtt_urls["ingest"]
    got: list[tuple[Received, int]] = []

    def subscriber() -> MqttClient:  # one client id: the same persistent session each time
        return MqttClient(
            url=url,
            client_id=f"test-lean-{protocol}-{run}",
            protocol=protocol,
            persistent_session=True,
            subscriptions=(topic,),
            on_message=lambda message, generation: got.append((message, generation)),
            manual_ack=True,
        )

    run = uuid.uuid4().hex[:8]
    big = bytes(range(256)) * 300  # a remaining length of three bytes
    sent = [(b'{"kind":"heartbeat"}', 1), (b"", 1), (big, 1), (b"qos0", 0)]
    login = with_login(pipeline.stack.mqtt_url, *pipeline.logins[device])
    async with subscriber() as first:
        await first.subscribed()
        await asyncio.to_thread(_publish_all, login, device, topic, sent)
        await eventually(lambda: _count(got, 4))
        assert [(m.topic, m.payload, m.qos, m.retain) for m, _ in got] == [
            (topic, payload, qos, False) for payload, qos in sent
        ]
        (one, gen), (two, _), (three, _) = got[:3]
        assert len({one.mid, two.mid, three.mid}) == 3 and 0 not in (one.mid, two.mid, three.mid)
        assert first.ack_many([one, two], gen) == 2
        assert first.ack_many([three], gen - 1) == 0  # another connection's: not acked
        # Stopping sends DISCONNECT after the PUBACKs: the broker has taken them.

    got.clear()
    async with subscriber() as again:
        await again.subscribed()
        await asyncio.to_thread(_publish_all, login, device, topic, [(b"after", 1)])
        await eventually(lambda: _count(got, 2))
        assert [m.payload for m, _ in got] == [big, b"after"]  # only the unacked one again
        assert again.ack_many([m for m, _ in got], got[0][1]) == 2


async def _count(got: list[tuple[Received, int]], wanted: int) -> bool:
    return len(got) >= wanted
