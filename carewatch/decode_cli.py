"""`carewatch decode`: what carewatch makes of a payload, for vendors checking theirs.

Runs exactly the codec ingest runs, offline: no broker, no database, no registry.
Prints each canonical event as a JSON line; each rejection as `reason: detail` on stderr.
Exit status 0 if everything decoded, 2 if anything was rejected. A watch capture is cut
into frames as the watch gateway cuts the TCP stream (so several frames, line breaks
between them, or the newline `echo` adds are fine), and each frame is decoded; without
`--topic`, each frame's own device id names the device (the gateway's topic for it).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devices.codecs import CODECS, Codec, Message, get_codec
from devices.codecs import watch as watch_codec
from devices.codecs.watch_frames import FrameSplitter, FrameTooLarge, parse_frame
from devices.errors import DecodeError, RegistryError
from devices.events import event_to_json
from devices.registry import check_clock
from plumbing.settings import Settings

__all__ = ["add_parser"]

_NATIVE_DEFAULT_TOPIC = "carewatch/v1/devices/device-1/up"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "decode",
        help="decode one payload offline and print the canonical events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--format", required=True, choices=sorted(CODECS))
    parser.add_argument(
        "--topic",
        help="the MQTT topic it would arrive on (names the device); required except for "
        f"native, where it defaults to {_NATIVE_DEFAULT_TOPIC}, and watch, whose frames "
        "name their device",
    )
    parser.add_argument("--model", help="device model as the registry would give it, e.g. ws101")
    parser.add_argument(
        "--clock-tz",
        metavar="ZONE",
        help="the zone the device's clock is on, as registered (watch; default UTC)",
    )
    parser.add_argument("file", nargs="?", default="-", help="payload file; '-' = stdin")
    parser.set_defaults(run=_decode)


def _decode(args: argparse.Namespace, _settings: Settings) -> int:
    codec = get_codec(args.format)
    topic = args.topic or (_NATIVE_DEFAULT_TOPIC if codec.name == "native" else None)
    if topic is None and codec.name != "watch":
        return _fail(f"--topic is required for {codec.name}: its payload names the device")
    if topic is not None and codec.device_from_topic(topic) is None:
        return _fail(f"unroutable_topic: {topic!r} is not a {codec.name} topic")
    try:
        clock_tz = check_clock(args.clock_tz)
    except RegistryError as exc:
        return _fail(str(exc))
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    rejected = False
    for payload in _payloads(codec.name, data):
        try:
            at = topic or _frame_topic(payload)
        except DecodeError as err:  # not a frame: nothing names the device
            rejected |= _print_error(err)
            continue
        device_id = codec.device_from_topic(at)
        assert device_id is not None  # checked above, or the gateway's topic for a frame
        message = Message(payload, at, device_id, datetime.now(UTC), args.model, clock_tz)
        rejected |= _print(codec, message)
    return 2 if rejected else 0


def _frame_topic(payload: bytes) -> str:
    """The topic the watch gateway publishes a frame on: each frame names its watch."""
    return watch_codec.topic_for(parse_frame(payload).device_id)


def _payloads(codec: str, data: bytes) -> list[bytes]:
    """What ingest would receive: one MQTT payload, or for a watch each frame the gateway
    would cut from the bytes (bytes that are no frame at all are passed on whole, so the
    codec says why)."""
    if codec != "watch":
        return [data]
    splitter = FrameSplitter()
    try:
        frames = splitter.feed(data)
    except FrameTooLarge:
        return [data]
    return frames + ([data] if not frames or splitter.buffered else [])


def _print(codec: Codec, message: Message) -> bool:
    """Print the events and rejections of one payload; True if anything was rejected."""
    try:
        decoded = codec.decode(message)
    except DecodeError as err:
        return _print_error(err)
    for event in decoded.events:
        sys.stdout.write(event_to_json(event).decode() + "\n")
    for reject in decoded.rejects:
        where = f" (element {reject.index})" if reject.index is not None else ""
        print(f"{reject.reason}: {reject.detail}{where}", file=sys.stderr)
    return bool(decoded.rejects)


def _print_error(err: DecodeError) -> bool:
    _fail(f"{err.reason}: {err.detail}")
    return True


def _fail(line: str) -> int:
    print(line, file=sys.stderr)
    return 2
