"""A 4G watch in the fleet: the watch behaviour's messages as the watch's text frames, over
its own TCP connection to the watch gateway (`carewatch watch-gateway`).

`WatchFrames` turns a behaviour message into frame bytes (simulators/watch.py encodes);
`WatchLink` is the connection, shaped like the fleet's MQTT client (`start`, `publish`,
`stop`), so the fleet drives both alike. A frame the watch expects an answer to (LK, AL)
counts as delivered when the gateway's reply arrives, which the gateway sends only after
the broker acknowledged the frame: as a real watch knows its alarm got through. Frames
without a reply (position reports, vitals) count once written.

A watch dates its reports in whole seconds, so only one report a second is distinct: keep
the fleet's speed-up per 4G watch at 30 or less (a location frame every second).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from devices.codecs.watch_frames import FrameSplitter, parse_frame, reply_for
from simulators.native import Message
from simulators.watch import Fix, WatchEncoder

__all__ = ["WatchFrames", "WatchLink"]


class WatchFrames:
    """Behaviour messages -> watch frames: a location message becomes a UD report (location,
    battery, steps), vitals a heart-rate frame, a heartbeat an LK, an sos an AL frame."""

    def __init__(self, device_id: str) -> None:
        self._encoder = WatchEncoder(device_id)
        self.topic = self._encoder.topic  # where the gateway publishes them
        self.alarm_topic: str | None = None  # over TCP: the gateway picks the topic

    def encode(self, message: Message) -> bytes:
        kinds = {item["kind"]: item for item in message}
        at = datetime.fromtimestamp(float(message[0]["ts"]), UTC)
        if "sos" in kinds:
            return self._encoder.alarm(at, sos=True)
        if "location" in kinds:
            return self._report(at, kinds)
        if "vitals" in kinds:
            return self._encoder.heart(round(kinds["vitals"]["heart_rate_bpm"]))
        return self._encoder.link()

    def repeatable(self, message: Message) -> bool:
        """Only frames with the watch's own time decode to the same events when resent;
        LK and vitals are dated on arrival, so a resend would be a new event."""
        return any(item["kind"] in ("location", "sos") for item in message)

    def _report(self, at: datetime, kinds: dict[str, dict[str, Any]]) -> bytes:
        fix = kinds["location"]
        return self._encoder.report(
            at,
            fix=Fix(fix["lat"], fix["lon"]),
            battery=round(kinds.get("battery", {}).get("battery_pct", 100)),
            steps=int(kinds.get("activity", {}).get("steps", 0)),
        )


class WatchLink:
    """One watch's TCP connection to the gateway."""

    def __init__(self, *, host: str, port: int, device_id: str) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._splitter = FrameSplitter()
        self._replies: list[bytes] = []

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def start(self) -> None:
        """Connect; the first frame names the watch to the gateway."""
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass  # closed by the gateway already
            self._writer = None

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Send the frame; if the watch expects a reply to it, wait for that reply."""
        if self._writer is None or self._reader is None:
            raise OSError("watch not connected")
        self._writer.write(payload)
        await self._writer.drain()
        expected = reply_for(parse_frame(payload))
        if expected is not None:
            await self._reply(parse_frame(expected).content_type)

    async def _reply(self, content_type: str) -> None:
        assert self._reader is not None
        while True:
            for frame in self._replies:
                if parse_frame(frame).content_type.upper() == content_type.upper():
                    self._replies.remove(frame)
                    return
            data = await self._reader.read(4096)
            if not data:
                raise OSError("the gateway closed the connection")
            self._replies += self._splitter.feed(data)
