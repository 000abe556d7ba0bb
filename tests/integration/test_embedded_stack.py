"""The embedded stack starts real PostgreSQL, tansu and an MQTT broker, and stops them all."""

from __future__ import annotations

import asyncio
import queue
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import orjson
import paho.mqtt.client as mqtt
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion

from carewatch.embedded import EmbeddedError, EmbeddedMqtt, EmbeddedStack, free_port
from carewatch.embedded.mqtt import MOSQUITTO_SETTINGS
from plumbing.kafka import EVENTS_TOPIC
from plumbing.settings import Settings

pytestmark = pytest.mark.integration

DEPLOY_MOSQUITTO = Path(__file__).parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP", "MQTT_URL"):
        monkeypatch.delenv(f"CAREWATCH_{name}", raising=False)
    return Settings(data_dir=tmp_path)


async def test_stack_serves_all_three_and_stops(settings: Settings) -> None:
    # A stack.json left by a killed run, pointing at nothing: replaced, not refused.
    stale = {"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"}
    settings.stack_file().write_bytes(orjson.dumps(stale))

    before = set(psutil.Process().children())  # e.g. the session's own stack
    stack = EmbeddedStack(settings=settings)
    await stack.start()
    try:
        children = [c for c in psutil.Process().children() if c not in before]
        assert {c.name() for c in children} >= {"postgres", "tansu", "mosquitto"}
        recorded = orjson.loads(settings.stack_file().read_bytes())
        assert recorded["database_url"] == stack.database_url
        assert recorded["mqtt_shared"] is True and stack.mqtt_protocol == "5"
        assert [name for name, _ in stack.describe()] == ["postgres", "kafka", "mqtt", "mqtts"]
        assert recorded["mqtts_url"] == stack.mqtts_url and "ca=" in str(stack.mqtts_url)

        conn = await asyncpg.connect(stack.database_url)
        assert await conn.fetchval("select 1") == 1
        await conn.close()
        await _kafka_round_trip(stack.kafka_bootstrap)
        # Only accounts get in: the ingest account reads, the gateway account writes.
        topic = "carewatch/v1/watch/round-trip/up"
        await _mqtt_round_trip(
            stack.mqtt_urls["gateway"], stack.mqtt_urls["ingest"], stack.mqtt_protocol, topic
        )
        with pytest.raises(ConnectionRefusedError):
            await asyncio.to_thread(_connect, stack.mqtt_url, stack.mqtt_protocol)

        with pytest.raises(EmbeddedError, match="another carewatch stack is running"):
            await EmbeddedStack(settings=settings).start()
        assert settings.stack_file().exists()  # the refused stack left it alone
    finally:
        await stack.stop()

    assert not settings.stack_file().exists()
    assert not [c for c in children if c.is_running()]
    await stack.stop()  # twice is fine


async def test_amqtt_accepts_qos1(tmp_path: Path) -> None:
    async with EmbeddedMqtt(data_dir=tmp_path, broker="amqtt") as broker:
        assert (broker.broker, broker.protocol) == ("amqtt", "3.1.1")
        assert not broker.supports_shared_subscriptions
        await _mqtt_round_trip(broker.url, broker.url, broker.protocol, f"t/{uuid.uuid4().hex}")


def test_deploy_config_has_the_generated_settings() -> None:
    lines = {line.strip() for line in DEPLOY_MOSQUITTO.read_text().splitlines()}
    missing = [f"{k} {v}" for k, v in MOSQUITTO_SETTINGS.items() if f"{k} {v}" not in lines]
    assert not missing, f"{DEPLOY_MOSQUITTO} lacks {missing}"


async def _kafka_round_trip(bootstrap: str) -> None:
    key, value = uuid.uuid4().hex.encode(), b"hello"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(EVENTS_TOPIC, value, key=key)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(EVENTS_TOPIC, sent.partition)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        record = await asyncio.wait_for(consumer.getone(), 15)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (key, value)


async def _mqtt_round_trip(pub_url: str, sub_url: str, protocol: str, topic: str) -> None:
    payload = uuid.uuid4().bytes
    received = await asyncio.to_thread(
        _publish_and_receive, pub_url, sub_url, protocol, topic, payload
    )
    assert received == payload


def _publish_and_receive(
    pub_url: str, sub_url: str, protocol: str, topic: str, payload: bytes
) -> bytes:
    inbox: queue.Queue[bytes] = queue.Queue()
    subscriber = _connect(sub_url, protocol)
    subscriber.on_message = lambda _c, _u, msg: inbox.put(msg.payload)
    publisher = _connect(pub_url, protocol)
    try:
        subscribed = queue.Queue[object]()
        subscriber.on_subscribe = lambda *args: subscribed.put(args)
        subscriber.subscribe(topic, qos=1)
        subscribed.get(timeout=10)
        publisher.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
        return inbox.get(timeout=10)
    finally:
        for client in (publisher, subscriber):
            client.disconnect()
            client.loop_stop()


def _connect(url: str, protocol: str) -> mqtt.Client:
    version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex, protocol=version)
    connected = queue.Queue[object]()
    client.on_connect = lambda *args: connected.put(args)
    parts = urlsplit(url)
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    _, _, _, reason, _ = connected.get(timeout=10)
    if reason.is_failure:
        client.loop_stop()
        raise ConnectionRefusedError(str(reason))
    return client
