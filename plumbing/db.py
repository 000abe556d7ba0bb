"""PostgreSQL connections and the schema migrations that every process applies on start.

Migrations are `plumbing/migrations/NNNN_name.sql`, applied in order, each once, each in
its own transaction, under an advisory lock so processes starting together don't race.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar

import asyncpg

from plumbing.redact import redact_url

__all__ = [
    "TRANSIENT",
    "DatabaseError",
    "connect_pool",
    "migrate",
    "migrations",
    "run_on_connection",
]

log = logging.getLogger(__name__)

_LOCK_ID = 0x63617265  # "care": one advisory lock id for migrations
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


class DatabaseError(Exception):
    """PostgreSQL could not be reached or refused the schema."""


# Errors that a retry cures, not a different record: the database down, restarting, out of
# connections or the connection lost, or busy (a deadlock or serialization failure between
# two writers, such as the alarm lane and the rules worker). Wait and try again, for as long
# as it takes, and never take them as a sign that a record is bad.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    DatabaseError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError,
)


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every shipped migration, in order."""
    found = []
    for entry in resources.files("plumbing.migrations").iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


async def migrate(conn: asyncpg.Connection, *, upto: int | None = None) -> list[str]:
    """Apply the migrations this database lacks (those numbered up to `upto`, if given: a
    database as an older release left it); returns the names applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done or (upto is not None and version > upto):
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied.append(name)
    if applied:
        log.info("schema migrated", extra={"applied": applied})
    return applied


async def connect_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    init: Callable[[asyncpg.Connection], Awaitable[Any]] | None = None,
) -> asyncpg.Pool:
    """A pool on an up-to-date schema."""
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=init)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"PostgreSQL at {redact_url(url)}: {exc}") from exc


T = TypeVar("T")


def run_on_connection(url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """For one-shot commands: a connection (migrations applied), `work` on it, closed."""

    async def main() -> T:
        pool = await connect_pool(url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                return await work(conn)
        finally:
            await pool.close()

    return asyncio.run(main())
