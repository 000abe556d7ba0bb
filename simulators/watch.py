"""The 3G/4G watch protocol, device side: the bytes a real watch writes to its TCP socket.

The inverse of `devices.codecs.watch` (decoding) over `devices.codecs.watch_frames`
(framing, whose `build_frame` writes the header and LEN, so the format is written down
once). Formats follow the frames captured in Traccar's WatchProtocolDecoderTest:

    [3G*8800000015*000B*LK,0,10,100]
    [3G*8800000015*00C0*AL,271219,094744,V,0.000000,N,0.0000000,E,0.00,0.0,0.0,0,100,81,
     0,0,00010000,1,1,460,0,9360,4082,131,0]

`WatchEncoder` is one watch: its maker code, its id, and (for firmware that numbers its
messages) an index counter. Every method returns one complete frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from devices.codecs.watch import (
    STATUS_FALL,
    STATUS_FENCE_IN_ALARM,
    STATUS_FENCE_OUT_ALARM,
    STATUS_MOTION,
    STATUS_REMOVED,
    STATUS_SOS,
    topic_for,
)
from devices.codecs.watch_frames import build_frame, escape

__all__ = ["Fix", "WatchEncoder", "WifiSighting", "topic_for"]

# One cell the watch hears: count, timing advance, MCC, MNC, then LAC, cell id, signal.
_CELLS = "1,1,460,0,9360,4082,131"


@dataclass(frozen=True)
class Fix:
    """A GPS fix as the watch reports it (degrees, km/h, degrees, metres)."""

    lat: float
    lon: float
    speed_kmh: float = 0.0
    course_deg: float = 0.0
    altitude_m: float = 0.0
    satellites: int = 8
    # False: the watch has no fix now and repeats this, its last one (validity `V`).
    current: bool = True


@dataclass(frozen=True)
class WifiSighting:
    name: str  # raw in the frame, brackets and all: real SSIDs contain `[` and `]`
    mac: str
    rssi: int


class WatchEncoder:
    def __init__(
        self,
        device_id: str,
        *,
        maker: str = "3G",
        indexed: bool = False,
        first_index: int = 1,
        clock: tzinfo = UTC,
    ) -> None:
        self.device_id = device_id
        self.maker = maker
        self.clock = clock  # the zone the watch's clock is set to (its times carry none)
        self.topic = topic_for(device_id)
        self._indexed = indexed
        self._index = first_index

    def frame(self, content: bytes) -> bytes:
        """Any content (already in wire form) as this watch frames it."""
        index = None
        if self._indexed:
            index = f"{self._index & 0xFFFF:04X}"
            self._index += 1
        return build_frame(self.maker, self.device_id, content, index=index)

    def link(
        self, *, steps: int | None = None, rolls: int = 0, battery: int | None = None
    ) -> bytes:
        """LK: the keep-alive, bare or with `steps,rolls,battery`."""
        if steps is None or battery is None:
            return self.frame(b"LK")
        return self.frame(f"LK,{steps},{rolls},{battery}".encode())

    def init(self) -> bytes:
        return self.frame(b"INIT")

    def report(
        self,
        at: datetime,
        *,
        fix: Fix | None = None,
        kind: str = "UD",
        status: int = 0,
        battery: int = 100,
        steps: int = 0,
        rolls: int = 0,
        gsm: int = 100,
        moving: bool = False,
        wifi: Sequence[WifiSighting] = (),
    ) -> bytes:
        """A position report (UD, UD2, UD_LTE, WT...); without `fix` it says V and 0,0."""
        status |= STATUS_MOTION if moving else 0
        body = ",".join(
            (
                _when(at, self.clock),
                _position(fix),
                f"{gsm},{battery},{steps},{rolls},{status:08X}",
                _CELLS,
                _wifi(wifi),
            )
        )
        return self.frame(f"{kind},{body}".encode())

    def alarm(
        self,
        at: datetime,
        *,
        fix: Fix | None = None,
        kind: str = "AL",
        sos: bool = False,
        fall: bool = False,
        removed: bool = False,
        fence: str | None = None,
        status: int = 0,
        battery: int = 100,
        steps: int = 0,
    ) -> bytes:
        """An alarm frame (AL, AL_LTE, ALCUSTOMER1): a report whose status names the alarm.
        `fence` is "leave" or "enter" for the watch's own geofence."""
        status |= STATUS_SOS if sos else 0
        status |= STATUS_FALL if fall else 0
        status |= STATUS_REMOVED if removed else 0
        status |= {"leave": STATUS_FENCE_OUT_ALARM, "enter": STATUS_FENCE_IN_ALARM, None: 0}[fence]
        return self.report(at, fix=fix, kind=kind, status=status, battery=battery, steps=steps)

    # -- vitals: no device time in these frames -------------------------------------

    def heart(self, bpm: int, *, kind: str = "heart") -> bytes:
        return self.frame(f"{kind},{bpm}".encode())

    def blood_pressure(self, systolic: int, diastolic: int, bpm: int | None = None) -> bytes:
        """`bphrt,sys,dia,heart,,,,` as captured; `BLOOD,sys,dia` without a heart rate."""
        if bpm is None:
            return self.frame(f"BLOOD,{systolic},{diastolic}".encode())
        return self.frame(f"bphrt,{systolic},{diastolic},{bpm},,,,".encode())

    def oxygen(self, spo2: int, *, bpm: int = 0) -> bytes:
        """`oxygen,<first>,spo2`: Traccar reads the SpO2 from the second value."""
        return self.frame(f"oxygen,{bpm},{spo2}".encode())

    def temperature(self, celsius: float) -> bytes:
        return self.frame(f"btemp2,1,{celsius:.2f}".encode())

    # -- media ---------------------------------------------------------------------

    def voice(self, amr: bytes) -> bytes:
        """TK: a voice message, binary AMR escaped; LEN counts the bytes on the wire."""
        return self.frame(b"TK," + escape(amr))


def _when(at: datetime, clock: tzinfo) -> str:
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    return at.astimezone(clock).strftime("%d%m%y,%H%M%S")


def _position(fix: Fix | None) -> str:
    if fix is None:
        return "V,0.000000,N,0.0000000,E,0.00,0.0,0.0,0"
    return ",".join(
        (
            "A" if fix.current else "V",
            f"{abs(fix.lat):.6f}",
            "S" if fix.lat < 0 else "N",
            f"{abs(fix.lon):.7f}",
            "W" if fix.lon < 0 else "E",
            f"{fix.speed_kmh:.2f}",
            f"{fix.course_deg:.1f}",
            f"{fix.altitude_m:.1f}",
            str(fix.satellites),
        )
    )


def _wifi(sightings: Sequence[WifiSighting]) -> str:
    parts = [str(len(sightings))]
    for s in sightings:
        parts += [s.name, s.mac, str(s.rssi)]
    return ",".join(parts)
