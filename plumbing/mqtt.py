"""paho-mqtt driven from the asyncio event loop, shared by ingest and the simulators.

Why not `loop_start()`: paho's network thread and an asyncio loop in one process fight
over the GIL (DESIGN.md, "Measured"). Here paho's socket is registered with the event loop
(`add_reader` / `add_writer`), so one thread does all the work and paho's callbacks run on
the loop, where they may touch asyncio objects directly.

Three hot paths bypass parts of paho, because a subscriber like ingest pays them per
message (paho's own path costs tens of µs per message on a small machine; DESIGN.md,
"Measured"): the socket is read 64 KiB at a time and every packet in it is handled in one
wake-up of the loop (paho reads a subscriber's socket a few bytes per system call, one
packet per wake-up); a PUBLISH arrives as a small `Received` (no MQTTMessage, no MQTT 5
property objects, no topic-filter callback matching); and `ack_many` sends a run of
PUBACKs as one write. They use paho internals (`_sock_recv`, `_handle_publish`,
`_in_packet`, `_packet_queue`) and are covered by tests against a real broker, MQTT 5
and 3.1.1 (tests/integration/test_mqtt_client.py); paho-mqtt is pinned below 2.3.

Every (re)connection gets a new `generation`. A message received on one connection can
only be acknowledged on that connection: packet ids are per connection, and acking a stale
id on a new connection would acknowledge a *different* message. `ack()` therefore drops
acks of older generations; the broker redelivers those messages (persistent session).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from plumbing.backoff import Backoff
from plumbing.component import Component

__all__ = [
    "MqttClient",
    "MqttError",
    "MqttTarget",
    "Received",
    "parse_mqtt_url",
    "read_variable_int",
    "with_login",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Received:
    """A PUBLISH as a subscriber needs it (what paho's MQTTMessage has, less its cost)."""

    topic: str
    payload: bytes
    mid: int  # packet id, for the PUBACK (0 at QoS 0)
    qos: int
    retain: bool


MessageHandler = Callable[[Received, int], None]
_PUBACK = 0x40
_READ_SIZE = 65536
_PACKETS_PER_TURN = 64


class MqttError(Exception):
    """The broker refused us or could not be reached."""


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # None with TLS: the system's certificate authorities


def parse_mqtt_url(url: str) -> MqttTarget:
    """`mqtt://[user[:password]@]host[:port]` (port 1883 by default), or
    `mqtts://...[:port][?ca=/path/ca.pem]` for TLS (port 8883; `ca`: the certificate
    authority to trust instead of the system's, e.g. the embedded broker's own)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parts.hostname:
        raise MqttError(f"not an MQTT URL (want mqtt://host:port or mqtts://...): {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    ca_file = parse_qs(parts.query).get("ca", [None])[0]
    return MqttTarget(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        ca_file=ca_file,
    )


def with_login(url: str, username: str, secret: str) -> str:
    """`url` with this account's user name and secret in it (replacing any it had)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(username, safe='')}:{quote(secret, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


class MqttClient(Component):
    """One MQTT connection, reconnecting with full-jitter backoff until `stop()`.

    Subscriptions are (re)made on every connect. With `manual_ack`, `on_message` receives
    `(message, generation)` and the caller acknowledges with `ack(message, generation)`.
    """

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        protocol: Literal["5", "3.1.1"] = "5",
        persistent_session: bool = False,
        receive_maximum: int | None = None,
        subscriptions: tuple[str, ...] = (),
        on_message: MessageHandler | None = None,
        manual_ack: bool = False,
        keepalive: int = 30,
        max_pending_publishes: int = 1000,
        skip_retained: bool = False,
    ) -> None:
        super().__init__(name=f"mqtt:{client_id}")
        self._target = parse_mqtt_url(url)
        self._client_id = client_id
        self._v5 = protocol == "5"
        self._persistent = persistent_session
        self._receive_maximum = receive_maximum
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._manual_ack = manual_ack
        # MQTT 5 Retain Handling 2: the broker sends no stored retained message when we
        # subscribe (ingest would replay an old SOS as new after every reconnect).
        self._skip_retained = skip_retained
        self._keepalive = keepalive
        # Bounds paho's packet ids in use (they wrap at 65,535) and the memory of a burst.
        self._max_pending = max_pending_publishes
        self._publish_slots = asyncio.Semaphore(max_pending_publishes)
        self._pending_publishes: dict[int, asyncio.Future[None]] = {}
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._subscribed = asyncio.Event()  # every subscription of this connection acked
        self._unacked_subscribes: dict[int, str] = {}  # packet id -> topic filter
        self.refused_subscriptions: set[str] = set()  # what the broker said no to
        self._first_connack: asyncio.Future[None] | None = None
        self._paused = False  # pause_reading()
        self._connect_timeout = 10.0
        self.generation = 0

    # -- lifecycle ---------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; raise MqttError if the first connection fails."""
        self._connect_timeout = timeout
        await super().start()

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = self._make_client()
        self._first_connack = self._loop.create_future()
        try:
            self._connect()
            await asyncio.wait_for(self._first_connack, self._connect_timeout)
        except TimeoutError as exc:
            raise MqttError(f"no CONNACK from {self._target.host}:{self._target.port}") from exc
        except OSError as exc:
            raise MqttError(f"cannot reach {self._target.host}:{self._target.port}: {exc}") from exc
        self.supervise("misc", self._misc_loop, restart=True)

    async def _close(self) -> None:
        """Disconnect cleanly."""
        await self.cancel_tasks()
        client, self._client = self._client, None
        if client is not None and client.is_connected():
            client.disconnect()
            client.loop_write()  # flush the DISCONNECT packet now; the loop won't be back
        if client is not None and client.socket() is not None:
            client._sock_close()
        for fut in self._pending_publishes.values():
            if not fut.done():
                fut.set_exception(MqttError("client stopped before the broker acknowledged"))
        self._pending_publishes.clear()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def subscribed(self) -> None:
        """Once the broker has answered every subscription of the current connection."""
        await self._subscribed.wait()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    # -- operations --------------------------------------------------------------

    def ack(self, message: Received, generation: int) -> bool:
        """Acknowledge a QoS 1 message; False (and nothing sent) if its connection is gone."""
        return self.ack_many([message], generation) == 1

    def ack_many(self, messages: Iterable[Received], generation: int) -> int:
        """Acknowledge QoS 1 messages received on connection `generation`, in this order,
        in one write; returns how many were sent (0 if that connection is gone: the broker
        redelivers them, and acking their packet ids on another connection would
        acknowledge other messages)."""
        if generation != self.generation or self._client is None or not self.connected:
            return 0
        mids = [m.mid for m in messages if m.qos == 1]
        if mids:
            # PUBACK without reason code (success; MQTT 5 allows it), one packet after another.
            acks = b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)
            self._client._packet_queue(_PUBACK, acks, 0, 0)
        return len(mids)

    async def publish(
        self, topic: str, payload: bytes, qos: int = 1, *, retain: bool = False
    ) -> None:
        """Publish and, for QoS 1, return once the broker has acknowledged it."""
        async with self._publish_slots:
            await self._connected.wait()
            assert self._client is not None and self._loop is not None
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
            if qos == 0:
                return
            fut = self._loop.create_future()
            self._pending_publishes[info.mid] = fut
            await fut

    # -- paho wiring -------------------------------------------------------------

    def _make_client(self) -> paho.Client:
        client = _Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=paho.MQTTv5 if self._v5 else paho.MQTTv311,
            clean_session=None if self._v5 else not self._persistent,
            manual_ack=self._manual_ack,
        )
        if self._target.tls:
            # Verifies the broker's certificate and host name against the CA (or the system's).
            client.tls_set(ca_certs=self._target.ca_file)
        if self._target.username:
            client.username_pw_set(self._target.username, self._target.password)
        client.max_inflight_messages_set(self._max_pending)
        client.max_queued_messages_set(0)  # bounded by _publish_slots instead
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        if self._on_message is not None:
            client.on_received = self._dispatch
        return client

    def _connect_properties(self) -> Properties | None:
        if not self._v5:
            return None
        props = Properties(PacketTypes.CONNECT)
        if self._persistent:
            props.SessionExpiryInterval = 7 * 24 * 3600
        if self._receive_maximum is not None:
            props.ReceiveMaximum = self._receive_maximum
        return props

    def _subscribe(self, client: paho.Client, topic: str) -> int | None:
        """Subscribe at QoS 1 (the only options MQTT 3.1.1 has); returns the packet id."""
        if not self._v5:
            return client.subscribe(topic, qos=1)[1]
        retained = SubscribeOptions.RETAIN_DO_NOT_SEND if self._skip_retained else 0
        return client.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=retained))[1]

    def _connect(self) -> None:
        """Start a TCP connect + CONNECT; the CONNACK arrives through the loop."""
        assert self._client is not None
        kwargs: dict[str, Any] = {"keepalive": self._keepalive}
        if self._v5:
            kwargs["clean_start"] = not self._persistent
            kwargs["properties"] = self._connect_properties()
        # paho's connect() blocks on the TCP handshake; brokers are near, so we accept it.
        self._client.connect(self._target.host, self._target.port, **kwargs)

    def _on_socket_open(self, client: paho.Client, _ud: Any, sock: Any) -> None:
        assert self._loop is not None and isinstance(client, _Client)
        self._paused = False  # a new connection: read it
        self._loop.add_reader(sock, self._readable, client, sock)

    def pause_reading(self) -> None:
        """Stop reading the connection until `resume_reading`: what the broker sends waits
        in the socket and then in the broker's queue for this session (TCP pushes back).
        For a subscriber that has more in hand than it should hold: mosquitto 2.0.11 does
        not keep to our Receive Maximum once acknowledgements flow (measured: 10 allowed,
        5 acked, 50 more sent)."""
        if self._paused or self._client is None or self._loop is None:
            return
        self._paused = True
        sock = self._client.socket()
        if sock is not None:
            self._loop.remove_reader(sock)

    def resume_reading(self) -> None:
        if not self._paused or self._client is None or self._loop is None:
            return
        self._paused = False
        sock = self._client.socket()
        if sock is not None:
            assert isinstance(self._client, _Client)
            self._loop.add_reader(sock, self._readable, self._client, sock)
            self._loop.call_soon(self._readable, self._client, sock)  # what was read ahead

    def _readable(self, client: _Client, sock: Any) -> None:
        """Up to `_PACKETS_PER_TURN` packets, then the loop's other work gets its turn (the
        same process's other session, which may hold an alarm, above all). Packets already
        read (`_Client._sock_recv` reads ahead) or decrypted (TLS) come back in a later
        turn: the socket would not be readable again to say so."""
        pending = getattr(sock, "pending", None)
        for _ in range(_PACKETS_PER_TURN):
            if self._paused:
                return
            client.loop_read()
            if client.socket() is not sock:
                return
            if not (client.read_ahead or (pending and pending())):
                return
        assert self._loop is not None
        self._loop.call_soon(self._readable, client, sock)

    def _on_socket_close(self, _client: paho.Client, _ud: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _on_register_write(self, client: paho.Client, _ud: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.add_writer(sock, client.loop_write)

    def _on_unregister_write(self, _client: paho.Client, _ud: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)

    def _on_connect(self, client: paho.Client, _ud: Any, _flags: Any, reason: Any, _p: Any) -> None:
        first = self._first_connack
        if reason.is_failure:
            err = MqttError(f"broker refused connection: {reason}")
            if first is not None and not first.done():
                first.set_exception(err)
            log.error("mqtt connect refused", extra={"reason": str(reason)})
            return
        self.generation += 1
        self._subscribed.clear()
        mids = {self._subscribe(client, topic): topic for topic in self._subscriptions}
        self._unacked_subscribes = {mid: topic for mid, topic in mids.items() if mid is not None}
        if not self._unacked_subscribes:
            self._subscribed.set()
        self._connected.set()
        if first is not None and not first.done():
            first.set_result(None)
        log.info("mqtt connected", extra={"client_id": self._client_id, "gen": self.generation})

    def _on_disconnect(self, _c: paho.Client, _ud: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        if self.stopping:
            return
        log.warning("mqtt connection lost", extra={"reason": str(reason)})
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = self.supervise("reconnect", self._reconnect_loop, restart=True)

    def _on_publish(self, _c: paho.Client, _ud: Any, mid: int, reason: Any, _p: Any) -> None:
        fut = self._pending_publishes.pop(mid, None)
        if fut is None or fut.done():
            return
        # MQTT 5 brokers say why they did not take a message (e.g. 0x87 not authorized:
        # the ACL refused the topic); MQTT 3.1.1 brokers ack silently whatever they do.
        if getattr(reason, "is_failure", False):
            fut.set_exception(MqttError(f"broker refused the message: {reason}"))
        else:
            fut.set_result(None)

    def _on_subscribe(self, _c: paho.Client, _ud: Any, mid: int, reasons: Any, _p: Any) -> None:
        topic = self._unacked_subscribes.pop(mid, None)
        refused = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if refused and topic is not None:
            # e.g. "Not authorized": nothing will arrive there; say so instead of waiting.
            self.refused_subscriptions.add(topic)
            log.error(
                "subscription refused",
                extra={"client_id": self._client_id, "topic": topic, "reasons": refused},
            )
        if not self._unacked_subscribes:
            self._subscribed.set()

    def _dispatch(self, message: Received) -> None:
        assert self._on_message is not None
        self._on_message(message, self.generation)

    # -- background tasks --------------------------------------------------------

    async def _misc_loop(self) -> None:
        """Keepalive pings and dead-connection detection (paho's loop_misc)."""
        while True:
            await asyncio.sleep(1)
            if self._client is not None and self._client.socket() is not None:
                self._client.loop_misc()

    async def _reconnect_loop(self) -> None:
        backoff = Backoff(first=0.5, cap=30.0)
        while not self.stopping and not self.connected:
            await backoff.wait()
            try:
                assert self._client is not None
                self._client.reconnect()
                await asyncio.wait_for(self._connected.wait(), 10)
            except (OSError, TimeoutError) as exc:
                log.warning(
                    "mqtt reconnect failed",
                    extra={"attempt": backoff.failures, "error": str(exc)},
                )


class _Client(paho.Client):
    """paho's client with a lean path for incoming QoS 0 and 1 PUBLISH packets: parsed
    here into a `Received` and handed to `on_received` (QoS 2, which carewatch does not
    use, and clients without `on_received` take paho's own path). With manual acks paho
    sends no PUBACK itself for them either; `MqttClient.ack_many` does."""

    on_received: Callable[[Received], None] | None = None
    _ahead = b""  # read from the socket, not yet taken by paho
    _taken = 0

    @property
    def read_ahead(self) -> bool:
        return self._taken < len(self._ahead)

    def _sock_recv(self, bufsize: int) -> bytes:
        """paho asks for 1 byte (a packet type), then the length byte by byte, then the
        rest: one system call each. Read 64 KiB when nothing is ahead, and serve from it."""
        if self._taken >= len(self._ahead):
            data = super()._sock_recv(max(bufsize, _READ_SIZE))
            self._last_bytes_received = paho.time_func()  # for keepalive, as paho does
            if len(data) <= bufsize:
                return data  # all of it, or b"" (the broker closed the connection)
            self._ahead, self._taken = data, 0
        chunk = self._ahead[self._taken : self._taken + bufsize]
        self._taken += len(chunk)
        return chunk

    def _sock_close(self) -> None:
        self._ahead, self._taken = b"", 0  # a new connection starts with nothing ahead
        super()._sock_close()

    def _packet_read(self) -> MQTTErrorCode:
        """A whole QoS 0/1 PUBLISH at the head of what was read ahead is taken from there
        (paho's reading of a packet is a few dozen Python steps and two locks); anything
        else, or a packet not all read yet, goes through paho."""
        if self.on_received is not None and self._in_packet["command"] == 0 and self.read_ahead:
            rc = self._publish_ahead()
            if rc is not None:
                return rc
        return super()._packet_read()

    def _publish_ahead(self) -> MQTTErrorCode | None:
        ahead, start = self._ahead, self._taken
        header = ahead[start]
        if header >> 4 != 3 or header & 0x06 == 0x04:  # not a PUBLISH, or QoS 2
            return None
        try:
            remaining = read_variable_int(ahead, start + 1)
        except ValueError:
            return None  # malformed: paho reads it and says so
        if remaining is None:
            return None  # the header is still on its way
        length, at = remaining
        if at + length > len(ahead):
            return None  # the rest is still on its way: paho reads it
        self._taken = at + length
        return self._publish(header, ahead[at : at + length])

    def _handle_publish(self) -> MQTTErrorCode:
        header, packet = self._in_packet["command"], self._in_packet["packet"]
        if header & 0x06 == 0x04 or self.on_received is None:
            return super()._handle_publish()  # QoS 2
        return self._publish(header, bytes(packet))

    def _publish(self, header: int, packet: bytes) -> MQTTErrorCode:
        assert self.on_received is not None
        qos = (header & 0x06) >> 1
        try:
            received = _parse_publish(header, packet, qos, self._protocol == paho.MQTTv5)
        except (IndexError, UnicodeDecodeError, ValueError):
            return MQTTErrorCode.MQTT_ERR_PROTOCOL  # paho closes the connection
        self.on_received(received)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(received.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def read_variable_int(data: bytes | bytearray, at: int) -> tuple[int, int] | None:
    """The MQTT variable byte integer starting at `at` (a packet's remaining length, MQTT
    5's property length): (value, where what follows starts), or None if `data` ends
    inside it. ValueError if it runs past the 4 bytes MQTT allows."""
    value = 0
    for n, index in enumerate(range(at, min(len(data), at + 4))):
        byte = data[index]
        value |= (byte & 0x7F) << (7 * n)
        if not byte & 0x80:
            return value, index + 1
    if len(data) >= at + 4:
        raise ValueError("a variable byte integer longer than 4 bytes")
    return None


def _parse_publish(header: int, packet: bytes, qos: int, v5: bool) -> Received:
    """A PUBLISH's variable header and payload (MQTT 3.1.1 / 5, section 3.3)."""
    end = 2 + int.from_bytes(packet[:2], "big")
    if end > len(packet):
        raise ValueError("topic runs past the packet")
    topic = packet[2:end].decode()
    mid = 0
    if qos:
        mid, end = int.from_bytes(packet[end : end + 2], "big"), end + 2
    if v5:  # skip the properties: their length, then that many bytes
        properties = read_variable_int(packet, end)
        if properties is None:
            raise ValueError("PUBLISH ends inside its property length")
        length, end = properties
        end += length
    if end > len(packet) or not topic:  # no topic alias: we never allow the broker any
        raise ValueError("malformed PUBLISH")
    return Received(topic, packet[end:], mid, qos, bool(header & 0x01))
