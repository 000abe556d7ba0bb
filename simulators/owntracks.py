"""OwnTracks, phone side: the JSON the OwnTracks app publishes, the inverse of
`devices.codecs.owntracks`.

The builders return the object the app serializes, shaped as the app shapes it: the
Android app (the default) rounds accuracy, altitude and speed to integers, always sends them
(zeros included), adds `created_at`, `conn`, `bs`, `m` and a random `_id`, and has no course;
the iOS app keeps six decimals of the coordinates, leaves out what its location services
report as unknown (negative), and reports course (`cog`) and steps. `encode` gives the bytes;
`Phone` adds the topics and the MQTT will.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from devices.codecs.owntracks import device_from_topic

__all__ = ["Phone", "Platform", "encode", "location", "lwt", "steps", "transition"]

Platform = Literal["android", "ios"]
Doc = dict[str, Any]
# The app's monitoring modes (`m`): -1 quiet, 0 manual, 1 significant changes, 2 move.
SIGNIFICANT = 1


def encode(doc: Doc) -> bytes:
    """The payload bytes: keys sorted, as the Android app's serializer writes them."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def location(
    *,
    lat: float,
    lon: float,
    tst: int,
    tid: str,
    acc: float | None = None,
    alt: float | None = None,
    vel: float | None = None,
    cog: float | None = None,
    vac: float | None = None,
    batt: int | None = None,
    trigger: str | None = None,
    inregions: list[str] | None = None,
    platform: Platform = "android",
) -> Doc:
    """A `_type: location`. `trigger` is `t`: p ping, u the user's "publish now", c region,
    r answer to a reportLocation command, t timer (iOS move mode); None: automatic."""
    if platform == "ios":
        doc = _ios_position(lat, lon, acc=acc, alt=alt, vel=vel, cog=cog, vac=vac)
    else:
        doc = _android_position(lat, lon, acc=acc, alt=alt, vel=vel, vac=vac)
        doc["created_at"] = tst
    doc.update({"_type": "location", "tst": tst, "tid": tid, "conn": "w", "m": SIGNIFICANT})
    if batt is not None:
        doc.update({"batt": batt, "bs": 1})  # bs 1: unplugged
    if trigger is not None:
        doc["t"] = trigger
    if inregions:
        doc["inregions"] = list(inregions)
    return doc


def _android_position(lat: float, lon: float, **extras: float | None) -> Doc:
    # Android: acc and alt rounded, speed (m/s * 3.6) and vac truncated, zeros sent.
    doc: Doc = {"lat": lat, "lon": lon}
    for key in ("acc", "alt"):
        doc[key] = round(extras[key] or 0)
    for key in ("vel", "vac"):  # never negative: Android reports an unknown as 0
        doc[key] = int(max(extras[key] or 0, 0))
    return doc


def _ios_position(lat: float, lon: float, *, alt: float | None, **extras: float | None) -> Doc:
    # iOS: six decimals, whole numbers elsewhere, unknowns (None or negative) left out;
    # altitude may well be negative (below sea level).
    doc: Doc = {"lat": round(lat, 6), "lon": round(lon, 6)}
    if alt is not None:
        doc["alt"] = round(alt)
    for key, value in extras.items():
        if value is not None and value >= 0:
            doc[key] = round(value)
    return doc


def transition(
    *,
    event: Literal["enter", "leave"],
    desc: str,
    tst: int,
    wtst: int,
    lat: float,
    lon: float,
    acc: float,
    tid: str,
    rid: str | None = None,
    platform: Platform = "android",
) -> Doc:
    """A `_type: transition`: the phone entered or left the region `desc` (defined at `wtst`).

    Android reports region events from its location updates (`t: l`) with a fractional
    accuracy; iOS from circular-region monitoring (`t: c`)."""
    doc: Doc = {
        "_type": "transition",
        "event": event,
        "desc": desc,
        "tst": tst,
        "wtst": wtst,
        "lat": lat,
        "lon": lon,
        "acc": acc if platform == "android" else round(acc),
        "tid": tid,
        "t": "l" if platform == "android" else "c",
    }
    if rid is not None:
        doc["rid"] = rid
    return doc


def steps(*, count: int, tst: int, start: int, end: int) -> Doc:
    """A `_type: steps` (iOS only), the answer to a reportSteps command: `count` steps
    between `start` and `end`; -1 if the phone cannot count steps."""
    return {"_type": "steps", "steps": count, "from": start, "to": end, "tst": tst}


def lwt(*, tst: int) -> Doc:
    """The MQTT will the app registers when it connects at `tst`; the broker publishes it
    on the base topic if the connection is lost."""
    return {"_type": "lwt", "tst": tst}


@dataclass
class Phone:
    """One phone running OwnTracks: its topics, and payloads ready to publish.

    The tracker id defaults, as in the app, to the last two characters of the device name.
    Android messages get a random `_id` (4 bytes, hex) from `rng`: seed it for repeatable
    bytes.
    """

    user: str
    device: str
    platform: Platform = "android"
    tid: str = ""
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.tid = self.tid or self.device[-2:]
        if device_from_topic(self.topic) != self.device_id:
            raise ValueError(f"{self.user!r}/{self.device!r} cannot be an OwnTracks topic")

    @property
    def device_id(self) -> str:
        return f"{self.user}:{self.device}"

    @property
    def topic(self) -> str:
        return f"owntracks/{self.user}/{self.device}"

    def location(self, **kwargs: Any) -> tuple[str, bytes]:
        doc = location(tid=self.tid, platform=self.platform, **kwargs)
        return self.topic, self._encode(doc)

    def transition(self, **kwargs: Any) -> tuple[str, bytes]:
        doc = transition(tid=self.tid, platform=self.platform, **kwargs)
        return f"{self.topic}/event", self._encode(doc)

    def steps(self, **kwargs: Any) -> tuple[str, bytes]:
        if self.platform != "ios":
            raise ValueError("only the iOS app reports steps")
        return f"{self.topic}/step", self._encode(steps(**kwargs))

    def will(self, *, tst: int) -> tuple[str, bytes]:
        return self.topic, self._encode(lwt(tst=tst))

    def _encode(self, doc: Doc) -> bytes:
        if self.platform == "android" and doc["_type"] != "lwt":
            doc = {**doc, "_id": f"{self.rng.getrandbits(32):08x}"}
        return encode(doc)
