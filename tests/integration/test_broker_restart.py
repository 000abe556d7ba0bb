"""What devices send while mosquitto restarts reaches ingest once it is back.

mosquitto 2.0 saves a persistent session (its queue, its plain subscriptions) when it
stops and restores it when it starts, but not the session's shared subscriptions: with
one, a message published between the broker's restart and ingest's return found no
subscriber, was acknowledged to the device all the same, and was gone. The fault table
(`carewatch faults`) lost 35 to 220 events this way per restart."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import pytest

from carewatch.embedded import EmbeddedMqtt
from devices.codecs.native import topic_for
from ingest.pipeline import subscription_filter
from plumbing.mqtt import MqttClient
from plumbing.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_message_sent_while_ingest_is_away_over_a_broker_restart_arrives(
    tmp_path: Path,
) -> None:
    device = f"restart-{uuid.uuid4().hex[:8]}"
    received: asyncio.Queue[bytes] = asyncio.Queue()

    def ingest(broker: EmbeddedMqtt) -> MqttClient:
        def on_message(message: paho.MQTTMessage, _generation: int) -> None:
            received.put_nowait(message.payload)

        return MqttClient(
            url=broker.url,
            client_id="carewatch-ingest-test",
            persistent_session=True,
            # The filter ingest subscribes to, with the default settings.
            subscriptions=(subscription_filter(topic_for("+"), Settings().mqtt_share_group),),
            on_message=on_message,
        )

    async with EmbeddedMqtt(data_dir=tmp_path, broker="mosquitto") as broker:
        first = ingest(broker)
        await first.start()
        await first.subscribed()
        await first.stop()  # ingest away; its session stays with the broker
        assert broker.process is not None
        await broker.process.restart()
        await broker.process.wait_port(urlsplit(broker.url).port or 0)

        sender = MqttClient(url=broker.url, client_id=device)
        await sender.start()
        await sender.publish(topic_for(device), b'{"kind":"sos"}')  # acknowledged
        await sender.stop()

        back = ingest(broker)
        await back.start()
        try:
            assert await asyncio.wait_for(received.get(), 10) == b'{"kind":"sos"}'
        finally:
            await back.stop()
