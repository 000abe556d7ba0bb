"""The audit trail in PostgreSQL: who changed what, when, and the object before and after.

This module owns the `audit` table. Every write through the API or the CLI records a row
in the same transaction as the change, so the trail has exactly the changes that were
committed. Rows are never updated or deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

__all__ = ["list_audit", "record"]

_COLUMNS = "audit_id, at, actor, action, target, before, after"


async def record(
    conn: asyncpg.Connection,
    *,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> int:
    """One audit row (`before` None: created; `after` None: deleted); returns its id."""
    audit_id: int = await conn.fetchval(
        "INSERT INTO audit (actor, action, target, before, after)"
        " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) RETURNING audit_id",
        actor, action, target, _json(before), _json(after),
    )  # fmt: skip
    return audit_id


async def list_audit(
    conn: asyncpg.Connection,
    *,
    actor: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first: rows of `actor`, at or after `since`, older than the row `before_id`
    (the last one of the previous page)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM audit"
        " WHERE ($1::text IS NULL OR actor = $1) AND ($2::timestamptz IS NULL OR at >= $2)"
        " AND ($3::bigint IS NULL OR audit_id < $3)"
        " ORDER BY audit_id DESC LIMIT $4",
        actor, since, before_id, limit,
    )  # fmt: skip
    return [{**dict(r), "before": _loads(r["before"]), "after": _loads(r["after"])} for r in rows]


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)
