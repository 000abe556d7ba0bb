"""The watch TCP gateway: 3G/4G watches connect here; each frame goes to MQTT, then the reply.

Per connection, in order, for every frame the `FrameSplitter` cuts from the stream:
  1. parse it; the first frame names the device, a frame naming another device closes
     the connection (one socket is one watch; anything else is a bug or an impostor);
  2. publish the raw frame, exactly as received, to `carewatch/v1/watch/{device}/up` (alarm
     frames to `.../alarm`, which ingest reads on a session of its own) with
     QoS 1 and wait for the broker's PUBACK;
  3. only then send the reply the watch waits for (`reply_for`: LK, AL...).
A watch repeats what is not acknowledged (an AL until it gets its AL), so a frame the
watch saw acknowledged is in the broker, and one it did not is sent again; the repeat has
the same event ids downstream (content hash), so nothing is lost and nothing doubled.

Connections are closed, with a logged and counted reason, when idle for `idle_timeout`,
when a frame outgrows `max_frame_bytes` (or the stream is garbage that never ends), when
the device changes, when the broker does not acknowledge within `publish_timeout`, and on
stop. `stop()` first closes the listener, then lets publishes in flight finish (and their
replies go out), then closes the connections.

A command for a watch (`send`) goes down its open connection, framed as the watch frames
its own messages (maker code, index field).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from devices.codecs.watch import alarm_topic_for, topic_for
from devices.codecs.watch_frames import (
    MAX_FRAME_BYTES,
    Frame,
    FrameSplitter,
    FrameTooLarge,
    build_frame,
    parse_frame,
    reply_for,
)
from devices.errors import DecodeError
from ingest import gateway_metrics as metrics
from plumbing.component import Component
from plumbing.mqtt import MqttClient, MqttError

__all__ = ["DEFAULT_PORT", "WatchGateway"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 5093
_READ_SIZE = 64 * 1024
_COMMAND_INDEX = "0001"  # what Traccar's encoder puts in the index field of a command
_KNOWN_TYPES = frozenset(
    "LK INIT UD UD2 UD3 UD_LTE UD_WCDMA WT AL AL_LTE ALCUSTOMER1 PULSE HEART BPHRT BLOOD "
    "TEMP BTEMP2 OXYGEN TK TKQ TKQ2 JXTK IMG".split()
)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    device_id: str | None = None
    maker: str = "CS"
    indexed: bool = False
    closing: str | None = None  # why someone else closed it (replaced, shutdown)


class WatchGateway(Component):
    """The TCP server. Shares one started `MqttClient` (the caller owns its lifecycle:
    enter it before the gateway, so the gateway stops, and drains, first)."""

    def __init__(
        self,
        *,
        mqtt: MqttClient,
        host: str,
        port: int = DEFAULT_PORT,
        idle_timeout: float = 600.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        publish_timeout: float = 30.0,
        drain_timeout: float = 15.0,
    ) -> None:
        super().__init__(name="watch-gateway")
        self._mqtt = mqtt
        self._host = host
        self._port = port
        self._idle_timeout = idle_timeout
        self._max_frame_bytes = max_frame_bytes
        self._publish_timeout = publish_timeout
        self._drain_timeout = drain_timeout
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._by_device: dict[str, _Connection] = {}
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle ---------------------------------------------------------------

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("watch gateway listening", extra={"host": self._host, "port": self.port})

    async def _close(self) -> None:
        """Stop accepting, finish publishes in flight, close connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        try:
            await asyncio.wait_for(self._idle.wait(), self._drain_timeout)
        except TimeoutError:
            log.warning("watch gateway drain timed out", extra={"inflight": self._inflight})
        for conn in list(self._by_device.values()):
            self._close_connection(conn, "shutdown")
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()
        log.info("watch gateway stopped")

    @property
    def port(self) -> int:
        """The port listened on (the kernel's pick when constructed with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def health(self) -> dict[str, Any]:
        listening = self._server is not None and self._server.is_serving()
        return {
            **super().health(),
            "ok": listening and self._mqtt.connected,
            "listening": listening,
            "mqtt_connected": self._mqtt.connected,
            "connections": len(self._handlers),
            "devices": len(self._by_device),
            "inflight": self._inflight,
        }

    # -- commands down -------------------------------------------------------------

    @property
    def connections(self) -> dict[str, asyncio.StreamWriter]:
        """device id -> the writer of its open connection (a snapshot)."""
        return {device: conn.writer for device, conn in self._by_device.items()}

    async def send(self, device_id: str, content: bytes) -> bool:
        """Frame `content` (wire form, e.g. b"CR" or b"UPLOAD,60") as the watch frames its
        own messages and send it; False if the watch is not connected."""
        conn = self._by_device.get(device_id)
        if conn is None or conn.writer.is_closing():
            return False
        index = _COMMAND_INDEX if conn.indexed else None
        conn.writer.write(build_frame(conn.maker, device_id, content, index=index))
        try:
            await conn.writer.drain()
        except ConnectionError:
            return False
        return True

    # -- one connection ------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        conn = _Connection(reader, writer, peer=str(writer.get_extra_info("peername")))
        metrics.CONNECTIONS.inc()
        metrics.OPEN_CONNECTIONS.inc()
        reason = "error"
        try:
            reason = await self._converse(conn)
        except asyncio.CancelledError:
            reason = "shutdown"
            raise
        except Exception:
            log.exception("watch connection failed", extra={"peer": conn.peer})
        finally:
            self._finish(conn, conn.closing or reason)

    async def _converse(self, conn: _Connection) -> str:
        """Read, split and handle frames until the connection should end; returns why."""
        splitter = FrameSplitter(max_frame_bytes=self._max_frame_bytes)
        while True:
            try:
                data = await asyncio.wait_for(conn.reader.read(_READ_SIZE), self._idle_timeout)
            except TimeoutError:
                return "idle_timeout"
            except ConnectionError:
                return "reset"
            if not data:
                return "eof"
            arrived = time.perf_counter()
            frames, too_large = _split(splitter, data)
            for raw in frames:
                reason = await self._on_frame(conn, raw, arrived)
                if reason is not None:
                    return reason
            if too_large:
                return "frame_too_large"

    async def _on_frame(self, conn: _Connection, raw: bytes, arrived: float) -> str | None:
        """Publish one frame, then reply. A reason to close the connection, or None.

        A frame that does not parse is published too, once the connection's device is
        known: ingest rejects it to the dead-letter topic with its reason and its bytes,
        where an operator can see it, instead of it vanishing into a log line."""
        frame: Frame | None
        try:
            frame = parse_frame(raw)
        except DecodeError as err:
            metrics.INVALID_FRAMES.inc()
            log.info("invalid watch frame", extra={"peer": conn.peer, "detail": err.detail})
            if conn.device_id is None:
                return None  # nobody to file it under
            frame = None
        else:
            closing = self._admit(conn, frame)
            if closing is not None:
                return closing
        if self.stopping:
            return "shutdown"  # not published, not acknowledged: the watch sends it again
        self._begin()
        try:
            return await self._publish_and_reply(conn, frame, raw, arrived)
        finally:
            self._end()

    def _admit(self, conn: _Connection, frame: Frame) -> str | None:
        """Count the frame and tie the connection to its device; a reason to close, or None."""
        kind = frame.content_type.upper()
        metrics.FRAMES.labels(kind if kind in _KNOWN_TYPES else "other").inc()
        if conn.device_id is None:
            self._identify(conn, frame)
        elif frame.device_id != conn.device_id:
            log.warning(
                "watch frame names another device",
                extra={"peer": conn.peer, "device_id": conn.device_id, "other": frame.device_id},
            )
            return "device_changed"
        return None

    async def _publish_and_reply(
        self, conn: _Connection, frame: Frame | None, raw: bytes, arrived: float
    ) -> str | None:
        assert conn.device_id is not None
        try:
            publish = self._mqtt.publish(_topic(conn.device_id, frame), raw, qos=1)
            await asyncio.wait_for(publish, self._publish_timeout)
        except (MqttError, TimeoutError) as exc:
            log.warning(
                "watch frame not published; no reply, the watch will resend",
                extra={"device_id": conn.device_id, "error": repr(exc)},
            )
            return "publish_failed"
        metrics.PUBLISHED.inc()
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - arrived)
        reply = reply_for(frame) if frame is not None else None
        if reply is None:
            return None
        if conn.writer.is_closing():  # replaced meanwhile: the frame is safe, the socket gone
            return conn.closing or "reset"
        conn.writer.write(reply)
        try:
            await conn.writer.drain()
        except ConnectionError:
            return "reset"
        metrics.REPLIES.inc()
        return None

    def _identify(self, conn: _Connection, frame: Frame) -> None:
        """The first frame names the device; an older connection of it is stale: close it."""
        conn.device_id, conn.maker, conn.indexed = frame.device_id, frame.maker, bool(frame.index)
        old = self._by_device.get(frame.device_id)
        if old is not None:
            self._close_connection(old, "replaced")
        self._by_device[frame.device_id] = conn
        log.info("watch connected", extra={"peer": conn.peer, "device_id": conn.device_id})

    # -- bookkeeping -----------------------------------------------------------------

    def _begin(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def _end(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    @staticmethod
    def _close_connection(conn: _Connection, reason: str) -> None:
        conn.closing = conn.closing or reason
        conn.writer.close()  # its reader sees EOF; its handler ends and counts `closing`

    def _finish(self, conn: _Connection, reason: str) -> None:
        if conn.device_id is not None and self._by_device.get(conn.device_id) is conn:
            del self._by_device[conn.device_id]
        with contextlib.suppress(Exception):
            conn.writer.close()
        metrics.OPEN_CONNECTIONS.dec()
        metrics.CLOSED.labels(reason).inc()
        level = logging.INFO if reason in ("eof", "idle_timeout", "shutdown") else logging.WARNING
        log.log(
            level,
            "watch connection closed",
            extra={"peer": conn.peer, "device_id": conn.device_id, "reason": reason},
        )


def _topic(device_id: str, frame: Frame | None) -> str:
    """Alarm frames (AL, AL_LTE, ALCUSTOMER1) go to the alarm topic, which ingest reads on
    a session of its own; everything else, frames that do not parse included, to `up`."""
    if frame is not None and frame.content_type.upper().startswith("AL"):
        return alarm_topic_for(device_id)
    return topic_for(device_id)


def _split(splitter: FrameSplitter, data: bytes) -> tuple[list[bytes], bool]:
    """The complete frames in `data`, and whether a frame then outgrew the limit (the
    frames before it are still handled: an SOS followed by garbage is still an SOS)."""
    skipped = splitter.skipped_bytes
    try:
        return splitter.feed(data), False
    except FrameTooLarge as exc:
        return exc.frames, True
    finally:
        metrics.BYTES_SKIPPED.inc(splitter.skipped_bytes - skipped)
