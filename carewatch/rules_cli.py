"""`carewatch rules check` and `carewatch residents configure`: rule configuration;
`carewatch rules move-state`: the rules workers' stored state after partitions are added.

Defaults ship in the package (alerts/rules/defaults.toml; deploy/rules.toml is a copy to
read); each resident may override any part of them, stored in PostgreSQL (`resident_rules`).
Both are validated the same way, with messages that name the field, before anything is
stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka.errors import KafkaError

from alerts.rule_state import move_states
from alerts.rules.config import DEFAULTS_PATH, check
from carewatch import cli_audit
from devices import residents
from devices.errors import RegistryError
from plumbing.db import DatabaseError, connect_pool, run_on_connection
from plumbing.kafka import EVENTS_TOPIC, partition_count
from plumbing.settings import ConfigError, Settings

__all__ = ["add_configure_parser", "add_rules_actions"]


def add_rules_actions(rules: argparse.ArgumentParser) -> None:
    actions = rules.add_subparsers(metavar="ACTION")
    chk = actions.add_parser("check", help="validate rules.toml and every resident's overrides")
    chk.add_argument(
        "--file", type=Path, default=DEFAULTS_PATH, help="defaults (default: the shipped ones)"
    )
    chk.add_argument("--offline", action="store_true", help="only the file, not the database")
    chk.set_defaults(run=_check)
    move = actions.add_parser(
        "move-state",
        help="after partitions were added to the events topic, with every rules process "
        "stopped: file each device's rule state under its new partition",
    )
    move.set_defaults(run=_move_state)


def add_configure_parser(residents_actions: Any) -> None:
    conf = residents_actions.add_parser(
        "configure", help="set a resident's rule overrides from a JSON file (validated first)"
    )
    conf.add_argument("resident_id", type=int)
    conf.add_argument("--file", type=Path, required=True, help="JSON object; '-' = stdin")
    conf.set_defaults(run=_configure)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    overrides: dict[str, dict[str, Any]] = {}
    if not args.offline:
        try:
            overrides = asyncio.run(_stored_overrides(settings.require_database_url()))
        except (ConfigError, DatabaseError) as exc:
            print(f"carewatch: cannot read residents' overrides ({exc}); use --offline "
                  "to check the file alone", file=sys.stderr)  # fmt: skip
            return 1
    problems = check(args.file.read_text(), overrides)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"ok: {args.file} and {len(overrides)} residents' overrides")
    return 1 if problems else 0


def _move_state(args: argparse.Namespace, settings: Settings) -> int:
    try:
        bootstrap, url = settings.require_kafka_bootstrap(), settings.require_database_url()
        partitions = asyncio.run(partition_count(bootstrap, EVENTS_TOPIC))
        if not partitions:
            print(f"carewatch: no topic {EVENTS_TOPIC} at {bootstrap}", file=sys.stderr)
            return 1
        moved, stored = run_on_connection(url, lambda c: move_states(c, partitions=partitions))
    except (ConfigError, DatabaseError, KafkaError) as exc:
        print(f"carewatch: {exc}", file=sys.stderr)
        return 1
    where = f"{EVENTS_TOPIC}: {partitions} partitions"
    print(f"moved {moved} of {stored} devices' rule state ({where})")
    return 0


def _configure(args: argparse.Namespace, settings: Settings) -> int:
    raw = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    try:
        overrides = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        print(f"carewatch: {args.file}: not JSON: {exc}", file=sys.stderr)
        return 1
    problems = check(DEFAULTS_PATH.read_text(), {f"{args.resident_id}": overrides})
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    try:
        run_on_connection(
            settings.require_database_url(),
            lambda conn: _store_overrides(conn, args.resident_id, overrides),
        )
    except (DatabaseError, RegistryError) as exc:
        print(f"carewatch: {exc}", file=sys.stderr)
        return 1
    print(f"resident {args.resident_id}: overrides stored (workers pick them up within 30 s)")
    return 0


async def _store_overrides(
    conn: asyncpg.Connection, resident_id: int, overrides: dict[str, Any]
) -> None:
    """Store them and the audit row (as `PUT /residents/{id}/rules` does), in one go."""
    async with conn.transaction():
        before = await residents.overrides_of(conn, resident_id)
        await residents.set_rule_overrides(conn, resident_id, overrides)
        await cli_audit.record(
            conn, "resident.rules", f"resident:{resident_id}",
            {"rules": before}, {"rules": overrides},
        )  # fmt: skip


async def _stored_overrides(url: str) -> dict[str, dict[str, Any]]:
    pool = await connect_pool(url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            stored = await residents.rule_overrides(conn)
    finally:
        await pool.close()
    return {str(resident): overrides for resident, overrides in stored.items()}
