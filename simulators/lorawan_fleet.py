"""LoRaWAN devices in the fleet: a Milesight WS101 call button behind The Things Stack and a
WS301 door sensor behind ChirpStack, both reaching carewatch through their network
server's MQTT integration.

A LoRaWAN device has no connection of its own: the network server publishes every device's
uplinks over one connection with one account (role `lorawan`). The fleet therefore shares
one MQTT client among them (`SharedLink`). Behaviour gives native-style messages, as for
the other devices; `LoraUplink` turns each into the device's payload bytes wrapped in the
next uplink envelope of its network server (simulators/lorawan.py builds both).
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime

from plumbing.mqtt import MqttClient
from simulators import lorawan
from simulators.behaviours import CallButton, _Timed
from simulators.native import Message

__all__ = ["DoorSensor", "LoraButton", "LoraUplink", "SharedLink", "dev_eui"]

# Per fleet type: (network server, Milesight model).
SERVERS = {"lorabutton": ("ttn", "ws101"), "door": ("chirpstack", "ws301")}


def dev_eui(name: str) -> str:
    """A ChirpStack device is named by its DevEUI (16 hex digits); one per fleet name."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


class LoraButton(CallButton):
    """A WS101 call button: SOS presses like any call button, and instead of keep-alives the
    periodic battery report LoRaWAN buttons send."""

    def _fire(self, name: str, now: float) -> tuple[Message, float]:
        message, wait = super()._fire(name, now)
        if message[0]["kind"] == "heartbeat":
            message = [{"kind": "battery", "ts": now, "battery_pct": 90}]
        return message, wait


class DoorSensor(_Timed):
    """A front-door contact: opened and closed through the day, a battery report hourly."""

    DOOR_EVERY = 600.0
    BATTERY_EVERY = 3600.0
    EVENTS_PER_S = 1 / DOOR_EVERY + 1 / BATTERY_EVERY

    def __init__(
        self, device_id: str, *, rng: random.Random, start: float, speed: float = 1.0
    ) -> None:
        super().__init__(device_id, rng, speed)
        self._open = False
        self._battery = rng.uniform(60.0, 100.0)
        self._next["door"] = start + rng.uniform(0, self._every(self.DOOR_EVERY))
        self._next["battery"] = start + rng.uniform(0, self._every(self.BATTERY_EVERY))

    def _fire(self, name: str, now: float) -> tuple[Message, float]:
        if name == "door":
            self._open = not self._open
            state = "open" if self._open else "closed"
            return [{"kind": "sensor", "ts": now, "sensor": "door", "state": state}], (
                self._jittered(self.DOOR_EVERY)
            )
        self._battery = max(1.0, self._battery - self._rng.uniform(0.0, 0.2))
        message = [{"kind": "battery", "ts": now, "battery_pct": round(self._battery)}]
        return message, self._every(self.BATTERY_EVERY)


class LoraUplink:
    """Behaviour messages -> this device's uplinks: an SOS is a WS101 short press, a door
    event a WS301 magnet report, a battery level the battery channel both models send."""

    def __init__(self, device_id: str, kind: str) -> None:
        server, model = SERVERS[kind]
        self._uplinker = lorawan.Uplinker(device_id, server=server, model=model)
        self.topic, _ = lorawan.Uplinker(device_id, server=server).uplink(b"", datetime.now(UTC))
        self.alarm_topic: str | None = None  # a network server publishes every uplink on one

    def encode(self, message: Message) -> bytes:
        item = message[0]
        at = datetime.fromtimestamp(float(item["ts"]), UTC)
        _, envelope = self._uplinker.uplink(self._payload(item), at)
        return envelope

    def repeatable(self, message: Message) -> bool:
        """The same envelope again: the same frame counter and time, so the same events."""
        return True

    @staticmethod
    def _payload(item: dict[str, object]) -> bytes:
        kind = item["kind"]
        if kind == "sos":
            return lorawan.ws101_press("short")
        if kind == "sensor":
            return lorawan.ws301_report(str(item["state"]))
        if kind != "battery":
            raise ValueError(f"a LoRaWAN device in the fleet does not send {kind!r}")
        return lorawan.battery(int(str(item["battery_pct"])))


class SharedLink:
    """The network server's connection, as one device sees it: starting and stopping it is
    the fleet's business, not the device's."""

    def __init__(self, client: MqttClient) -> None:
        self._client = client

    async def start(self) -> None:
        await self._client.wait_connected()

    async def stop(self) -> None:
        return None

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        await self._client.publish(topic, payload, qos)
