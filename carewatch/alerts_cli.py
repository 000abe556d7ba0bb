"""`carewatch alerts ...`: the operator's commands on alerts.

`list` and `show` read; `ack` and `resolve` change an alert's status, which the store
records in the alert's history (and so publishes on carewatch.alerts.v1, via the rules
processes' outbox publisher). Who did it is `--by`, the OS user name by default. Each
change is also an audit row (`alert.ack`, `alert.resolve`: the alert before and after) with
the actor `cli:<OS user>`, in the same transaction, as the API's are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from alerts import store
from alerts.errors import AlertError
from carewatch.cli_audit import os_user, record
from plumbing.db import DatabaseError, run_on_connection
from plumbing.settings import Settings

__all__ = ["add_parsers"]

_MAX_ID = 2**63 - 1  # alert ids are bigint


def add_parsers(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="operator commands on alerts")
    actions = alerts.add_subparsers(required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="list alerts, newest first")
    listing.add_argument("--status", choices=("open", "acknowledged", "resolved"))
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_run(_list))

    show = actions.add_parser("show", help="one alert with its history")
    show.add_argument("alert_id", type=_alert_id, metavar="ID")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(run=_run(_show))

    ack = actions.add_parser("ack", help="acknowledge an open alert (take it on)")
    ack.add_argument("alert_id", type=_alert_id, metavar="ID")
    ack.add_argument("--note", metavar="TEXT", help="kept in the alert's history")
    _by_argument(ack)
    ack.set_defaults(run=_run(_ack))

    resolve = actions.add_parser("resolve", help="resolve an open or acknowledged alert")
    resolve.add_argument("alert_id", type=_alert_id, metavar="ID")
    resolve.add_argument("--note", required=True, metavar="TEXT", help="what was done, or why")
    _by_argument(resolve)
    resolve.set_defaults(run=_run(_resolve))


def _by_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by", default=None, metavar="NAME", help="who does it (default: your OS user name)"
    )


def _alert_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an alert id: {text!r}") from None
    if not 1 <= value <= _MAX_ID:
        raise argparse.ArgumentTypeError(f"not an alert id: {text!r}")
    return value


Action = Callable[[asyncpg.Connection, argparse.Namespace], Awaitable[int]]
Change = Callable[[], Awaitable[dict[str, Any]]]


def _run(action: Action) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        url = settings.require_database_url()
        try:
            return run_on_connection(url, lambda conn: action(conn, args))
        except (AlertError, DatabaseError) as exc:
            print(f"carewatch: {exc}", file=sys.stderr)
            return 1

    return run


async def _list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    rows = await store.list_alerts(conn, status=args.status, limit=args.limit)
    if args.json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE).decode())
    else:
        print(_alerts_table(rows))
    return 0


async def _show(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    alert = await store.get_alert(conn, args.alert_id)
    if args.json:
        sys.stdout.write(orjson.dumps(alert, option=orjson.OPT_APPEND_NEWLINE).decode())
    else:
        print(_alert_text(alert))
    return 0


async def _ack(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    by = args.by or os_user()
    alert = await _audited(
        conn, args.alert_id, "alert.ack",
        lambda: store.acknowledge(conn, args.alert_id, by=by, note=args.note),
    )  # fmt: skip
    print(
        f"alert {alert['alert_id']} ({alert['kind']}, {alert['device_id']}) acknowledged"
        f" by {alert['acknowledged_by']} at {_time(alert['acknowledged_at'])}"
    )
    return 0


async def _resolve(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    by = args.by or os_user()
    alert = await _audited(
        conn, args.alert_id, "alert.resolve",
        lambda: store.resolve(conn, args.alert_id, by=by, note=args.note),
    )  # fmt: skip
    print(
        f"alert {alert['alert_id']} ({alert['kind']}, {alert['device_id']}) resolved"
        f" by {alert['resolved_by']} at {_time(alert['resolved_at'])}: {alert['resolution']}"
    )
    return 0


async def _audited(
    conn: asyncpg.Connection, alert_id: int, action: str, change: Change
) -> dict[str, Any]:
    """Apply a change of the alert and audit it (before and after), in one transaction; a
    repeat that changes nothing (acknowledging twice) is not audited. Returns the alert."""
    async with conn.transaction():
        before = await store.lock_alert(conn, alert_id)
        after = await change()
        if after != before:
            await record(conn, action, f"alert:{alert_id}", before, after)
    return after


def _alerts_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no alerts"
    head = ("ID", "KIND", "SEVERITY", "STATUS", "COUNT", "DEVICE", "OPENED (UTC)", "SUMMARY")
    return _table(
        head,
        [
            (str(r["alert_id"]), r["kind"], r["severity"], r["status"], str(r["count"]),
             r["device_id"], _time(r["opened_at"]), r["summary"])
            for r in rows
        ],
    )  # fmt: skip


def _alert_text(alert: dict[str, Any]) -> str:
    lines = [
        f"alert {alert['alert_id']}: {alert['kind']} ({alert['severity']}), {alert['status']},"
        f" count {alert['count']}",
        f"  device        {alert['device_id']}",
        f"  summary       {alert['summary']}",
        f"  device time   {_time(alert['first_ts'])} .. {_time(alert['last_ts'])} (UTC)",
        f"  opened        {_time(alert['opened_at'])} (UTC)",
    ]
    if alert["lat"] is not None:
        lines.append(f"  position      {alert['lat']:.5f},{alert['lon']:.5f}")
    if alert["acknowledged_at"] is not None:
        lines.append(
            f"  acknowledged  {_time(alert['acknowledged_at'])} by {alert['acknowledged_by']}"
        )
    if alert["resolved_at"] is not None:
        lines.append(f"  resolved      {_time(alert['resolved_at'])} by {alert['resolved_by']}:"
                     f" {alert['resolution']}")  # fmt: skip
    lines.append(f"  events        {alert['events']}")
    history = alert["history"]
    if not history:
        return "\n".join([*lines, "", "no history (raised before alert history was kept)"])
    head = ("#", "AT (UTC)", "CHANGE", "BY", "STATUS", "COUNT", "PUBLISHED", "NOTE")
    table = _table(
        head,
        [
            (str(h["history_id"]), _time(h["at"]), h["change"], h["actor"], h["status"],
             str(h["count"]), "yes" if h["published_at"] else "not yet", h["note"] or "")
            for h in history
        ],
    )  # fmt: skip
    return "\n".join([*lines, "", table])


def _table(head: Sequence[str], rows: list[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last one (free text) is not padded."""
    lines = [tuple(head), *(tuple(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True))
        + "  "
        + line[-1]
        for line in lines
    )


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")
