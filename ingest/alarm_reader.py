"""The alarm fast path: alerts raised straight from the broker, by a process that does
nothing else (`carewatch alarms`).

Under load every process an alarm passes through on its way to the alert is busy: ingest
with the ordinary session, the Kafka broker, the rules process with its batches. On a
saturated machine the alarm waits its turn at each of them (round 3 of docs/benchmarks.md:
SOS -> alert p99 0.9-2.2 s at 5,000-15,000 messages/s on two cores). This reader subscribes
to the codecs' alarm topics on an MQTT session of its own, checks and decodes each message
as ingest does (ingest/admission.py) and raises the alarm's alert in PostgreSQL at once.
Mostly idle, it is scheduled as soon as a message arrives.

It adds a path and takes none away: ingest reads the same messages on its own alarm
session and stores and alerts on them as before (events topic, alarm lane, rules worker).
A decision's key is applied once (alerts/store.py), so whichever path is first raises the
alert and the others change nothing. So the reader may drop what it cannot take (a device
over its allowance here, a full queue, the database away) and writes nowhere else: what it
drops still alerts, through ingest. Its session is not persistent for the same reason: while
it is down, the broker keeps nothing for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from devices.codecs import Codec
from devices.events import ALARM_KINDS, Event
from ingest import metrics
from ingest.admission import Admission
from ingest.policy import RateLimiter
from plumbing.backoff import Backoff
from plumbing.component import Component
from plumbing.mqtt import MqttClient, Received

__all__ = ["AlarmReader", "RaiseAlarms"]

log = logging.getLogger(__name__)

# Raises the alerts of these alarm events and returns the alerts that changed, each with
# the `event_id` that changed it (alerts.alarm_lane.AlarmLane.raise_alarms).
RaiseAlarms = Callable[[list[Event]], Awaitable[list[dict[str, Any]]]]

# Messages waiting to be raised, at most: beyond it they are left to ingest's path.
QUEUE_LIMIT = 1000
# Messages raised together, in one transaction, when many wait (a mass event).
_BATCH = 64
# A device's alarms taken here: a burst, then one a second. A button held down or a device
# gone wrong cannot fill the queue ahead of other residents' alarms; its alarms past that
# still reach the alert through ingest (and fold into the alert already open).
_DEVICE_RATE, _DEVICE_BURST = 1.0, 5.0
# A message waiting longer than this means the path has stopped making progress.
_STALL_S = 30.0


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A message taken, waiting to be raised: routed once, on arrival."""

    received_at: datetime
    started: float  # perf_counter on arrival
    codec: Codec
    device_id: str
    topic: str
    payload: bytes


class AlarmReader(Component):
    def __init__(
        self,
        *,
        mqtt_url: str,
        client_id: str,
        admission: Admission,
        raise_alarms: RaiseAlarms,
        mqtt_protocol: Literal["5", "3.1.1"] = "5",
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        super().__init__(name="alarm-reader")
        self._admission = admission
        self._raise = raise_alarms
        self._queue_limit = queue_limit
        self._waiting: deque[_Waiting] = deque()
        self._ready = asyncio.Event()
        self._devices = RateLimiter(rate=_DEVICE_RATE, burst=_DEVICE_BURST)
        self._filters = tuple(f for c in admission.codecs for f in c.alarm_subscriptions)
        self._mqtt = MqttClient(
            url=mqtt_url,
            client_id=client_id,
            protocol=mqtt_protocol,
            # Not shared: every reader sees every alarm (a second reader is a spare, not
            # half the work), and neither takes an alarm from ingest's session.
            subscriptions=self._filters,
            on_message=self._on_message,
            skip_retained=True,
        )

    async def _open(self) -> None:
        await self._admission.directory.start()
        self.supervise("raise", self._raise_loop, restart=True)
        await self._mqtt.start()
        log.info("alarm reader started", extra={"topics": list(self._filters)})

    async def _close(self) -> None:
        await self._mqtt.stop()
        await self.cancel_tasks()
        await self._admission.directory.stop()

    def health(self) -> dict[str, Any]:
        own, directory = super().health(), self._admission.directory.health()
        oldest = time.perf_counter() - self._waiting[0].started if self._waiting else 0.0
        ok = own["ok"] and directory["ok"] and self._mqtt.connected and oldest < _STALL_S
        return {
            **own,
            "ok": ok,
            "mqtt_connected": self._mqtt.connected,
            "directory": directory,
            "waiting": len(self._waiting),
            "oldest_waiting_s": round(oldest, 3),
        }

    # -- receiving ---------------------------------------------------------------------

    def _on_message(self, message: Received, generation: int) -> None:
        if message.retain:
            return  # an old alarm the broker kept: ingest skips it too
        codec, device_id = self._admission.route(message.topic)
        if codec is None or device_id is None:
            return  # ingest says why, to the DLQ
        if not self._devices.allow(device_id):
            metrics.labelled(metrics.FAST_PATH, "device_over_allowance").inc()
            return
        if len(self._waiting) >= self._queue_limit:
            metrics.labelled(metrics.FAST_PATH, "queue_full").inc()
            return
        self._waiting.append(
            _Waiting(
                datetime.now(UTC), time.perf_counter(), codec, device_id, message.topic,
                message.payload,
            )
        )  # fmt: skip
        self._ready.set()

    # -- raising -----------------------------------------------------------------------

    async def _raise_loop(self) -> None:
        backoff = Backoff(first=0.2, cap=5.0)
        while True:
            while not self._waiting:
                self._ready.clear()
                await self._ready.wait()
            batch = [self._waiting.popleft() for _ in range(min(_BATCH, len(self._waiting)))]
            alarms = [await self._alarms(item) for item in batch]
            taken = [(item, found) for item, found in zip(batch, alarms, strict=True) if found]
            metrics.labelled(metrics.FAST_PATH, "no_alarm").inc(len(batch) - len(taken))
            if not taken:
                continue
            try:
                changes = await self._raise([event for _, found in taken for event in found])
            except Exception as exc:  # the database away: ingest's path still raises them
                metrics.labelled(metrics.FAST_PATH, "failed").inc(len(taken))
                log.warning("alarms not raised here", extra={"error": repr(exc)})
                await backoff.wait()
                continue
            backoff.reset()
            self._count(taken, {change["event_id"] for change in changes})

    @staticmethod
    def _count(taken: list[tuple[_Waiting, list[Event]]], changed: set[str]) -> None:
        """Per message: `raised` here, or `already` raised by another path first."""
        now = time.perf_counter()
        for waited, found in taken:
            metrics.FAST_PATH_SECONDS.observe(now - waited.started)
            first = any(event.event_id in changed for event in found)
            metrics.labelled(metrics.FAST_PATH, "raised" if first else "already").inc()

    async def _alarms(self, waited: _Waiting) -> list[Event]:
        """The message's alarms, after ingest's checks (its rejects are ingest's to report)."""
        events, _rejects = await self._admission.check_and_decode(
            waited.codec, waited.device_id, waited.topic, waited.payload, waited.received_at
        )
        return [e for e in events if e.kind in ALARM_KINDS]
