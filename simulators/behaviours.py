"""Virtual devices: what a watch or a call button says, and when. No I/O, no sleeping.

A device is a state machine over a clock value (epoch seconds) and its own
`random.Random`: `next_at()` is when it next has something to say, `due(now)` returns the
messages due by `now` (each a list of native event dicts for `simulators.native`) and moves
its timers on. The same seed and start give the same messages.
"""

from __future__ import annotations

import math
import random
from typing import Any, ClassVar, Protocol

from simulators.native import Message

__all__ = ["DEVICE_TYPES", "HOME_CENTRE", "CallButton", "Device", "Watch", "local_hour"]

HOME_CENTRE = (31.23, 121.47)  # Shanghai, People's Square
_M_PER_DEG = 111_320.0  # metres per degree of latitude (and of longitude at the equator)
_UTC_OFFSET_S = 8 * 3600  # the simulated residents live in China Standard Time
_DAYTIME = (7.0, 21.0)  # local hours a resident is up and about (and the watch off charge)


def local_hour(ts: float) -> float:
    """The residents' local time of day, in hours (0 <= h < 24)."""
    return ((ts + _UTC_OFFSET_S) % 86400) / 3600


class Device(Protocol):
    device_id: str

    def next_at(self) -> float: ...

    def due(self, now: float) -> list[Message]: ...


class _Timed:
    """Named timers; each firing returns one message and how long until the next."""

    def __init__(self, device_id: str, rng: random.Random, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.device_id = device_id
        self._rng = rng
        self._speed = speed  # > 1: every timer runs that many times faster (load tests)
        self._next: dict[str, float] = {}

    def next_at(self) -> float:
        return min(self._next.values())

    def due(self, now: float) -> list[Message]:
        """Messages due by `now`, oldest first. A timer that fell behind fires once, not
        once per missed period: a late device reports its present, it does not backfill."""
        out = []
        for _, name in sorted((at, name) for name, at in self._next.items() if at <= now):
            message, wait = self._fire(name, now)
            out.append(message)
            self._next[name] = now + wait
        return out

    def _fire(self, name: str, now: float) -> tuple[Message, float]:
        raise NotImplementedError

    def _jittered(self, period: float) -> float:
        # Real devices' timers drift; exact periods would keep a whole fleet in lockstep.
        return self._every(period) * self._rng.uniform(0.95, 1.05)

    def _every(self, period: float) -> float:
        return period / self._speed


class Watch(_Timed):
    """A wearable: location frames (with battery and steps), vitals, heartbeats.

    Its wearer potters about within `ROAM_M` of a home somewhere near `centre`.
    """

    LOCATION_EVERY = 30.0
    VITALS_EVERY = 60.0
    HEARTBEAT_EVERY = 60.0
    ROAM_M = 400.0
    DRAIN_PCT_PER_S = 2.0 / 3600  # a watch lasts about two days on a charge
    CHARGE_PCT_PER_S = 40.0 / 3600  # on the charger: full in about two hours
    _PULL_HOME = 0.005  # per frame: a random walk that drifts back, so it stays near home
    _STRIDE_M = 0.6

    def __init__(
        self,
        device_id: str,
        *,
        rng: random.Random,
        start: float,
        centre: tuple[float, float] = HOME_CENTRE,
        speed: float = 1.0,
    ) -> None:
        super().__init__(device_id, rng, speed)
        self.home = (centre[0] + rng.uniform(-0.04, 0.04), centre[1] + rng.uniform(-0.04, 0.04))
        self._offset_m = (0.0, 0.0)  # east, north of home
        self._resting_hr = rng.uniform(65.0, 80.0)
        self._battery = rng.uniform(60.0, 100.0)
        self._steps = 0
        self._last_frame = start
        # A random phase per timer, so devices started together do not publish together.
        periods = {
            "location": self.LOCATION_EVERY,
            "vitals": self.VITALS_EVERY,
            "heartbeat": self.HEARTBEAT_EVERY,
        }
        for name, period in periods.items():
            self._next[name] = start + rng.uniform(0, self._every(period))

    @property
    def position(self) -> tuple[float, float]:
        east, north = self._offset_m
        lat = self.home[0] + north / _M_PER_DEG
        lon = self.home[1] + east / (_M_PER_DEG * math.cos(math.radians(self.home[0])))
        return lat, lon

    def _fire(self, name: str, now: float) -> tuple[Message, float]:
        if name == "location":
            return self._location_frame(now), self._jittered(self.LOCATION_EVERY)
        if name == "vitals":
            return [self._vitals(now)], self._jittered(self.VITALS_EVERY)
        return [{"kind": "heartbeat", "ts": now}], self._every(self.HEARTBEAT_EVERY)

    def _location_frame(self, now: float) -> Message:
        """One frame, three facts, as real watches send them."""
        hour = local_hour(now)
        if int((now + _UTC_OFFSET_S) // 86400) != int((self._last_frame + _UTC_OFFSET_S) // 86400):
            self._steps = 0  # the step counter starts again at local midnight
        moved = self._walk() if _DAYTIME[0] <= hour < _DAYTIME[1] else 0.0
        self._steps += int(moved / self._STRIDE_M) + (self._rng.randint(0, 15) if moved else 0)
        self._battery = self._charge(now - self._last_frame, hour)
        self._last_frame = now
        lat, lon = self.position
        return [
            {
                "kind": "location",
                "ts": now,
                "lat": round(lat, 6),
                "lon": round(lon, 6),
                "accuracy_m": round(self._rng.uniform(5.0, 30.0), 1),
            },
            {"kind": "battery", "ts": now, "battery_pct": round(self._battery)},
            {"kind": "activity", "ts": now, "steps": self._steps},
        ]

    def _charge(self, elapsed: float, hour: float) -> float:
        """Drains all day; on the charger overnight (from 21:00) until full."""
        if hour >= _DAYTIME[1] or hour < _DAYTIME[0]:
            return min(100.0, self._battery + elapsed * self.CHARGE_PCT_PER_S)
        return max(1.0, self._battery - elapsed * self.DRAIN_PCT_PER_S)

    def _walk(self) -> float:
        """One step of the walk; returns the metres moved."""
        east, north = self._offset_m
        new_east = east + self._rng.gauss(0, 10) - self._PULL_HOME * east
        new_north = north + self._rng.gauss(0, 10) - self._PULL_HOME * north
        radius = math.hypot(new_east, new_north)
        if radius > self.ROAM_M:
            new_east, new_north = new_east * self.ROAM_M / radius, new_north * self.ROAM_M / radius
        self._offset_m = (new_east, new_north)
        return math.hypot(new_east - east, new_north - north)

    def _vitals(self, now: float) -> dict[str, Any]:
        # A daily rhythm: lowest around 04:00 in the wearer's night, highest mid-afternoon.
        rhythm = 6.0 * math.sin(2 * math.pi * (local_hour(now) - 10.0) / 24.0)
        mean = self._resting_hr + rhythm
        heart_rate = min(95.0, max(55.0, self._rng.gauss(mean, 4.0)))
        return {
            "kind": "vitals",
            "ts": now,
            "heart_rate_bpm": round(heart_rate),
            "spo2_pct": self._rng.randint(95, 99),
        }


class CallButton(_Timed):
    """A wall or bedside call button: heartbeats, and an SOS press now and then.

    The first press comes `FIRST_SOS` seconds after start, so someone trying the demo sees
    an alert within a minute; later gaps are exponential with mean `sos_mean_interval`.
    """

    HEARTBEAT_EVERY = 60.0
    FIRST_SOS: ClassVar[tuple[float, float]] = (5.0, 40.0)

    def __init__(
        self,
        device_id: str,
        *,
        rng: random.Random,
        start: float,
        sos_mean_interval: float = 180.0,
        speed: float = 1.0,
    ) -> None:
        if sos_mean_interval <= 0:
            raise ValueError(f"sos_mean_interval must be > 0, got {sos_mean_interval}")
        super().__init__(device_id, rng, speed)
        self._sos_rate = 1.0 / sos_mean_interval
        self._next["heartbeat"] = start + rng.uniform(0, self._every(self.HEARTBEAT_EVERY))
        self._next["sos"] = start + self._every(rng.uniform(*self.FIRST_SOS))

    def _fire(self, name: str, now: float) -> tuple[Message, float]:
        if name == "sos":
            return [{"kind": "sos", "ts": now}], self._rng.expovariate(self._sos_rate)
        return [{"kind": "heartbeat", "ts": now}], self._every(self.HEARTBEAT_EVERY)


# Fleet mix keys -> device classes (also the prefix of their device ids).
DEVICE_TYPES: dict[str, type[Watch] | type[CallButton]] = {"watch": Watch, "button": CallButton}
