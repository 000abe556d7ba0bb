"""An OwnTracks phone in the fleet: a person's phone reporting where they are, for
`simulators.fleet`. Behaviour here, bytes by `simulators.owntracks`.

The phone is a `Device` like the watch: its messages are native-style event dicts
(`location` with the phone's `battery`), and `OwnTracksUplink` turns each into the JSON the
OwnTracks app publishes on `owntracks/{user}/{device}`.
"""

from __future__ import annotations

import math
import random

from simulators import owntracks
from simulators.behaviours import HOME_CENTRE, _Timed, local_hour
from simulators.native import Message

__all__ = ["PHONE_DEVICE", "OwnTracksUplink", "Phone", "phone_id"]

PHONE_DEVICE = "phone"  # the OwnTracks device name: device ids are "{user}:phone"
_M_PER_DEG = 111_320.0


def phone_id(user: str) -> str:
    """The registry id of `user`'s phone (its broker user name is `user`)."""
    return f"{user}:{PHONE_DEVICE}"


class Phone(_Timed):
    """A phone in significant-changes mode: a fix every couple of minutes, with the battery,
    which drains by day and is charged overnight."""

    LOCATION_EVERY = 120.0
    EVENTS_PER_S = 2 / LOCATION_EVERY  # location + battery
    # OwnTracks times a fix in whole seconds and its event ids are content hashes: two fixes
    # in one second could be the same event (the battery unchanged). The app never sends
    # faster either, so however fast the fleet runs, a phone sends at most one fix a second.
    MIN_INTERVAL = 1.0
    MAX_EVENTS_PER_S = 2 / MIN_INTERVAL
    ROAM_M = 800.0  # how far from home its owner goes

    def __init__(
        self, device_id: str, *, rng: random.Random, start: float, speed: float = 1.0
    ) -> None:
        super().__init__(device_id, rng, speed)
        lat, lon = HOME_CENTRE
        self.home = (lat + rng.uniform(-0.04, 0.04), lon + rng.uniform(-0.04, 0.04))
        self._offset_m = (0.0, 0.0)
        self._battery = rng.uniform(40.0, 100.0)
        self._next["location"] = start + rng.uniform(0, self._every(self.LOCATION_EVERY))

    def _fire(self, name: str, now: float) -> tuple[Message, float]:
        hour = local_hour(now)
        if 7.0 <= hour < 21.0:
            east, north = self._offset_m
            east += self._rng.gauss(0, 30) - 0.01 * east
            north += self._rng.gauss(0, 30) - 0.01 * north
            scale = min(1.0, self.ROAM_M / max(1.0, math.hypot(east, north)))
            self._offset_m = (east * scale, north * scale)
            self._battery = max(2.0, self._battery - self._rng.uniform(0.0, 0.5))
        else:
            self._battery = min(100.0, self._battery + self._rng.uniform(0.0, 3.0))
        east, north = self._offset_m
        lat = self.home[0] + north / _M_PER_DEG
        lon = self.home[1] + east / (_M_PER_DEG * math.cos(math.radians(self.home[0])))
        accuracy = round(self._rng.uniform(5.0, 40.0))
        fix = {"lat": round(lat, 6), "lon": round(lon, 6), "accuracy_m": accuracy}
        message: Message = [
            {"kind": "location", "ts": now, **fix},
            {"kind": "battery", "ts": now, "battery_pct": round(self._battery)},
        ]
        return message, max(self.MIN_INTERVAL, self._jittered(self.LOCATION_EVERY))


class OwnTracksUplink:
    """The OwnTracks app's bytes for a phone's messages (Android app, seeded `_id`s)."""

    def __init__(self, device_id: str, *, rng: random.Random) -> None:
        user, _, device = device_id.partition(":")
        self.device_id = device_id
        self._phone = owntracks.Phone(user=user, device=device, rng=rng)
        self.topic = self._phone.topic
        self.alarm_topic: str | None = None  # OwnTracks has none

    def repeatable(self, message: Message) -> bool:
        """A resend carries the same ids (msg_id, or device time in the content hash)."""
        return True

    def encode(self, message: Message) -> bytes:
        fix = next(item for item in message if item["kind"] == "location")
        battery = next((item for item in message if item["kind"] == "battery"), None)
        _, payload = self._phone.location(
            lat=fix["lat"],
            lon=fix["lon"],
            tst=int(fix["ts"]),
            acc=fix.get("accuracy_m"),
            batt=None if battery is None else battery["battery_pct"],
        )
        return payload
