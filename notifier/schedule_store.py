"""On-call schedules in PostgreSQL: their rotations, overrides, and who is on call.

This module owns the `schedules`, `schedule_rotations`, `schedule_rotation_contacts` and
`schedule_overrides` tables (migration 0016). A schedule as loaded here is what
notifier/schedules.py computes over:

    {"schedule_id", "name", "area", "role", "time_zone", "created_at", "updated_at",
     "rotations": [{"start", "shift_s", "contacts": [contact_id, ...]}],
     "overrides": [{"override_id", "contact_id", "starts_at", "ends_at"}]}

The notifier asks `on_call_now` (the schedules an escalation step names) and
`supervisors_on_duty` (role 'supervisors', the most specific area covering an alert's).
A contact named by a schedule cannot be deleted (foreign keys without cascade,
CONTACT_CONSTRAINTS): the contacts route asks `schedules_naming` first. A schedule named by
a ladder step cannot be deleted either (escalation_step_schedules_schedule_fk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from notifier.schedules import on_call

__all__ = [
    "CONTACT_CONSTRAINTS",
    "SCHEDULE_COLUMNS",
    "add_override",
    "create_schedule",
    "delete_override",
    "delete_schedule",
    "get_schedule",
    "list_schedules",
    "on_call_now",
    "replace_schedule",
    "schedules_naming",
    "supervisors_on_duty",
    "visible",
]

SCHEDULE_COLUMNS = ("name", "area", "role", "time_zone")
# The foreign keys that refuse deleting a contact a schedule names (migration 0016).
CONTACT_CONSTRAINTS = ("schedule_rotation_contacts_contact_fk", "schedule_overrides_contact_fk")
_SELECT = f"schedule_id, {', '.join(SCHEDULE_COLUMNS)}, created_at, updated_at"
_IN_SCOPE = "($1 = '' OR s.area = $1 OR starts_with(s.area, $1 || '/'))"
_ROTATIONS = (
    "SELECT r.schedule_id, r.start, r.shift_s,"
    " coalesce(array_agg(c.contact_id ORDER BY c.position)"
    "          FILTER (WHERE c.contact_id IS NOT NULL), '{}') AS contacts"
    " FROM schedule_rotations r LEFT JOIN schedule_rotation_contacts c"
    "   ON c.schedule_id = r.schedule_id AND c.rotation = r.position"
    " WHERE r.schedule_id = ANY($1)"
    " GROUP BY r.schedule_id, r.position ORDER BY r.schedule_id, r.position"
)
# $2 NULL: every override; else those holding the instant $2.
_OVERRIDES = (
    "SELECT override_id, schedule_id, contact_id, starts_at, ends_at FROM schedule_overrides"
    " WHERE schedule_id = ANY($1)"
    " AND ($2::timestamptz IS NULL OR (starts_at <= $2 AND ends_at > $2))"
    " ORDER BY schedule_id, starts_at, override_id"
)

Rotation = Mapping[str, Any]  # start, shift_s, contacts
Override = Mapping[str, Any]  # contact_id, starts_at, ends_at


async def create_schedule(
    conn: asyncpg.Connection,
    fields: Mapping[str, Any],
    rotations: Sequence[Rotation],
    overrides: Sequence[Override] = (),
) -> dict[str, Any]:
    """A new schedule (fields: SCHEDULE_COLUMNS) with its rotations and overrides; returns
    it. Call inside a transaction. ForeignKeyViolationError for an unknown contact."""
    names = _known(fields)
    marks = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    schedule_id: int = await conn.fetchval(
        f"INSERT INTO schedules ({', '.join(names)}) VALUES ({marks}) RETURNING schedule_id",
        *(fields[n] for n in names),
    )
    await _put_rotations(conn, schedule_id, rotations)
    await _put_overrides(conn, schedule_id, overrides)
    found = await get_schedule(conn, schedule_id)
    assert found is not None
    return found


async def get_schedule(
    conn: asyncpg.Connection, schedule_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """One schedule with its rotations and every override (ended ones too), or None."""
    row = await conn.fetchrow(
        f"SELECT {_SELECT} FROM schedules WHERE schedule_id = $1" + (" FOR UPDATE" if lock else ""),
        schedule_id,
    )
    return None if row is None else (await _complete(conn, [dict(row)]))[0]


async def list_schedules(
    conn: asyncpg.Connection,
    *,
    scope: str,
    area: str | None = None,
    role: str | None = None,
    after: tuple[str, int] | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], tuple[str, int] | None]:
    """A page of the schedules in `scope` (in `area` or below it, of `role`), by name; and
    the next page's key."""
    args: list[Any] = [scope, area, role, limit + 1]
    where = [_IN_SCOPE, "($2::text IS NULL OR s.area = $2 OR starts_with(s.area, $2 || '/'))",
             "($3::text IS NULL OR s.role = $3)"]  # fmt: skip
    if after is not None:
        args += list(after)
        where.append("(s.name, s.schedule_id) > ($5, $6)")
    rows = await conn.fetch(
        f"SELECT {_SELECT} FROM schedules s WHERE {' AND '.join(where)}"
        " ORDER BY s.name, s.schedule_id LIMIT $4",
        *args,
    )
    items = await _complete(conn, [dict(r) for r in rows[:limit]])
    more = len(rows) > limit
    return items, ((items[-1]["name"], items[-1]["schedule_id"]) if more else None)


async def replace_schedule(
    conn: asyncpg.Connection,
    schedule_id: int,
    fields: Mapping[str, Any],
    rotations: Sequence[Rotation],
    overrides: Sequence[Override] | None,
) -> dict[str, Any] | None:
    """Set the fields, replace the rotations and, unless None, the overrides (which then
    get new ids); the schedule, or None when there is none. Call inside a transaction."""
    names = _known(fields)
    sets = "".join(f"{n} = ${i}, " for i, n in enumerate(names, start=2))
    found = await conn.fetchval(
        f"UPDATE schedules SET {sets}updated_at = now() WHERE schedule_id = $1 RETURNING 1",
        schedule_id, *(fields[n] for n in names),
    )  # fmt: skip
    if found is None:
        return None
    await conn.execute("DELETE FROM schedule_rotations WHERE schedule_id = $1", schedule_id)
    await _put_rotations(conn, schedule_id, rotations)
    if overrides is not None:
        await conn.execute("DELETE FROM schedule_overrides WHERE schedule_id = $1", schedule_id)
        await _put_overrides(conn, schedule_id, overrides)
    return await get_schedule(conn, schedule_id)


async def delete_schedule(conn: asyncpg.Connection, schedule_id: int) -> bool:
    """Delete a schedule, its rotations and overrides; whether there was one.
    ForeignKeyViolationError while an escalation step names it."""
    status = await conn.execute("DELETE FROM schedules WHERE schedule_id = $1", schedule_id)
    return bool(status != "DELETE 0")


async def add_override(
    conn: asyncpg.Connection,
    schedule_id: int,
    contact_id: int,
    starts_at: datetime,
    ends_at: datetime,
) -> dict[str, Any]:
    """A new override of the schedule; returns it (`override_id`, `contact_id`,
    `starts_at`, `ends_at`). ForeignKeyViolationError for an unknown schedule or contact."""
    row = await conn.fetchrow(
        "INSERT INTO schedule_overrides (schedule_id, contact_id, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4) RETURNING override_id, contact_id, starts_at, ends_at",
        schedule_id, contact_id, starts_at, ends_at,
    )  # fmt: skip
    await _touch(conn, schedule_id)
    return dict(row)


async def delete_override(
    conn: asyncpg.Connection, schedule_id: int, override_id: int
) -> dict[str, Any] | None:
    """Delete one of the schedule's overrides; it as it was, or None when it has none
    such."""
    row = await conn.fetchrow(
        "DELETE FROM schedule_overrides WHERE schedule_id = $1 AND override_id = $2"
        " RETURNING override_id, contact_id, starts_at, ends_at",
        schedule_id, override_id,
    )  # fmt: skip
    if row is None:
        return None
    await _touch(conn, schedule_id)
    return dict(row)


async def on_call_now(
    conn: asyncpg.Connection, schedule_ids: Sequence[int], at: datetime
) -> dict[int, list[int]]:
    """{schedule_id: the contacts on call at `at`} for each of these schedules that exists
    (unknown ids are left out; a schedule with nobody on call maps to [])."""
    ids = sorted(set(schedule_ids))
    rows = await conn.fetch("SELECT schedule_id FROM schedules WHERE schedule_id = ANY($1)", ids)
    heads = [{"schedule_id": r["schedule_id"]} for r in rows]
    return {s["schedule_id"]: on_call(s, at) for s in await _complete(conn, heads, at=at)}


async def supervisors_on_duty(conn: asyncpg.Connection, area: str, at: datetime) -> list[int]:
    """The contacts on call at `at` in the supervisors' schedule(s) of the most specific
    area covering `area` that has anyone on call ('' covers every area, 'sh' covers
    'sh/xuhui'); several schedules of that area: all their people. [] when none."""
    rows = await conn.fetch(
        "SELECT schedule_id, area FROM schedules"
        " WHERE role = 'supervisors'"
        " AND (area = '' OR area = $1 OR starts_with($1, area || '/')) ORDER BY schedule_id",
        area,
    )
    on = await on_call_now(conn, [r["schedule_id"] for r in rows], at)
    by_area: dict[str, list[int]] = {}
    for r in rows:
        by_area.setdefault(r["area"], []).extend(on.get(r["schedule_id"], []))
    # Covering areas are prefixes of each other: the longest is the most specific.
    for covering in sorted(by_area, key=len, reverse=True):
        if by_area[covering]:
            return list(dict.fromkeys(by_area[covering]))
    return []


async def schedules_naming(conn: asyncpg.Connection, contact_id: int) -> list[int]:
    """The schedules whose rotations or overrides (ended ones too) name this contact."""
    rows = await conn.fetch(
        "SELECT schedule_id FROM schedule_rotation_contacts WHERE contact_id = $1"
        " UNION SELECT schedule_id FROM schedule_overrides WHERE contact_id = $1 ORDER BY 1",
        contact_id,
    )
    return [r["schedule_id"] for r in rows]


async def visible(conn: asyncpg.Connection, scope: str, schedule_ids: Sequence[int]) -> set[int]:
    """Which of these schedules exist in `scope` or below it."""
    rows = await conn.fetch(
        f"SELECT schedule_id FROM schedules s WHERE {_IN_SCOPE} AND schedule_id = ANY($2)",
        scope, list(schedule_ids),
    )  # fmt: skip
    return {r["schedule_id"] for r in rows}


async def _complete(
    conn: asyncpg.Connection, heads: list[dict[str, Any]], *, at: datetime | None = None
) -> list[dict[str, Any]]:
    """The schedules with their rotations and overrides (`at`: only those holding it)."""
    ids = [h["schedule_id"] for h in heads]
    rotations: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in await conn.fetch(_ROTATIONS, ids):
        rotations[r["schedule_id"]].append(
            {"start": r["start"], "shift_s": r["shift_s"], "contacts": list(r["contacts"])}
        )
    overrides: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in await conn.fetch(_OVERRIDES, ids, at):
        overrides[r["schedule_id"]].append(
            {k: r[k] for k in ("override_id", "contact_id", "starts_at", "ends_at")}
        )
    return [
        {**h, "rotations": rotations[h["schedule_id"]], "overrides": overrides[h["schedule_id"]]}
        for h in heads
    ]


async def _put_rotations(
    conn: asyncpg.Connection, schedule_id: int, rotations: Sequence[Rotation]
) -> None:
    await conn.executemany(
        "INSERT INTO schedule_rotations (schedule_id, position, start, shift_s)"
        " VALUES ($1, $2, $3, $4)",
        [(schedule_id, i, r["start"], r["shift_s"]) for i, r in enumerate(rotations)],
    )
    await conn.executemany(
        "INSERT INTO schedule_rotation_contacts (schedule_id, rotation, position, contact_id)"
        " VALUES ($1, $2, $3, $4)",
        [(schedule_id, i, pos, contact)
         for i, r in enumerate(rotations) for pos, contact in enumerate(r["contacts"])],
    )  # fmt: skip


async def _put_overrides(
    conn: asyncpg.Connection, schedule_id: int, overrides: Sequence[Override]
) -> None:
    await conn.executemany(
        "INSERT INTO schedule_overrides (schedule_id, contact_id, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4)",
        [(schedule_id, o["contact_id"], o["starts_at"], o["ends_at"]) for o in overrides],
    )


async def _touch(conn: asyncpg.Connection, schedule_id: int) -> None:
    await conn.execute(
        "UPDATE schedules SET updated_at = now() WHERE schedule_id = $1", schedule_id
    )


def _known(fields: Mapping[str, Any]) -> list[str]:
    # Column names go into the SQL text: only the schedule's own are accepted.
    unknown = set(fields) - set(SCHEDULE_COLUMNS)
    if unknown:
        raise ValueError(f"not schedule columns: {sorted(unknown)}")
    return [name for name in SCHEDULE_COLUMNS if name in fields]
