"""Load at a set rate, for the benchmarks: many devices, each on its own MQTT connection,
sending native messages of `batch` events at a combined offered rate.

Unlike the fleet (simulators/fleet.py), whose devices keep their own natural intervals,
this paces the whole fleet to a target rate so a benchmark can step the load up. The
events look like a watch's (location, battery, steps, vitals, heartbeats), and every
message has its own `msg_id`s, so each event is stored exactly once.

A load generator may be cleverer than a device, and must be cheaper than what it
measures: it shares the machine with the pipeline. So it does not go through paho (tens
of µs per message): each device is a small asyncio protocol that writes QoS 1 PUBLISH
packets built from pre-encoded parts and reads the PUBACKs itself (a few µs per message).

Per device it counts the events sent and acknowledged by the broker: with the stored
counts per device that gives lost (acknowledged, never stored) and duplicated (stored more
than sent) events.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from devices.codecs.native import topic_for
from plumbing.backoff import Backoff
from plumbing.mqtt import MqttError, MqttTarget, parse_mqtt_url, read_variable_int
from simulators.behaviours import HOME_CENTRE

__all__ = ["LoadGenerator", "StepLoad"]

# Messages in flight at once (published, PUBACK not yet back). Beyond it the generator
# falls behind its target and reports the rate it managed, not the one it was asked for.
MAX_IN_FLIGHT = 4000
_CONNECT_CONCURRENCY = 64
_TICK_S = 0.01
_KEEPALIVE_S = 60
_ACKS_WITHIN_S = 60.0  # after a step: how long to wait for the last PUBACKs
# Messages a device's turn sends at once, in one TCP write: a write (a system call, the
# broker woken) costs more than building a message, and a device flushing a backlog does
# the same. Well within ingest's per-device burst allowance.
BURST = 10

_CONNACK, _PUBACK, _PINGRESP, _DISCONNECT = 2, 4, 13, 14
_PINGREQ = b"\xc0\x00"


@dataclass
class StepLoad:
    """What one step offered: messages and events published and acknowledged."""

    seconds: float = 0.0
    messages: int = 0
    events_sent: int = 0
    events_acked: int = 0
    errors: int = 0

    @property
    def offered_events_per_s(self) -> float:
        return self.events_sent / self.seconds if self.seconds else 0.0

    @property
    def offered_messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


@dataclass
class LoadGenerator:
    url: str
    protocol: Literal["5", "3.1.1"]
    devices: Mapping[str, str]  # device id -> broker secret
    batch: int = 5
    sent: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)
    _links: dict[str, _Link] = field(default_factory=dict)
    _messages: _Messages = field(init=False)
    _inflight: int = 0  # messages published and not yet acknowledged or failed
    _settled: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._messages = _Messages(self.batch)

    async def connect(self) -> None:
        """One connection per device, a bounded number opening at once."""
        target = parse_mqtt_url(self.url)
        gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)
        v5 = self.protocol == "5"

        async def open_one(device: str, secret: str) -> None:
            link = _Link(target, device, secret, self._messages, v5=v5, on_acks=self._on_acks)
            async with gate:
                await link.open()
            self._links[device] = link

        await asyncio.gather(*(open_one(d, s) for d, s in self.devices.items()))

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self._links.values()))

    @property
    def connected(self) -> int:
        return sum(1 for link in self._links.values() if link.ready)

    async def drive(self, events_per_s: float, seconds: float) -> StepLoad:
        """Offer `events_per_s` for `seconds`, then wait for the acknowledgements."""
        step = StepLoad()
        links = itertools.cycle(list(self._links.values()))
        per_message = events_per_s / self.batch
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * per_message) - step.messages
            self._send(due, links, step)
            await asyncio.sleep(_TICK_S)
        step.seconds = time.monotonic() - started
        await self._acks_in(step)
        return step

    def _send(self, due: int, links: itertools.cycle[_Link], step: StepLoad) -> None:
        """Up to `due` messages now, BURST at a time to each connected device in turn."""
        stamp = _stamp()
        skipped = 0
        while due > 0 and self._inflight < MAX_IN_FLIGHT and skipped < len(self._links):
            link = next(links)
            if not link.ready:  # reconnecting: its turn goes to the next device
                skipped += 1
                continue
            skipped = 0
            count = min(BURST, due, MAX_IN_FLIGHT - self._inflight)
            link.publish(count, stamp, step)
            self._inflight += count
            self.sent[link.device] += count * self.batch
            step.events_sent += count * self.batch
            step.messages += count
            due -= count

    def _on_acks(self, device: str, step: StepLoad, messages: int, ok: bool) -> None:
        self._inflight -= messages
        if ok:
            self.acked[device] += messages * self.batch
            step.events_acked += messages * self.batch
        else:
            step.errors += messages
        if self._inflight == 0:
            self._settled.set()

    async def _acks_in(self, step: StepLoad) -> None:
        """Until every message of the step is acknowledged or failed (or time runs out:
        then what is still out counts as errors)."""
        while self._inflight:
            self._settled.clear()
            try:
                await asyncio.wait_for(self._settled.wait(), _ACKS_WITHIN_S)
            except TimeoutError:
                step.errors += self._inflight
                return


class _Messages:
    """Native payloads from pre-encoded templates of a fixed length each (only the time
    and a zero-padded sequence number change), so a link can pre-encode the packet
    header too. Kinds and values rotate through the templates."""

    def __init__(self, batch: int) -> None:
        events = _event_templates()
        self.batch = batch
        # Each event's msg_id: the message's sequence number (12 digits) and its index.
        self.templates = [
            _join(
                [
                    events[(first + n) % len(events)] % (b"%s", b"%%012d.%d" % n)
                    for n in range(batch)
                ]
            )
            for first in range(len(events))
        ]
        self._kinds = itertools.cycle(range(len(self.templates)))
        self._seq = itertools.count()

    def lengths(self, stamp: bytes) -> list[int]:
        """The length of a payload from each template."""
        return [len(t % ((stamp, 0) * self.batch)) for t in self.templates]

    def next(self, stamp: bytes) -> tuple[int, bytes]:
        """(template index, payload) of the next message."""
        kind, seq = next(self._kinds), next(self._seq)
        return kind, self.templates[kind] % ((stamp, seq) * self.batch)


def _event_templates() -> list[bytes]:
    """Events with `%s` for the time and `%s` for the msg_id."""
    rng = random.Random(1)
    lat, lon = HOME_CENTRE
    locations = [
        b'{"kind":"location","ts":"%%s","msg_id":"%%s","lat":%.6f,"lon":%.6f,"accuracy_m":12}'
        % (lat + j, lon - j)
        for j in (rng.uniform(-0.002, 0.002) for _ in range(8))
    ]
    vitals = [
        b'{"kind":"vitals","ts":"%%s","msg_id":"%%s","heart_rate_bpm":%d,"spo2_pct":97}'
        % rng.randint(62, 84)
        for _ in range(8)
    ]
    return [
        *locations,
        b'{"kind":"battery","ts":"%s","msg_id":"%s","battery_pct":80}',
        b'{"kind":"activity","ts":"%s","msg_id":"%s","steps":1000}',
        *vitals,
        b'{"kind":"heartbeat","ts":"%s","msg_id":"%s"}',
    ]


def _join(events: list[bytes]) -> bytes:
    return events[0] if len(events) == 1 else b"[" + b",".join(events) + b"]"


def _stamp() -> bytes:
    """Now, RFC 3339 in UTC, always 32 bytes (isoformat drops zero microseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").encode()


class _Link(asyncio.Protocol):
    """One device's MQTT connection: CONNECT, then QoS 1 PUBLISHes and their PUBACKs;
    reconnects (with backoff) when the broker goes away."""

    def __init__(
        self,
        target: MqttTarget,
        device: str,
        secret: str,
        messages: _Messages,
        *,
        v5: bool,
        on_acks: Callable[[str, StepLoad, int, bool], None],
    ) -> None:
        self.device = device
        self._target = target
        self._connect_packet = _connect_packet(device, device, secret, v5=v5)
        self._messages = messages
        topic = _string(topic_for(device))
        self._properties = b"\x00" if v5 else b""
        # Per template: the fixed header (its length included) and the topic.
        self._heads = [
            b"\x32" + _varint(len(topic) + 2 + len(self._properties) + size) + topic
            for size in messages.lengths(_stamp())
        ]
        self._on_acks = on_acks
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._pending: dict[int, StepLoad] = {}  # packet id -> the step it counts for
        self._pids = itertools.cycle(range(1, 65536))
        self._connack: asyncio.Future[None] | None = None
        self._last_write = 0.0
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.ready = False

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._connack = loop.create_future()
        target = self._target
        context = ssl.create_default_context(cafile=target.ca_file) if target.tls else None
        try:
            await loop.create_connection(lambda: self, target.host, target.port, ssl=context)
            await asyncio.wait_for(self._connack, 10)
        except (OSError, TimeoutError) as exc:
            raise MqttError(f"{self.device}: cannot connect: {exc!r}") from exc
        if not self._tasks:
            self._keep(self._pings())

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._transport is not None:
            self._transport.write(b"\xe0\x00")  # DISCONNECT
            self._transport.close()

    def publish(self, count: int, stamp: bytes, step: StepLoad) -> None:
        """`count` QoS 1 PUBLISH packets of the next messages, in one write."""
        packets: list[bytes] = []
        pending, properties, heads = self._pending, self._properties, self._heads
        for _ in range(count):
            pid = next(self._pids)
            while pid in pending:  # 65,535 in flight on one link: never in practice
                pid = next(self._pids)
            pending[pid] = step
            kind, payload = self._messages.next(stamp)
            packets += (heads[kind], pid.to_bytes(2, "big"), properties, payload)
        assert self._transport is not None
        self._transport.write(b"".join(packets))
        self._last_write = time.monotonic()

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._buffer.clear()
        transport.write(self._connect_packet)

    def data_received(self, data: bytes) -> None:
        size = 0 if self._buffer else _puback_size(data)
        if size:
            self._acked(data, size)
            return
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 2:
            remaining = read_variable_int(buffer, 1)
            if remaining is None or len(buffer) < remaining[1] + remaining[0]:
                return  # the rest of the packet is still on its way
            length, start = remaining
            kind, body = buffer[0] >> 4, bytes(buffer[start : start + length])
            del buffer[: start + length]
            self._handle(kind, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ready = False
        self._transport = None
        pending, self._pending = self._pending, {}
        for step in pending.values():  # never acknowledged: failed, not counted as kept
            self._on_acks(self.device, step, 1, False)
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(MqttError(f"{self.device}: connection closed"))
        if not self._closing:
            self._keep(self._reconnect())

    # -- packets -----------------------------------------------------------------

    def _acked(self, data: bytes, size: int) -> None:
        """Successful PUBACKs of `size` bytes each: the common case, counted per step."""
        pending = self._pending
        last: StepLoad | None = None
        run = 0
        for i in range(2, len(data), size):
            step = pending.pop((data[i] << 8) | data[i + 1], None)
            if step is None:
                continue
            if step is not last:
                if last is not None:
                    self._on_acks(self.device, last, run, True)
                last, run = step, 0
            run += 1
        if last is not None:
            self._on_acks(self.device, last, run, True)

    def _handle(self, kind: int, body: bytes) -> None:
        if kind == _PUBACK:
            step = self._pending.pop(int.from_bytes(body[:2], "big"), None)
            if step is not None:
                ok = len(body) < 3 or body[2] < 0x80  # MQTT 5: a reason code >= 0x80 refuses
                self._on_acks(self.device, step, 1, ok)
        elif kind == _CONNACK:
            self._connacked(body)
        elif kind == _DISCONNECT and self._transport is not None:
            self._transport.close()

    def _connacked(self, body: bytes) -> None:
        reason = body[1] if len(body) > 1 else 0xFF
        assert self._connack is not None
        if reason == 0:
            self.ready = True
            if not self._connack.done():
                self._connack.set_result(None)
        elif not self._connack.done():
            self._connack.set_exception(MqttError(f"{self.device}: CONNACK {reason:#x}"))

    async def _pings(self) -> None:
        while True:
            await asyncio.sleep(_KEEPALIVE_S / 3)
            quiet = time.monotonic() - self._last_write > _KEEPALIVE_S / 3
            if quiet and self.ready and self._transport is not None:
                self._transport.write(_PINGREQ)

    async def _reconnect(self) -> None:
        backoff = Backoff(first=0.5, cap=10.0)
        while not self._closing and not self.ready:
            await backoff.wait()
            try:
                await self.open()
            except MqttError:
                continue

    def _keep(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _puback_size(data: bytes) -> int:
    """The size of each packet if `data` is whole PUBACKs of one size and all successes
    (0x40 0x02 + packet id, or MQTT 5's 0x40 0x03 + packet id + a reason code < 0x80,
    e.g. 0x10 "no matching subscribers"); else 0."""
    if len(data) < 4 or data[0] != 0x40 or data[1] not in (2, 3):
        return 0
    size = data[1] + 2
    n, rest = divmod(len(data), size)
    if rest or data[0::size].count(0x40) != n or data[1::size].count(size - 2) != n:
        return 0
    return size if size == 4 or max(data[4::5]) < 0x80 else 0


def _connect_packet(client_id: str, username: str, password: str, *, v5: bool) -> bytes:
    flags = 0x02 | 0x80 | 0x40  # clean start, user name, password
    header = b"\x00\x04MQTT" + bytes((5 if v5 else 4, flags)) + _KEEPALIVE_S.to_bytes(2, "big")
    fields = b"".join(map(_string, (client_id, username, password)))
    body = header + (b"\x00" if v5 else b"") + fields
    return b"\x10" + _varint(len(body)) + body


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)
