"""`carewatch dlq list`: what ingest refused and what the workers set aside, read back
from `carewatch.dlq.v1`.

Operators and device vendors see why a device's messages are refused (the metrics only
count reasons). It reads the whole topic without joining a consumer group, so it changes
no one's offsets; the topic is small (rejects only).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from plumbing.kafka import DLQ_TOPIC, partitions_of
from plumbing.settings import Settings

__all__ = ["add_parser", "read_dlq"]

# After the end offsets are reached, how long to wait for more: tansu's end_offsets() can
# under-count slightly, so the last records may come in a fetch after it.
_QUIET_S = 0.5


def add_parser(sub: Any) -> None:
    dlq = sub.add_parser(
        "dlq", help="what ingest refused and the workers set aside (carewatch.dlq.v1)"
    )
    actions = dlq.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="refused messages, oldest first")
    listing.add_argument("--device", help="only this device")
    listing.add_argument("--reason", help="only this reason, e.g. invalid_json")
    listing.add_argument("--limit", type=int, default=50, help="the newest N (default 50)")
    listing.add_argument(
        "--json", action="store_true", help="the records as JSON lines, raw bytes included"
    )
    listing.set_defaults(run=_list)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        print("carewatch: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        records = asyncio.run(read_dlq(settings.require_kafka_bootstrap()))
    except KafkaError as exc:
        print(f"carewatch: cannot read {DLQ_TOPIC}: {exc!r}", file=sys.stderr)
        return 1
    chosen = [
        r
        for r in records
        if (args.device is None or r.get("device_id") == args.device)
        and (args.reason is None or r.get("reason") == args.reason)
    ][-args.limit :]
    if args.json:
        for record in chosen:
            sys.stdout.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE).decode())
        return 0
    if not chosen:
        print("nothing refused" + (" matching" if args.device or args.reason else ""))
        return 0
    print(f"{'RECEIVED':<20} {'DEVICE':<24} {'REASON':<22} DETAIL / PAYLOAD")
    for r in chosen:
        print(
            f"{str(r.get('received_at'))[:19]:<20} {r.get('device_id') or '-'!s:<24} "
            f"{r.get('reason')!s:<22} {r.get('detail')}"
        )
        print(f"{'':<68} {_preview(r)}")
    return 0


def _element(record: dict[str, Any]) -> str:
    index = record.get("index")
    return "" if index is None else f"element {index}: "


def _preview(record: dict[str, Any]) -> str:
    """The start of the refused bytes, printable (what the device actually sent)."""
    raw = base64.b64decode(record.get("payload_b64") or "")
    text = raw[:120].decode("utf-8", errors="backslashreplace")
    more = "…" if len(raw) > 120 or record.get("payload_truncated") else ""
    return f"{text!r}{more} ({record.get('payload_size')} bytes, topic {record.get('topic')})"


async def read_dlq(bootstrap: str) -> list[dict[str, Any]]:
    """Every record on the DLQ topic, in order per partition, then by receive time."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, DLQ_TOPIC)
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[dict[str, Any]] = []
        while True:
            batch = await consumer.getmany(timeout_ms=int(_QUIET_S * 1000))
            for part in batch.values():
                records += (orjson.loads(r.value) for r in part)
            if not batch and await _reached_end(consumer, end):
                break
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: str(r.get("received_at")))


async def _reached_end(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    return all([await consumer.position(tp) >= offset for tp, offset in end.items()])
