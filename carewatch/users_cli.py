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

    for name, help_text in (
        ("disable", "disable a user: no sign-in, every token revoked"),
        ("enable", "enable a disabled user again (issue them a new token)"),
        ("revoke", "revoke every token of a user (sign-in still works)"),
    ):
        change = actions.add_parser(name, help=help_text)
        change.add_argument("name")
        change.set_defaults(run=_run(_CHANGES[name]))

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


async def _disable(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    return await _set_disabled(conn, args.name, True)


async def _enable(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    return await _set_disabled(conn, args.name, False)


async def _set_disabled(conn: asyncpg.Connection, name: str, disabled: bool) -> int:
    async with conn.transaction():
        before, after = await users.set_disabled(conn, name, disabled)
        if before != after:
            await audit.record(
                conn, actor=actor(), action="user.disable" if disabled else "user.enable",
                target=f"user:{name}", before=before.public(), after=after.public(),
            )  # fmt: skip
    print(f"{name}: {'disabled, every token revoked' if disabled else 'enabled'}")
    return 0


async def _revoke(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    async with conn.transaction():
        await users.get_user(conn, args.name)  # UserNotFound for a typo
        count = await users.revoke_tokens(conn, args.name)
        await audit.record(
            conn, actor=actor(), action="token.revoke", target=f"user:{args.name}",
            before=None, after={"revoked": count},
        )  # fmt: skip
    print(f"{args.name}: {count} token(s) revoked")
    return 0


_CHANGES: dict[str, Action] = {"disable": _disable, "enable": _enable, "revoke": _revoke}


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
