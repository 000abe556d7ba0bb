"""Load at a set rate, for the benchmark: many devices, each on its own MQTT connection,
sending native messages of `batch` events at a combined offered rate.

Unlike the fleet (simulators/fleet.py), whose devices keep their own natural intervals,
this paces the whole fleet to a target events/s so a benchmark can step the load up. The
events look like a watch's (location + battery + steps frames, vitals, heartbeats), and
every message has its own `msg_id`s, so each event is stored exactly once.

Per device it counts the events sent and acknowledged by the broker: with the stored
counts per device that gives lost (acknowledged, never stored) and duplicated (stored more
than sent) events.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from devices.codecs.native import topic_for
from plumbing.mqtt import MqttClient, MqttError, with_login
from simulators.behaviours import HOME_CENTRE

__all__ = ["LoadGenerator", "StepLoad"]

# Messages in flight at once (published, PUBACK not yet back). Beyond it the generator
# falls behind its target and reports the rate it managed, not the one it was asked for.
MAX_IN_FLIGHT = 4000
_CONNECT_CONCURRENCY = 64
_TICK_S = 0.01


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


@dataclass
class LoadGenerator:
    url: str
    protocol: Literal["5", "3.1.1"]
    devices: Mapping[str, str]  # device id -> broker secret
    batch: int = 5
    sent: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)
    _clients: dict[str, MqttClient] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _rng: random.Random = field(default_factory=lambda: random.Random(1))

    async def connect(self) -> None:
        """One connection per device, a bounded number opening at once."""
        gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)

        async def open_one(device: str, secret: str) -> None:
            async with gate:
                client = MqttClient(
                    url=with_login(self.url, device, secret),
                    client_id=device,
                    protocol=self.protocol,
                    max_pending_publishes=MAX_IN_FLIGHT,
                )
                await client.start()
                self._clients[device] = client

        await asyncio.gather(*(open_one(d, s) for d, s in self.devices.items()))

    async def close(self) -> None:
        await asyncio.gather(*(c.stop() for c in self._clients.values()), return_exceptions=True)

    @property
    def connected(self) -> int:
        return sum(1 for c in self._clients.values() if c.connected)

    async def drive(self, events_per_s: float, seconds: float) -> StepLoad:
        """Offer `events_per_s` for `seconds`, then wait for the acknowledgements."""
        step = StepLoad()
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        pending: set[asyncio.Task[None]] = set()
        devices = itertools.cycle(list(self._clients))
        per_message = events_per_s / self.batch
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * per_message) - step.messages
            for _ in range(max(0, due)):
                if slots.locked():
                    break  # saturated: offered rate falls behind the target
                await slots.acquire()
                task = asyncio.create_task(self._send(next(devices), step, slots))
                pending.add(task)
                task.add_done_callback(pending.discard)
                step.messages += 1
            await asyncio.sleep(_TICK_S)
        step.seconds = time.monotonic() - started
        await asyncio.gather(*pending, return_exceptions=True)
        return step

    async def _send(self, device: str, step: StepLoad, slots: asyncio.Semaphore) -> None:
        message = self._message()
        self.sent[device] += len(message)
        step.events_sent += len(message)
        try:
            await self._clients[device].publish(topic_for(device), orjson.dumps(message))
        except MqttError:
            step.errors += 1
        else:
            self.acked[device] += len(message)
            step.events_acked += len(message)
        finally:
            slots.release()

    def _message(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC).isoformat()
        run = next(self._seq)
        return [self._event(n, now, f"{run}.{n}") for n in range(self.batch)]

    def _event(self, n: int, ts: str, msg_id: str) -> dict[str, Any]:
        lat, lon = HOME_CENTRE
        kind = n % 5
        if kind == 0:
            jitter = self._rng.uniform(-0.002, 0.002)
            return {"kind": "location", "ts": ts, "msg_id": msg_id, "lat": lat + jitter,
                    "lon": lon - jitter, "accuracy_m": 12}  # fmt: skip
        if kind == 1:
            return {"kind": "battery", "ts": ts, "msg_id": msg_id, "battery_pct": 80}
        if kind == 2:
            return {"kind": "activity", "ts": ts, "msg_id": msg_id, "steps": 1000 + n}
        if kind == 3:
            hr = self._rng.randint(62, 84)
            return {"kind": "vitals", "ts": ts, "msg_id": msg_id, "heart_rate_bpm": hr,
                    "spo2_pct": 97}  # fmt: skip
        return {"kind": "heartbeat", "ts": ts, "msg_id": msg_id}
