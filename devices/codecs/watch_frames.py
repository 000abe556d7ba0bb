"""Framing of the 3G/4G elderly-watch text protocol ("SG*"/"3G*"), apart from decoding it.

On the wire a frame is `[MAKER*DEVICE*LEN*CONTENT]`, or `[MAKER*DEVICE*INDEX*LEN*CONTENT]`
for firmware that numbers its messages (the "ZJ" watches in Traccar's captures):

    MAKER   two upper-case letters/digits: SG, 3G, CS, ZJ...
    DEVICE  the watch id (10 digits or the IMEI)
    INDEX   4 hex digits, a message counter; echoed in the replies
    LEN     4 hex digits, the length of CONTENT
    CONTENT `TYPE[,field...]`; binary payloads (voice AMR, JPEG) escape 0x7D [ ] , * as
            0x7D 0x01..0x05, but text does not: Wi-Fi names carry raw `[`, `]`, `,`

Where a frame ends: LEN bytes after the header, if a `]` is there. LEN counts the bytes on
the wire (Traccar's encoder and a real JXTK voice capture agree); the unescaped count is
accepted too (Traccar's hand-made TK test uses it). Real captures also carry a LEN that is
a few bytes off (Traccar's WatchProtocolDecoderTest has a dozen), so when LEN misses, the
`]` that closes the opening `[` ends the frame (Traccar's own rule: bracket depth):
  - after the LEN position: at once;
  - before it: when only the next frame, whitespace or nothing follows. A watch writes one
    frame and waits for the reply: waiting for bytes that never come would hold its SOS.
A `[` that starts a well-formed header inside a frame means that frame was cut short: its
bytes are skipped (a closing `]` seen before it still ends it), and splitting resumes there.

Nothing here does I/O: `FrameSplitter` is fed bytes and returns complete frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from devices.errors import DecodeError, Reason

__all__ = [
    "DEVICE_ID",
    "MAX_FRAME_BYTES",
    "PROTOCOL",
    "Frame",
    "FrameSplitter",
    "FrameTooLarge",
    "build_frame",
    "escape",
    "parse_frame",
    "reply_for",
    "unescape",
]

PROTOCOL = "watch"
# The same default as ingest's max_payload_bytes: a frame the gateway takes, ingest takes.
MAX_FRAME_BYTES = 64 * 1024
# A watch id: digits in practice; a safe MQTT topic segment in any case.
DEVICE_ID = r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}"

_HEADER = re.compile(
    rb"\[([0-9A-Z]{2})\*(" + DEVICE_ID.encode() + rb")\*(?:([0-9A-Fa-f]{4})\*)?([0-9A-Fa-f]{4})\*"
)
_MAKER_CHARS = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ID_CHARS = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._-")
_HEX_CHARS = frozenset(b"0123456789ABCDEFabcdef")
_SPECIAL = re.compile(rb"[\[\]}]")  # the bytes that matter while looking for a frame's end
_TYPE = re.compile(rb"[A-Za-z0-9_]{1,32}")
_TRAILER = frozenset(b" \t\r\n\x00")  # what may follow a frame before the next one

_ESC = 0x7D
_ESCAPED = {0x7D: 0x01, 0x5B: 0x02, 0x5D: 0x03, 0x2C: 0x04, 0x2A: 0x05}
_UNESCAPED = {v: k for k, v in _ESCAPED.items()}
_OPEN, _CLOSE = 0x5B, 0x5D


class FrameTooLarge(DecodeError):
    """A frame grew past the size limit before it ended: the stream cannot be trusted.

    `frames` holds the complete frames the same `feed()` found before it: an SOS followed
    by garbage in one read is still an SOS."""

    def __init__(self, limit: int) -> None:
        super().__init__(PROTOCOL, Reason.INVALID_FRAME, f"frame longer than {limit} bytes")
        self.limit = limit
        self.frames: list[bytes] = []


@dataclass(frozen=True)
class Frame:
    """One frame, unescaped. `content` is what follows `TYPE,` (empty if nothing does)."""

    maker: str
    device_id: str
    index: str | None  # the 4-hex-digit message counter, for watches that send one
    content_type: str  # as sent (some firmware sends `heart`, `bphrt`, `ud`)
    content: bytes


def escape(data: bytes) -> bytes:
    """Binary payload -> wire form (0x7D [ ] , * become 0x7D 0x01..0x05)."""
    out = bytearray()
    for byte in data:
        if byte in _ESCAPED:
            out += bytes((_ESC, _ESCAPED[byte]))
        else:
            out.append(byte)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """Wire form -> payload. A 0x7D not followed by 0x01..0x05 is kept as it is."""
    if _ESC not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == _ESC and i + 1 < len(data) and data[i + 1] in _UNESCAPED:
            out.append(_UNESCAPED[data[i + 1]])
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def build_frame(maker: str, device_id: str, content: bytes, *, index: str | None = None) -> bytes:
    """A frame around `content`, which is already in wire form (see `escape`)."""
    head = f"[{maker}*{device_id}*" + (f"{index}*" if index is not None else "")
    return head.encode() + f"{len(content):04X}*".encode() + content + b"]"


def parse_frame(raw: bytes) -> Frame:
    """One complete frame (as `FrameSplitter` returns it) -> `Frame`; DecodeError if not one.

    LEN is not checked again: the splitter already decided where the frame ends, and real
    watches get it wrong by a few bytes.
    """
    match = _HEADER.match(raw)
    if match is None or not raw.endswith(b"]"):
        raise DecodeError(PROTOCOL, Reason.INVALID_FRAME, f"not a watch frame: {raw[:40]!r}")
    content = unescape(raw[match.end() : -1])
    type_end = content.find(b",")
    content_type = content if type_end < 0 else content[:type_end]
    if _TYPE.fullmatch(content_type) is None:
        raise DecodeError(PROTOCOL, Reason.INVALID_FRAME, f"bad content type {content_type[:40]!r}")
    index = match.group(3)
    return Frame(
        maker=match.group(1).decode(),
        device_id=match.group(2).decode(),
        index=index.decode() if index is not None else None,
        content_type=content_type.decode(),
        content=b"" if type_end < 0 else content[type_end + 1 :],
    )


def reply_for(frame: Frame) -> bytes | None:
    """The reply a watch waits for, or None. Echoes the maker and the index field.

    As Traccar's WatchProtocolDecoder answers: LK -> LK (without it the watch reconnects
    and, per the SeTracker protocol document, reboots after five misses), INIT -> INIT,1,
    AL* -> AL (the watch repeats an alarm until acknowledged), TKQ/TKQ2 -> the same,
    JXTK (voice in parts) -> JXTKR,1.
    """
    kind = frame.content_type.upper()
    if kind == "LK":
        content = "LK"
    elif kind == "INIT":
        content = "INIT,1"
    elif kind.startswith("AL"):
        content = "AL"
    elif kind in ("TKQ", "TKQ2"):
        content = kind
    elif kind == "JXTK":
        content = "JXTKR,1"
    else:
        return None
    return build_frame(frame.maker, frame.device_id, content.encode(), index=frame.index)


# -- splitting a stream -----------------------------------------------------------


class _NeedMore:
    """Sentinel: the bytes so far could still become what we look for."""


_NEED_MORE: Final = _NeedMore()


def _could_be_header(tail: bytes) -> bool:
    """True if more bytes could turn `tail` (starting with `[`) into a frame header."""
    fields = tail[1:].split(b"*")
    # Each field but the last is complete; the last is a prefix. Maker, device, hex, hex.
    kinds = (_MAKER_CHARS, _ID_CHARS, _HEX_CHARS, _HEX_CHARS)
    sizes = (2, 64, 4, 4)
    if len(fields) > len(kinds):
        return False
    for n, field in enumerate(fields):
        complete = n < len(fields) - 1
        if len(field) > sizes[n] or not set(field) <= kinds[n]:
            return False
        if complete and (len(field) < sizes[n] if n != 1 else not field):
            return False
    return True


def _header(buf: bytearray, start: int) -> re.Match[bytes] | _NeedMore | None:
    """The frame header at `start`; `_NEED_MORE` if it may still arrive; None if not one."""
    match = _HEADER.match(buf, start)
    if match is None:
        return _NEED_MORE if _could_be_header(bytes(buf[start : start + 80])) else None
    if match.group(3) is None:
        # `[SG*id*0034*00` may be the index of `[SG*id*0034*0009*LK...]`: wait and see.
        tail = bytes(buf[match.end() : match.end() + 5])
        if len(tail) < 5 and set(tail) <= _HEX_CHARS:
            return _NEED_MORE
    return match


@dataclass
class _Scan:
    """Progress through the frame at the head of the buffer, kept between reads."""

    content_start: int
    length: int  # LEN
    pos: int  # next byte to look at
    decoded: int = 0  # content bytes so far, escapes counted once
    depth: int = 0  # `[` seen in the content minus `]`
    loose_end: int | None = None  # end of the frame if LEN turns out wrong

    def advance_to(self, pos: int) -> None:
        self.decoded += pos - self.pos
        self.pos = pos


class FrameSplitter:
    """Incremental: `feed()` bytes as they arrive, get the complete frames back (raw bytes,
    still escaped, exactly as the watch sent them). Bytes between frames are skipped and
    counted in `skipped_bytes`. A frame longer than `max_frame_bytes` raises FrameTooLarge
    (the buffered bytes are dropped: the caller should close the connection)."""

    def __init__(self, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.skipped_bytes = 0
        self._buf = bytearray()
        self._scan: _Scan | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        try:
            while (frame := self._next()) is not None:
                frames.append(frame)
        except FrameTooLarge as exc:
            exc.frames = frames
            raise
        return frames

    def _next(self) -> bytes | None:
        while True:
            if self._scan is None and not self._start_frame():
                return None
            assert self._scan is not None
            found = self._find_end(self._scan)
            if isinstance(found, _NeedMore):
                if self._scan.pos >= self.max_frame_bytes:
                    self._overflow()
                return None
            end, resume = found
            frame = bytes(self._buf[:end]) if end else None
            self._skip(resume, counted=resume - end)
            if frame is not None:
                if len(frame) > self.max_frame_bytes:
                    self._overflow()
                return frame

    def _start_frame(self) -> bool:
        """Skip to the next frame header; False if the buffer holds none (yet)."""
        while True:
            start = self._buf.find(b"[")
            if start < 0:
                self._skip(len(self._buf))
                return False
            self._skip(start)
            header = _header(self._buf, 0)
            if header is None:
                self._skip(1)
                continue
            if isinstance(header, _NeedMore):
                return False
            length = int(header.group(4), 16)
            self._scan = _Scan(content_start=header.end(), length=length, pos=header.end())
            return True

    def _find_end(self, scan: _Scan) -> tuple[int, int] | _NeedMore:
        """(end of the frame or 0 if it is garbage, where the next one starts) or NEED_MORE."""
        buf = self._buf
        while scan.pos < self.max_frame_bytes:
            special = _SPECIAL.search(buf, scan.pos)
            if special is None:
                scan.advance_to(len(buf))
                return _NEED_MORE
            scan.advance_to(special.start())
            step = self._step(scan, buf[scan.pos])
            if step is not None:
                return step
        return _NEED_MORE

    def _step(self, scan: _Scan, byte: int) -> tuple[int, int] | _NeedMore | None:
        """Look at the special byte at scan.pos: a result, or None to go on scanning."""
        pos, buf = scan.pos, self._buf
        if byte == _CLOSE:
            end = self._closing(scan, pos)
            if end is not None:
                return end, end
        elif byte == _OPEN:
            header = _header(buf, pos)
            if isinstance(header, _NeedMore):
                return _NEED_MORE
            if header is not None:  # a new frame starts inside this one: it was cut short
                return scan.loose_end or 0, pos
            scan.depth += 1
        else:  # 0x7D: an escape pair, unless the next byte says otherwise
            if pos + 1 >= len(buf):
                return _NEED_MORE
            if buf[pos + 1] in _UNESCAPED:
                scan.pos += 1
        scan.pos += 1
        scan.decoded += 1
        return None

    def _closing(self, scan: _Scan, pos: int) -> int | None:
        """The end of the frame if the `]` at `pos` is it, else None (and note a candidate)."""
        if pos - scan.content_start == scan.length or scan.decoded == scan.length:
            return pos + 1  # where LEN says: the normal case
        if scan.depth > 0:
            scan.depth -= 1
            return None
        if scan.decoded > scan.length or self._only_trailer_after(pos + 1):
            return pos + 1  # LEN was wrong; the bracket that closes the frame decides
        if scan.loose_end is None:
            scan.loose_end = pos + 1
        return None

    def _only_trailer_after(self, pos: int) -> bool:
        """Nothing, whitespace, or the start of the next frame after `pos`."""
        for byte in self._buf[pos:]:
            if byte == _OPEN:
                return True
            if byte not in _TRAILER:
                return False
        return True

    def _skip(self, count: int, *, counted: int | None = None) -> None:
        if count:
            del self._buf[:count]
            self.skipped_bytes += count if counted is None else counted
        self._scan = None

    def _overflow(self) -> None:
        self.skipped_bytes += len(self._buf)
        self._buf.clear()
        self._scan = None
        raise FrameTooLarge(self.max_frame_bytes)
