"""`carewatch users ...`: the API's users from the command line (on the database's host).

`add` prints the new user's password and a bearer token, each once, as `password: …` and
`token: …` lines; `token` issues another token. Each change is an audit row with the
actor `cli:<OS user>`, as the API's are with the user's name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from api import audit, users
from api.errors import ApiError
from carewatch.cli_audit import actor
from plumbing.db import DatabaseError, run_on_connection
from plumbing.settings import Settings

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    parser = sub.add_parser("users", help="users of the API: add, list, issue tokens")
    actions = parser.add_subparsers(required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add a user; prints a password and a token, once")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=users.ROLES)
    add.add_argument(
        "--area", default="", metavar="PATH", help="e.g. shanghai/xuhui (default: every area)"
    )
    add.set_defaults(run=_run(_add))

    token = actions.add_parser("token", help="issue a new bearer token; prints it once")
    token.add_argument("name")
    token.set_defaults(run=_run(_token))

    listing = actions.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_run(_list))


Action = Callable[[asyncpg.Connection, argparse.Namespace], Awaitable[int]]


def _run(action: Action) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        url = settings.require_database_url()
        try:
            return run_on_connection(url, lambda conn: action(conn, args))
        except (ApiError, DatabaseError) as exc:
            print(f"carewatch: {exc}", file=sys.stderr)
            return 1

    return run


async def _add(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    async with conn.transaction():
        user, password = await users.add_user(conn, name=args.name, role=args.role, area=args.area)
        token = await users.issue_token(conn, user.name)
        await audit.record(
            conn, actor=actor(), action="user.create", target=f"user:{user.name}",
            before=None, after=user.public(),
        )  # fmt: skip
    area = user.area or "every area"
    print(f"added {user.name} ({user.role}, {area}); shown only now:", file=sys.stderr)
    print(f"password: {password}")
    print(f"token: {token}")
    return 0


async def _token(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    async with conn.transaction():
        token = await users.issue_token(conn, args.name)
        await audit.record(
            conn, actor=actor(), action="token.issue", target=f"user:{args.name}",
            before=None, after={"via": "cli"},
        )  # fmt: skip
    print(f"token: {token}")
    return 0


async def _list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    found = await users.list_users(conn)
    if args.json:
        for user in found:
            sys.stdout.write(orjson.dumps(user.public(), option=orjson.OPT_APPEND_NEWLINE).decode())
        return 0
    if not found:
        print("no users")
        return 0
    width = max(len(u.name) for u in found)
    print(f"{'NAME':<{width}}  {'ROLE':<10}  {'CREATED (UTC)':<19}  AREA")
    for u in found:
        state = "  (disabled)" if u.disabled else ""
        created = u.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{u.name:<{width}}  {u.role:<10}  {created}  {u.area or '(every area)'}{state}")
    return 0
