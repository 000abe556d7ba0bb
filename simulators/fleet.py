"""A fleet of virtual devices over real MQTT, for the demo and for load tests.

Each device has its own connection (client id = device id, clean session), as hardware
does, so the broker sees as many sessions as there are devices, and one asyncio task that
sleeps until its next message is due and publishes it with QoS 1.
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
from typing import Any, Literal

from carewatch.mqtt import MqttClient, MqttError, with_login
from simulators.behaviours import DEVICE_TYPES, CallButton, Device
from simulators.native import Encoder, Message

__all__ = ["CONNECT_CONCURRENCY", "DEFAULT_MIX", "FleetStats", "plan_fleet", "run_fleet"]

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


@dataclass
class FleetStats:
    """What the fleet sent and the broker acknowledged (`messages` are MQTT messages)."""

    messages: int = 0
    events_by_kind: Counter[str] = field(default_factory=Counter)
    sos_sent: int = 0
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
    secrets: Mapping[str, str]  # device id -> broker secret (user name = device id)


def plan_fleet(devices: int, mix: Mapping[str, int] | None = None) -> list[tuple[str, str]]:
    """(type, device_id) for each device, e.g. ("watch", "watch-0001").

    `mix` gives each type's share in percent (normalised, so any weights will do); counts
    are rounded by largest remainder, so they add up to `devices`.
    """
    mix = DEFAULT_MIX if mix is None else mix
    unknown = sorted(set(mix) - set(DEVICE_TYPES))
    if unknown or devices < 0 or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(
            f"bad fleet: devices={devices}, mix={dict(mix)} "
            f"(types: {', '.join(DEVICE_TYPES)}; shares >= 0, not all 0)"
        )
    total = sum(mix.values())
    exact = {kind: devices * share / total for kind, share in mix.items()}
    counts = {kind: int(x) for kind, x in exact.items()}
    by_remainder = sorted(mix, key=lambda kind: exact[kind] - counts[kind], reverse=True)
    for kind in by_remainder[: devices - sum(counts.values())]:
        counts[kind] += 1
    return [(kind, f"{kind}-{n:04d}") for kind, n_of in counts.items() for n in range(1, n_of + 1)]


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
) -> FleetStats:
    """Run `devices` virtual devices until `duration` seconds pass or `stop` is set, then
    disconnect them all. Failed publishes are counted in the stats, never raised."""
    if sos_mean_interval <= 0:
        raise ValueError(f"sos_mean_interval must be > 0, got {sos_mean_interval}")
    fleet = _Fleet(
        mqtt_url,
        protocol,
        seed,
        sos_mean_interval,
        FleetStats(),
        asyncio.Event(),
        asyncio.Semaphore(CONNECT_CONCURRENCY),
        secrets or {},
    )
    plan = plan_fleet(devices, mix)
    log.info(
        "fleet starting",
        extra={
            "devices": len(plan),
            "seed": seed,
            "mix": dict(Counter(kind for kind, _ in plan)),
            "mqtt_url": _redact(mqtt_url),
        },
    )
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
        await _drain(tasks)
    log.info("fleet stopped", extra=fleet.stats.summary())
    return fleet.stats


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
    secret = fleet.secrets.get(device_id)
    url = with_login(fleet.url, device_id, secret) if secret else fleet.url
    client = MqttClient(url=url, client_id=device_id, protocol=fleet.protocol)
    try:
        if not await _connect(client, device_id, fleet):
            return
        fleet.stats.connected += 1
        device = _make_device(kind, device_id, fleet, start=time.time())
        await _publish_loop(client, device, Encoder(device_id), fleet)
    finally:
        await client.stop()


def _make_device(kind: str, device_id: str, fleet: _Fleet, *, start: float) -> Device:
    # Seeded by device id, not by position in the plan: a device behaves the same
    # whatever the size or mix of the fleet around it.
    rng = random.Random(f"{fleet.seed}/{device_id}")
    cls = DEVICE_TYPES[kind]
    if cls is CallButton:
        return CallButton(
            device_id, rng=rng, start=start, sos_mean_interval=fleet.sos_mean_interval
        )
    return cls(device_id, rng=rng, start=start)


async def _connect(client: MqttClient, device_id: str, fleet: _Fleet) -> bool:
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


async def _publish_loop(
    client: MqttClient, device: Device, encoder: Encoder, fleet: _Fleet
) -> None:
    while not await _sleep_until(device.next_at(), fleet.halt):
        # Never earlier than the timer: the loop's clock and the wall clock differ slightly.
        now = max(time.time(), device.next_at())
        for message in device.due(now):
            await _publish(client, encoder, message, fleet.stats)


async def _publish(
    client: MqttClient, encoder: Encoder, message: Message, stats: FleetStats
) -> None:
    try:
        await asyncio.wait_for(
            client.publish(encoder.topic, encoder.encode(message), qos=1), PUBLISH_TIMEOUT
        )
    except asyncio.CancelledError:
        stats.errors += 1  # abandoned at stop: not known to have arrived
        raise
    except (MqttError, TimeoutError) as exc:
        stats.errors += 1
        log.warning(
            "publish failed",
            extra={
                "device_id": encoder.device_id,
                "kinds": [item["kind"] for item in message],
                "error": str(exc) or type(exc).__name__,
            },
        )
        return
    stats.record(message)


async def _sleep_until(at: float, halt: asyncio.Event) -> bool:
    """Sleep until wall-clock time `at`; True if the fleet was halted meanwhile."""
    delay = at - time.time()
    if delay > 0 and not halt.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await halt.wait()
    return halt.is_set()


def _redact(url: str) -> str:
    # Logs must not carry the broker password.
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url
