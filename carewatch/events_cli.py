"""`carewatch events ...`: the stored events' day partitions, for operators.

`partitions` lists them (one UTC day of device time each) with PostgreSQL's row estimate
and size; `prune` runs one round of what the telemetry worker does every few minutes: add
today's partition and the next days', drop the days past CAREWATCH_RETENTION_DAYS
(`--dry-run`: only say which). docs/events-storage.md explains both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from alerts import partitions
from plumbing.db import DatabaseError, run_on_connection
from plumbing.settings import Settings

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    parser = sub.add_parser("events", help="stored events: day partitions and retention")
    actions = parser.add_subparsers(required=True, metavar="ACTION")

    listing = actions.add_parser("partitions", help="the day partitions, with row estimates")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_run(_partitions))

    prune = actions.add_parser(
        "prune", help="add the coming days' partitions, drop the days past retention"
    )
    prune.add_argument("--dry-run", action="store_true", help="only list what would be dropped")
    prune.set_defaults(run=_run(_prune))


Action = Callable[[asyncpg.Connection, argparse.Namespace, Settings], Awaitable[int]]


def _run(action: Action) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        url = settings.require_database_url()
        try:
            return run_on_connection(url, lambda conn: action(conn, args, settings))
        except (DatabaseError, asyncpg.PostgresError) as exc:
            print(f"carewatch: {exc}", file=sys.stderr)
            return 1

    return run


async def _partitions(conn: asyncpg.Connection, args: argparse.Namespace, _s: Settings) -> int:
    found = await partitions.list_partitions(conn)
    if args.json:
        for p in found:
            doc = {"name": p.name, "day": p.day, "rows_estimate": p.rows, "bytes": p.bytes,
                   "attached": p.attached}  # fmt: skip
            sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE).decode())
        return 0
    print(f"{'PARTITION':<20} {'DAY (UTC)':<11} {'ROWS (EST.)':>12} {'SIZE':>10}")
    for p in found:
        rows = "?" if p.rows < 0 else f"{p.rows:,}"  # never analyzed yet
        note = "" if p.attached else "  (not attached)"
        print(f"{p.name:<20} {p.day or '-'!s:<11} {rows:>12} {_size(p.bytes):>10}{note}")
    total = sum(max(p.rows, 0) for p in found)
    print(f"{len(found)} partitions, about {total:,} rows")
    return 0


async def _prune(conn: asyncpg.Connection, args: argparse.Namespace, settings: Settings) -> int:
    days = settings.retention_days
    done = await partitions.maintain(
        conn, now=datetime.now(UTC), retention_days=days, dry_run=args.dry_run
    )
    for day in done.created:
        print(f"added   {partitions.partition_name(day)}")
    verb = "would drop" if args.dry_run else "dropped"
    for p in done.dropped:
        print(f"{verb} {p.name} (about {max(p.rows, 0):,} rows, {_size(p.bytes)})")
    kept = f"the last {days} days" if days > 0 else "every day (CAREWATCH_RETENTION_DAYS=0)"
    print(f"retention keeps {kept}; {len(done.dropped)} partitions {verb}")
    return 0


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
