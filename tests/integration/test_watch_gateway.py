"""The watch TCP gateway against the real mosquitto: frames published, then replied; the
connections it closes and why."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from carewatch.embedded import EmbeddedStack, free_port
from devices.codecs import watch
from devices.codecs.watch_frames import FrameSplitter, build_frame
from devices.errors import DecodeError
from ingest.watch_gateway import WatchGateway
from plumbing.mqtt import MqttClient
from simulators.watch import Fix, WatchEncoder
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

WITHIN = 10.0  # seconds any single expected thing may take on a slow CI machine
WHEN = datetime(2026, 11, 22, 7, 59, 30, tzinfo=UTC)


def _closed(reason: str) -> float:
    return REGISTRY.get_sample_value("carewatch_gateway_closed_total", {"reason": reason}) or 0.0


def _run_id() -> str:
    return uuid.uuid4().hex[:10]


def _url(stack: EmbeddedStack, role: str) -> str:
    """The service account of `role` where the broker enforces accounts."""
    return stack.mqtt_urls.get(role, stack.mqtt_url)


@pytest.fixture
def watch_id() -> str:
    """A watch id (10 digits, as real ones) no other test uses."""
    return str(uuid.uuid4().int)[:10]


@pytest_asyncio.fixture
async def mqtt(stack: EmbeddedStack) -> AsyncIterator[MqttClient]:
    client = MqttClient(
        url=_url(stack, "gateway"),
        client_id=f"test-gateway-{_run_id()}",
        protocol=stack.mqtt_protocol,
    )
    async with client:
        yield client


@asynccontextmanager
async def running_gateway(mqtt: MqttClient, **options: Any) -> AsyncIterator[WatchGateway]:
    async with WatchGateway(mqtt=mqtt, host="127.0.0.1", port=free_port(), **options) as gateway:
        yield gateway


def _both_topics(device_id: str) -> str:
    return watch.topic_for(device_id).removesuffix("/up") + "/+"


class Subscriber:
    """A separate MQTT client (ingest's account: it reads) that records what reaches the
    watch topics. `prober` (the gateway's account: it writes watch topics) checks that the
    subscriptions are in place before a test sends anything."""

    def __init__(self, stack: EmbeddedStack, topic_filter: str, prober: MqttClient) -> None:
        self.probe_topic = watch.topic_for(f"probe-{_run_id()}")
        self.prober = prober
        self.received: list[tuple[str, bytes]] = []
        self.client = MqttClient(
            url=_url(stack, "ingest"),
            client_id=f"test-sub-{_run_id()}",
            protocol=stack.mqtt_protocol,
            subscriptions=(topic_filter, self.probe_topic),  # subscribed in this order
            on_message=lambda message, _gen: self.received.append(
                (message.topic, bytes(message.payload))
            ),
        )

    async def __aenter__(self) -> Subscriber:
        await self.client.start()
        await self._wait_subscribed()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.stop()

    async def _wait_subscribed(self) -> None:
        """SUBACK is asynchronous: once a probe on the last subscription comes back, the
        broker has processed the first one too."""

        async def probe() -> bool:
            await self.prober.publish(self.probe_topic, b"probe")
            return any(topic == self.probe_topic for topic, _ in self.received)

        await eventually(probe, within=WITHIN)

    def frames(self, device_id: str) -> list[bytes]:
        """What reached the device's topics, `up` and `alarm`, in the order it came."""
        mine = (watch.topic_for(device_id), watch.alarm_topic_for(device_id))
        return [payload for topic, payload in self.received if topic in mine]

    def topics(self, device_id: str) -> list[str]:
        """Which of the device's topics each frame came on (`up` or `alarm`)."""
        return [t.rsplit("/", 1)[1] for t, _ in self.received if f"/{device_id}/" in t]

    async def wait_frames(self, device_id: str, count: int) -> list[bytes]:
        async def probe() -> list[bytes] | None:
            found = self.frames(device_id)
            return found if len(found) >= count else None

        return await eventually(probe, within=WITHIN)


class WatchSocket:
    """The watch's end of the TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.splitter = FrameSplitter()
        self.pending: list[bytes] = []

    @classmethod
    @asynccontextmanager
    async def connect(cls, gateway: WatchGateway) -> AsyncIterator[WatchSocket]:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            yield cls(reader, writer)
        finally:
            writer.close()
            await writer.wait_closed()

    async def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))
        await self.writer.drain()

    async def replies(self, count: int) -> list[bytes]:
        """The next `count` frames from the gateway."""
        async with asyncio.timeout(WITHIN):
            while len(self.pending) < count:
                data = await self.reader.read(4096)
                assert data, f"connection closed after {self.pending}"
                self.pending += self.splitter.feed(data)
        got, self.pending = self.pending[:count], self.pending[count:]
        return got

    async def closed_by_gateway(self) -> bytes:
        """Wait for EOF; what came before it."""
        async with asyncio.timeout(WITHIN):
            return await self.reader.read()


async def test_lk_and_a_no_fix_sos_are_published_then_acknowledged(
    stack: EmbeddedStack, mqtt: MqttClient, watch_id: str
) -> None:
    encoder = WatchEncoder(watch_id, maker="3G")
    lk, sos = encoder.link(steps=120, rolls=0, battery=80), encoder.alarm(WHEN, sos=True)
    async with (
        Subscriber(stack, _both_topics(watch_id), mqtt) as subscriber,
        running_gateway(mqtt) as gateway,
        WatchSocket.connect(gateway) as sock,
    ):
        await sock.send(lk, sos)  # one write, two frames
        assert await sock.replies(2) == [
            f"[3G*{watch_id}*0002*LK]".encode(),
            f"[3G*{watch_id}*0002*AL]".encode(),
        ]
        assert await subscriber.wait_frames(watch_id, 2) == [lk, sos]
        # The alarm on the topic ingest reads on a session of its own, never behind telemetry.
        assert subscriber.topics(watch_id) == ["up", "alarm"]
        assert gateway.health()["ok"] and watch_id in gateway.connections

    (event, *_) = watch.decode(sos, watch_id, datetime.now(UTC)).events
    assert (event.kind, event.lat, event.lon) == ("sos", None, None)  # type: ignore[union-attr]


async def test_a_broken_frame_goes_on_to_ingest_for_the_dead_letters(
    stack: EmbeddedStack, mqtt: MqttClient, watch_id: str
) -> None:
    encoder = WatchEncoder(watch_id, maker="3G")
    lk, broken = encoder.link(), build_frame("3G", watch_id, b"U D,221126")  # bad type
    async with (
        Subscriber(stack, _both_topics(watch_id), mqtt) as subscriber,
        running_gateway(mqtt) as gateway,
        WatchSocket.connect(gateway) as sock,
    ):
        await sock.send(lk, broken, lk)
        assert len(await sock.replies(2)) == 2  # the watch is answered as before
        assert await subscriber.wait_frames(watch_id, 3) == [lk, broken, lk]
    with pytest.raises(DecodeError) as rejected:  # what ingest will say of it
        watch.decode(broken, watch_id, datetime.now(UTC))
    assert rejected.value.reason == "invalid_frame"


async def test_an_indexed_watch_writing_in_pieces(
    stack: EmbeddedStack, mqtt: MqttClient, watch_id: str
) -> None:
    encoder = WatchEncoder(watch_id, maker="ZJ", indexed=True, first_index=0x34)
    frames = [encoder.link(), encoder.alarm(WHEN, fall=True, fix=Fix(22.536207, 113.938673))]
    stream = b"".join(frames)
    async with (
        Subscriber(stack, _both_topics(watch_id), mqtt) as subscriber,
        running_gateway(mqtt) as gateway,
        WatchSocket.connect(gateway) as sock,
    ):
        for start in range(0, len(stream), 7):
            await sock.send(stream[start : start + 7])
        assert await sock.replies(2) == [
            f"[ZJ*{watch_id}*0034*0002*LK]".encode(),
            f"[ZJ*{watch_id}*0035*0002*AL]".encode(),
        ]
        assert await subscriber.wait_frames(watch_id, 2) == frames


async def test_no_reply_without_the_brokers_acknowledgement(
    stack: EmbeddedStack, watch_id: str
) -> None:
    # A client that never connected: the publish cannot be acknowledged.
    offline = MqttClient(url=stack.mqtt_url, client_id=f"test-offline-{_run_id()}")
    before = _closed("publish_failed")
    async with (
        running_gateway(offline, publish_timeout=0.3) as gateway,
        WatchSocket.connect(gateway) as sock,
    ):
        assert not gateway.health()["ok"]
        await sock.send(WatchEncoder(watch_id).alarm(WHEN, sos=True))
        assert await sock.closed_by_gateway() == b""  # closed, and no AL reply
    assert _closed("publish_failed") == before + 1


async def test_no_reply_when_the_broker_refuses_the_frame(
    stack: EmbeddedStack, watch_id: str
) -> None:
    # ingest's account may read but not write: MQTT 5 says so in the PUBACK.
    if "ingest" not in stack.mqtt_urls or stack.mqtt_protocol != "5":
        pytest.skip("needs the embedded mosquitto with accounts, MQTT 5")
    reader = MqttClient(url=_url(stack, "ingest"), client_id=f"test-ro-{_run_id()}")
    before = _closed("publish_failed")
    async with (
        reader,
        running_gateway(reader) as gateway,
        WatchSocket.connect(gateway) as sock,
    ):
        await sock.send(WatchEncoder(watch_id).alarm(WHEN, sos=True))
        assert await sock.closed_by_gateway() == b""
    assert _closed("publish_failed") == before + 1


async def test_an_idle_connection_is_closed(mqtt: MqttClient, watch_id: str) -> None:
    before = _closed("idle_timeout")
    async with (
        running_gateway(mqtt, idle_timeout=0.3) as gateway,
        WatchSocket.connect(gateway) as sock,
    ):
        await sock.send(WatchEncoder(watch_id).link())
        assert await sock.replies(1) == [f"[3G*{watch_id}*0002*LK]".encode()]
        assert await sock.closed_by_gateway() == b""

        async def forgotten() -> bool:
            return watch_id not in gateway.connections

        await eventually(forgotten, within=WITHIN)
    assert _closed("idle_timeout") == before + 1


async def test_an_oversized_frame_closes_the_connection(
    stack: EmbeddedStack, mqtt: MqttClient, watch_id: str
) -> None:
    sos = WatchEncoder(watch_id).alarm(WHEN, sos=True)
    before = _closed("frame_too_large")
    async with (
        Subscriber(stack, _both_topics(watch_id), mqtt) as subscriber,
        running_gateway(mqtt, max_frame_bytes=256) as gateway,
        WatchSocket.connect(gateway) as sock,
    ):
        # In one read: an SOS, then a frame that never fits. The SOS still goes through.
        await sock.send(sos, build_frame("3G", watch_id, b"TK," + b"\x00" * 300))
        assert await sock.closed_by_gateway() == f"[3G*{watch_id}*0002*AL]".encode()
        assert await subscriber.wait_frames(watch_id, 1) == [sos]
    assert _closed("frame_too_large") == before + 1


async def test_a_frame_of_another_device_closes_the_connection(
    stack: EmbeddedStack, mqtt: MqttClient, watch_id: str
) -> None:
    other = f"{watch_id}9"
    before = _closed("device_changed")
    async with (
        Subscriber(stack, "carewatch/v1/watch/+/up", mqtt) as subscriber,
        running_gateway(mqtt) as gateway,
        WatchSocket.connect(gateway) as sock,
    ):
        first = WatchEncoder(watch_id).link()
        await sock.send(first)
        assert await sock.replies(1) == [f"[3G*{watch_id}*0002*LK]".encode()]
        await sock.send(WatchEncoder(other).alarm(WHEN, sos=True))
        assert await sock.closed_by_gateway() == b""
        assert await subscriber.wait_frames(watch_id, 1) == [first]
    assert subscriber.frames(other) == []
    assert _closed("device_changed") == before + 1


async def test_many_watches_at_once(stack: EmbeddedStack, mqtt: MqttClient) -> None:
    ids = [str(uuid.uuid4().int)[:12] for _ in range(25)]

    async def one_watch(gateway: WatchGateway, watch_id: str) -> list[bytes]:
        encoder = WatchEncoder(watch_id, maker="SG")
        async with WatchSocket.connect(gateway) as sock:
            await sock.send(encoder.link(), encoder.report(WHEN, fix=Fix(31.2, 121.5)))
            return await sock.replies(1)  # UD gets no reply, LK does

    async with (
        Subscriber(stack, "carewatch/v1/watch/+/up", mqtt) as subscriber,
        running_gateway(mqtt) as gateway,
    ):
        replies = await asyncio.gather(*(one_watch(gateway, i) for i in ids))
        assert replies == [[f"[SG*{i}*0002*LK]".encode()] for i in ids]
        for watch_id in ids:
            assert len(await subscriber.wait_frames(watch_id, 2)) == 2


async def test_commands_go_down_and_stop_closes_connections(
    mqtt: MqttClient, watch_id: str
) -> None:
    gateway = WatchGateway(mqtt=mqtt, host="127.0.0.1", port=free_port())
    await gateway.start()
    await gateway.start()  # safe twice
    async with WatchSocket.connect(gateway) as sock:
        assert not await gateway.send(watch_id, b"CR")  # not connected yet
        await sock.send(WatchEncoder(watch_id, maker="CS").link())
        await sock.replies(1)
        assert await gateway.send(watch_id, b"UPLOAD,60")
        assert await sock.replies(1) == [f"[CS*{watch_id}*0009*UPLOAD,60]".encode()]
        await gateway.stop()
        await gateway.stop()  # safe twice
        assert await sock.closed_by_gateway() == b""
    assert not gateway.health()["ok"] and gateway.connections == {}


async def test_a_reconnected_watch_replaces_its_stale_connection(
    mqtt: MqttClient, watch_id: str
) -> None:
    encoder = WatchEncoder(watch_id)
    async with (
        running_gateway(mqtt) as gateway,
        WatchSocket.connect(gateway) as stale,
        WatchSocket.connect(gateway) as fresh,
    ):
        await stale.send(encoder.link())
        await stale.replies(1)
        await fresh.send(encoder.link())
        await fresh.replies(1)
        assert await stale.closed_by_gateway() == b""
        assert await gateway.send(watch_id, b"CR")
        assert await fresh.replies(1) == [f"[3G*{watch_id}*0002*CR]".encode()]
