"""A fleet of virtual devices over real MQTT, for the demo and for load tests.

Each device has its own connection (client id = device id, clean session), as hardware
does, so the broker sees as many sessions as there are devices, and one asyncio task that
sleeps until its next message is due and publishes it with QoS 1.

Types (`mix` keys): `watch` and `button` speak the native JSON format, `phone` is an
OwnTracks phone (`owntracks/{user}/phone`, broker user = the OwnTracks user), and
`watch4g` is a 3G/4G watch speaking its text protocol over TCP to the watch gateway
(`gateway`), one connection each, waiting for the gateway's replies as real watches do.
`lorabutton` (a WS101 behind The Things Stack) and `door` (a WS301 door sensor behind
ChirpStack) are LoRaWAN devices: they share their network server's one connection
(`lorawan_url`, an account of role `lorawan`), as a real integration does. With `rate`,
every device's timers are sped up by one factor so the fleet offers about `rate` events/s
in all; without it devices keep their natural intervals. Like real devices, a few
messages are sent twice (the same bytes, so the same msg_ids: the pipeline drops the copy)
and a few are held back and sent late, with their original device time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from devices.events import ALARM_KINDS
from plumbing.mqtt import MqttClient, MqttError, with_login
from plumbing.redact import redact_url
from simulators.behaviours import CallButton, Device, Watch
from simulators.lorawan_fleet import DoorSensor, LoraButton, LoraUplink, SharedLink, dev_eui
from simulators.native import Encoder, Message
from simulators.phone import OwnTracksUplink, Phone, phone_id
from simulators.watch_link import WatchFrames, WatchLink

__all__ = [
    "CONNECT_CONCURRENCY",
    "DEFAULT_MIX",
    "FORMATS",
    "NATURAL_EVENTS_PER_S",
    "TYPES",
    "FleetStats",
    "device_rng",
    "login_name",
    "parse_mix",
    "plan_fleet",
    "run_fleet",
    "speed_for",
]

log = logging.getLogger(__name__)

DEFAULT_MIX: Mapping[str, int] = {"watch": 70, "button": 30}
# Connections opened at once: a thousand simultaneous CONNECTs would stall the loop (paho's
# connect is a blocking TCP handshake) and look like a reconnect storm to the broker.
CONNECT_CONCURRENCY = 32
# A publish not acked by then counts as failed; the device moves on, as hardware would.
PUBLISH_TIMEOUT = 10.0
# On stop, how long devices get to finish the publish in hand: acks take milliseconds on a
# healthy broker, and a publish still waiting for a lost broker should not hold shutdown.
_STOP_GRACE = 2.0
_RECONNECT_CAP = 30.0
# What real devices do now and then: a message sent twice (lost PUBACK), one sent late.
DUPLICATE_SHARE = 0.002
LATE_SHARE = 0.002
_LATE_S = (5.0, 60.0)

TYPES: tuple[str, ...] = ("watch", "button", "phone", "watch4g", "lorabutton", "door")
LORAWAN_TYPES = frozenset({"lorabutton", "door"})
# Registry format per type.
FORMATS: Mapping[str, str] = {
    "watch": "native",
    "button": "native",
    "phone": "owntracks",
    "watch4g": "watch",
    "lorabutton": "ttn",
    "door": "chirpstack",
}
# Events per second one device of each type offers at its natural intervals.
NATURAL_EVENTS_PER_S: Mapping[str, float] = {
    "watch": 3 / Watch.LOCATION_EVERY + 1 / Watch.VITALS_EVERY + 1 / Watch.HEARTBEAT_EVERY,
    "button": 1 / CallButton.HEARTBEAT_EVERY,  # + an SOS every few minutes
    "phone": Phone.EVENTS_PER_S,
    "watch4g": 3 / Watch.LOCATION_EVERY + 1 / Watch.VITALS_EVERY + 1 / Watch.HEARTBEAT_EVERY,
    "lorabutton": 1 / CallButton.HEARTBEAT_EVERY,
    "door": DoorSensor.EVENTS_PER_S,
}


class _Uplink(Protocol):
    topic: str
    alarm_topic: str | None  # where its format sends alarms, if it has such a topic

    def encode(self, message: Message) -> bytes: ...

    def repeatable(self, message: Message) -> bool:
        """Whether sending it again yields the same events (so the copy is dropped)."""
        ...


class _Link(Protocol):
    """A device's connection: its MQTT client, or a 4G watch's TCP link to the gateway."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None: ...


@dataclass
class FleetStats:
    """What the fleet sent and the broker acknowledged (`messages` are MQTT messages)."""

    messages: int = 0
    events_by_kind: Counter[str] = field(default_factory=Counter)
    sos_sent: int = 0
    duplicates: int = 0  # events sent again with the same msg_id (the pipeline drops them)
    late: int = 0  # events held back and sent late (counted in `events` once sent)
    errors: int = 0  # publishes failed, timed out or abandoned at stop; devices crashed
    connect_errors: int = 0  # connection attempts that failed (devices keep retrying)
    connected: int = 0  # devices that got a connection

    @property
    def events(self) -> int:
        return sum(self.events_by_kind.values())

    def record(self, message: Message) -> None:
        self.messages += 1
        for item in message:
            self.events_by_kind[item["kind"]] += 1
        self.sos_sent += sum(1 for item in message if item["kind"] == "sos")

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict, for logs and the CLI."""
        return {
            "connected": self.connected,
            "messages": self.messages,
            "events": self.events,
            "events_by_kind": dict(sorted(self.events_by_kind.items())),
            "sos_sent": self.sos_sent,
            "duplicates": self.duplicates,
            "late": self.late,
            "errors": self.errors,
            "connect_errors": self.connect_errors,
        }


@dataclass(frozen=True)
class _Fleet:
    """What every device task shares."""

    url: str
    protocol: Literal["5", "3.1.1"]
    seed: int
    sos_mean_interval: float
    stats: FleetStats
    halt: asyncio.Event
    connecting: asyncio.Semaphore
    secrets: Mapping[str, str]  # device id -> broker secret (user name: `login_name`)
    speed: float = 1.0
    duplicate_share: float = DUPLICATE_SHARE
    late_share: float = LATE_SHARE
    late_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    gateway: tuple[str, int] = ("127.0.0.1", 5093)  # where `watch4g` devices connect
    lorawan: MqttClient | None = None  # the network servers' connection (LoRaWAN devices)


def parse_mix(text: str) -> dict[str, int]:
    """`watch:60,button:20,phone:20` -> {"watch": 60, "button": 20, "phone": 20}."""
    mix: dict[str, int] = {}
    for part in text.split(","):
        kind, sep, share = part.strip().partition(":")
        if not sep or kind not in TYPES or not share.strip().isdigit():
            raise ValueError(f"bad mix entry {part!r}: want type:share, types {', '.join(TYPES)}")
        mix[kind] = mix.get(kind, 0) + int(share)
    if sum(mix.values()) <= 0:
        raise ValueError(f"bad mix {text!r}: the shares add up to 0")
    return mix


def speed_for(plan: list[tuple[str, str]], rate: float | None) -> float:
    """The factor on every device's timers that makes the fleet offer `rate` events/s."""
    natural = sum(NATURAL_EVENTS_PER_S[kind] for kind, _ in plan)
    if rate is None or natural == 0:
        return 1.0
    if rate <= 0:
        raise ValueError(f"rate must be > 0 events/s, got {rate}")
    speed = rate / natural
    phones = sum(1 for kind, _ in plan if kind == "phone")
    if phones and speed * Phone.EVENTS_PER_S > Phone.MAX_EVENTS_PER_S:
        # Phones top out at a fix a second: the other devices make up the rest.
        others = natural - phones * Phone.EVENTS_PER_S
        if others > 0:
            speed = max(speed, (rate - phones * Phone.MAX_EVENTS_PER_S) / others)
    return speed


def login_name(kind: str, device_id: str) -> str:
    """The broker user name a device logs in with (OwnTracks: the user, not the id)."""
    return device_id.partition(":")[0] if kind == "phone" else device_id


def plan_fleet(
    devices: int, mix: Mapping[str, int] | None = None, *, prefix: str = ""
) -> list[tuple[str, str]]:
    """(type, device_id) for each device, e.g. ("watch", "watch-0001"),
    ("phone", "phone-0001:phone"); `prefix` goes in front of every id.

    `mix` gives each type's share in percent (normalised, so any weights will do); counts
    are rounded by largest remainder, so they add up to `devices`.
    """
    mix = DEFAULT_MIX if mix is None else mix
    unknown = sorted(set(mix) - set(TYPES))
    if unknown or devices < 0 or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(
            f"bad fleet: devices={devices}, mix={dict(mix)} "
            f"(types: {', '.join(TYPES)}; shares >= 0, not all 0)"
        )
    total = sum(mix.values())
    exact = {kind: devices * share / total for kind, share in mix.items()}
    counts = {kind: int(x) for kind, x in exact.items()}
    by_remainder = sorted(mix, key=lambda kind: exact[kind] - counts[kind], reverse=True)
    for kind in by_remainder[: devices - sum(counts.values())]:
        counts[kind] += 1
    return [
        (kind, _device_id(prefix, kind, n))
        for kind, n_of in counts.items()
        for n in range(1, n_of + 1)
    ]


def _device_id(prefix: str, kind: str, n: int) -> str:
    name = f"{prefix}{kind}-{n:04d}"
    if kind == "door":
        return dev_eui(name)  # ChirpStack names a device by its DevEUI
    return phone_id(name) if kind == "phone" else name


async def run_fleet(
    *,
    mqtt_url: str,
    devices: int,
    duration: float | None = None,
    mix: dict[str, int] | None = None,
    seed: int = 1,
    protocol: Literal["5", "3.1.1"] = "5",
    sos_mean_interval: float = 180.0,
    stop: asyncio.Event | None = None,
    secrets: Mapping[str, str] | None = None,
    rate: float | None = None,
    duplicate_share: float = DUPLICATE_SHARE,
    late_share: float = LATE_SHARE,
    prefix: str = "",
    gateway: tuple[str, int] = ("127.0.0.1", 5093),
    lorawan_url: str | None = None,
    stats: FleetStats | None = None,
) -> FleetStats:
    """Run `devices` virtual devices until `duration` seconds pass or `stop` is set, then
    disconnect them all. Failed publishes are counted in the stats, never raised.

    `rate`: events/s the whole fleet offers (None: the devices' natural intervals).
    `stats`: where to count (pass one to watch it while the fleet runs)."""
    if sos_mean_interval <= 0:
        raise ValueError(f"sos_mean_interval must be > 0, got {sos_mean_interval}")
    if min(duplicate_share, late_share) < 0 or duplicate_share + late_share > 1:
        raise ValueError("duplicate and late shares must be >= 0 and add up to at most 1")
    plan = plan_fleet(devices, mix, prefix=prefix)
    lorawan = _network_server(plan, lorawan_url, protocol)
    fleet = _Fleet(
        mqtt_url,
        protocol,
        seed,
        sos_mean_interval,
        stats if stats is not None else FleetStats(),
        asyncio.Event(),
        asyncio.Semaphore(CONNECT_CONCURRENCY),
        secrets or {},
        speed=speed_for(plan, rate),
        duplicate_share=duplicate_share,
        late_share=late_share,
        gateway=gateway,
        lorawan=lorawan,
    )
    log.info(
        "fleet starting",
        extra={
            "devices": len(plan),
            "seed": seed,
            "speed": round(fleet.speed, 3),
            "mix": dict(Counter(kind for kind, _ in plan)),
            "mqtt_url": redact_url(mqtt_url),
        },
    )
    if lorawan is not None:
        await lorawan.start()
    tasks = [
        asyncio.create_task(_run_device(kind, device_id, fleet), name=device_id)
        for kind, device_id in plan
    ]
    for task in tasks:
        task.add_done_callback(lambda t: _device_done(t, fleet.stats))
    try:
        await _until_stopped(tasks, stop, duration)
    finally:
        fleet.halt.set()
        await _drain(tasks + list(fleet.late_tasks))
        if lorawan is not None:
            await lorawan.stop()
    log.info("fleet stopped", extra=fleet.stats.summary())
    return fleet.stats


def _network_server(
    plan: list[tuple[str, str]], url: str | None, protocol: Literal["5", "3.1.1"]
) -> MqttClient | None:
    """The one connection LoRaWAN devices share, if the plan has any."""
    if not any(kind in LORAWAN_TYPES for kind, _ in plan):
        return None
    if url is None:
        raise ValueError("LoRaWAN devices need lorawan_url (an account of role lorawan)")
    client_id = f"carewatch-sim-lorawan-{random.getrandbits(32):08x}"
    return MqttClient(url=url, client_id=client_id, protocol=protocol)


async def _until_stopped(
    tasks: list[asyncio.Task[None]], stop: asyncio.Event | None, duration: float | None
) -> None:
    """Until `stop` is set, `duration` passes, or no device is left running."""
    watchers: set[asyncio.Task[Any]] = set()
    if tasks:
        watchers.add(asyncio.create_task(asyncio.wait(tasks)))  # cancelling it leaves tasks be
    if stop is not None:
        watchers.add(asyncio.create_task(stop.wait()))
    if not watchers:
        return  # no devices, nothing to wait for
    try:
        await asyncio.wait(watchers, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)


async def _drain(tasks: list[asyncio.Task[None]]) -> None:
    """Let devices finish the publish in hand and disconnect; cancel the stragglers."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=_STOP_GRACE)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _device_done(task: asyncio.Task[None], stats: FleetStats) -> None:
    if not task.cancelled() and task.exception() is not None:
        stats.errors += 1
        log.error("device crashed", exc_info=task.exception(), extra={"device_id": task.get_name()})


async def _run_device(kind: str, device_id: str, fleet: _Fleet) -> None:
    client = _link(kind, device_id, fleet)
    try:
        if not await _connect(client, device_id, fleet):
            return
        fleet.stats.connected += 1
        device = _make_device(kind, device_id, fleet, start=time.time())
        await _publish_loop(client, device, _uplink(kind, device_id, fleet), fleet)
    finally:
        await client.stop()


def _link(kind: str, device_id: str, fleet: _Fleet) -> _Link:
    if kind in LORAWAN_TYPES:
        assert fleet.lorawan is not None
        return SharedLink(fleet.lorawan)
    if kind == "watch4g":
        host, port = fleet.gateway
        return WatchLink(host=host, port=port, device_id=device_id)
    secret = fleet.secrets.get(device_id)
    url = with_login(fleet.url, login_name(kind, device_id), secret) if secret else fleet.url
    return MqttClient(url=url, client_id=device_id, protocol=fleet.protocol)


def _uplink(kind: str, device_id: str, fleet: _Fleet) -> _Uplink:
    if kind in LORAWAN_TYPES:
        return LoraUplink(device_id, kind)
    if kind == "watch4g":
        return WatchFrames(device_id)
    if kind == "phone":
        return OwnTracksUplink(device_id, rng=random.Random(f"{fleet.seed}/uplink/{device_id}"))
    return Encoder(device_id)


def device_rng(seed: int, device_id: str) -> random.Random:
    """What a device's behaviour draws from (its home first): seeded by device id, not by
    position in the plan, so a device behaves the same whatever the size or mix of the
    fleet around it, and simulators/people.py can find its home before it runs."""
    return random.Random(f"{seed}/{device_id}")


def _make_device(kind: str, device_id: str, fleet: _Fleet, *, start: float) -> Device:
    rng = device_rng(fleet.seed, device_id)
    if kind == "door":
        return DoorSensor(device_id, rng=rng, start=start, speed=fleet.speed)
    if kind in ("button", "lorabutton"):
        cls = LoraButton if kind == "lorabutton" else CallButton
        return cls(
            device_id,
            rng=rng,
            start=start,
            sos_mean_interval=fleet.sos_mean_interval,
            speed=fleet.speed,
        )
    if kind == "phone":
        return Phone(device_id, rng=rng, start=start, speed=fleet.speed)
    return Watch(device_id, rng=rng, start=start, speed=fleet.speed)


async def _connect(client: _Link, device_id: str, fleet: _Fleet) -> bool:
    """Connect, retrying with full-jitter backoff as a real device would; False if halted."""
    attempt, delay_cap = 0, 1.0
    while True:
        attempt += 1
        async with fleet.connecting:
            if fleet.halt.is_set():
                return False
            try:
                await client.start()
                return True
            except (MqttError, OSError) as exc:
                await client.stop()
                fleet.stats.connect_errors += 1
                level = logging.WARNING if attempt == 1 else logging.DEBUG  # one line per device
                log.log(
                    level,
                    "device cannot connect, retrying",
                    extra={"device_id": device_id, "attempt": attempt, "error": str(exc)},
                )
        if await _sleep_until(time.time() + random.uniform(0, delay_cap), fleet.halt):
            return False
        delay_cap = min(delay_cap * 2, _RECONNECT_CAP)


async def _publish_loop(client: _Link, device: Device, uplink: _Uplink, fleet: _Fleet) -> None:
    rng = random.Random(f"{fleet.seed}/quirks/{device.device_id}")
    while not await _sleep_until(device.next_at(), fleet.halt):
        # Never earlier than the timer: the loop's clock and the wall clock differ slightly.
        now = max(time.time(), device.next_at())
        for message in device.due(now):
            payload = uplink.encode(message)
            draw = rng.random()
            if draw < fleet.late_share and uplink.repeatable(message):
                _send_late(client, uplink, message, payload, fleet, rng.uniform(*_LATE_S))
                continue
            if await _publish(client, uplink, message, payload, fleet.stats):
                repeat = draw < fleet.late_share + fleet.duplicate_share
                if repeat and uplink.repeatable(message):
                    await _publish_again(client, uplink, message, payload, fleet.stats)


def _topic(uplink: _Uplink, message: Message) -> str:
    """A message of alarms only goes on the alarm topic where the format has one, as
    devices are asked to send them (docs/native-format.md); the rest on the device's topic."""
    alarms = all(item["kind"] in ALARM_KINDS for item in message)
    return uplink.alarm_topic if uplink.alarm_topic and alarms else uplink.topic


def _send_late(
    client: _Link,
    uplink: _Uplink,
    message: Message,
    payload: bytes,
    fleet: _Fleet,
    delay: float,
) -> None:
    """Hold a message back (out of coverage, a flaky modem) and send it `delay` s later."""

    async def later() -> None:
        if not await _sleep_until(time.time() + delay, fleet.halt):
            if await _publish(client, uplink, message, payload, fleet.stats):
                fleet.stats.late += len(message)

    task = asyncio.create_task(later(), name=f"{uplink.topic} late")
    fleet.late_tasks.add(task)
    task.add_done_callback(fleet.late_tasks.discard)


async def _publish_again(
    client: _Link, uplink: _Uplink, message: Message, payload: bytes, stats: FleetStats
) -> None:
    """The same bytes again, as a device does that never saw its PUBACK."""
    with contextlib.suppress(MqttError, OSError, TimeoutError):
        sent = client.publish(_topic(uplink, message), payload, qos=1)
        await asyncio.wait_for(sent, PUBLISH_TIMEOUT)
        stats.duplicates += len(message)


async def _publish(
    client: _Link, uplink: _Uplink, message: Message, payload: bytes, stats: FleetStats
) -> bool:
    """Publish with QoS 1; True once acknowledged (and counted)."""
    try:
        sent = client.publish(_topic(uplink, message), payload, qos=1)
        await asyncio.wait_for(sent, PUBLISH_TIMEOUT)
    except asyncio.CancelledError:
        stats.errors += 1  # abandoned at stop: not known to have arrived
        raise
    except (MqttError, OSError, TimeoutError) as exc:
        stats.errors += 1
        log.warning(
            "publish failed",
            extra={
                "topic": _topic(uplink, message),
                "kinds": [item["kind"] for item in message],
                "error": str(exc) or type(exc).__name__,
            },
        )
        return False
    stats.record(message)
    return True


async def _sleep_until(at: float, halt: asyncio.Event) -> bool:
    """Sleep until wall-clock time `at`; True if the fleet was halted meanwhile."""
    delay = at - time.time()
    if delay > 0 and not halt.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await halt.wait()
    return halt.is_set()
