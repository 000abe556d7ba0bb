"""Contacts, their channels, the residents they belong to, and each resident's escalation
ladder in PostgreSQL.

This module owns the `contacts`, `contact_channels`, `resident_contacts`, `escalations`,
`escalation_steps`, `escalation_step_contacts` and `escalation_step_schedules` tables
(migrations 0010, 0015). A channel's
secret (a webhook's HMAC key) is kept in clear because the notifier must use it; every read
here answers `has_secret` instead, and only `channel_secrets` returns it, for the notifier.
The ladder is the order the notifier calls people in: each step's contacts at once, then
`wait_s` for an acknowledgement before the next step; the whole ladder `repeat` more times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from devices.residents import like_pattern

__all__ = [
    "CONTACT_COLUMNS",
    "LADDER_LIMITS",
    "channel_secrets",
    "check_ladder",
    "contacts_of_resident",
    "create_contact",
    "delete_contact",
    "delete_ladder",
    "get_contact",
    "get_default",
    "get_ladder",
    "keep_secrets",
    "ladders_naming",
    "link",
    "list_contacts",
    "set_default",
    "set_ladder",
    "unlink",
    "update_contact",
    "visible",
]

CONTACT_COLUMNS = (
    "name", "relationship", "language", "phones", "area", "notes", "time_zone", "quiet_from",
    "quiet_to",
)  # fmt: skip
_SELECT = f"contact_id, {', '.join(CONTACT_COLUMNS)}, created_at, updated_at"
# (min, max) of a ladder's step count, a step's contacts, wait_s and repeat.
LADDER_LIMITS = {
    "steps": (1, 20), "contacts": (0, 20), "schedules": (0, 10), "wait_s": (1, 86400),
    "repeat": (0, 20),
}  # fmt: skip
_IN_SCOPE = "($1 = '' OR c.area = $1 OR starts_with(c.area, $1 || '/'))"
_CHANNELS = (
    "SELECT contact_id, type, address, secret IS NOT NULL AS has_secret FROM contact_channels"
    " WHERE contact_id = ANY($1) ORDER BY contact_id, position"
)

Channel = Mapping[str, Any]  # type, address, secret (None: none)


async def create_contact(
    conn: asyncpg.Connection, fields: Mapping[str, Any], channels: Sequence[Channel]
) -> dict[str, Any]:
    """A new contact with its channels; returns it (secrets as `has_secret`)."""
    names = _known(fields)
    marks = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    contact_id: int = await conn.fetchval(
        f"INSERT INTO contacts ({', '.join(names)}) VALUES ({marks}) RETURNING contact_id",
        *(fields[n] for n in names),
    )
    await _put_channels(conn, contact_id, channels)
    found = await get_contact(conn, contact_id)
    assert found is not None
    return found


async def get_contact(
    conn: asyncpg.Connection, contact_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """One contact with its channels (no secrets), or None."""
    row = await conn.fetchrow(
        f"SELECT {_SELECT} FROM contacts WHERE contact_id = $1" + (" FOR UPDATE" if lock else ""),
        contact_id,
    )
    return None if row is None else (await _with_channels(conn, [dict(row)]))[0]


async def update_contact(
    conn: asyncpg.Connection,
    contact_id: int,
    fields: Mapping[str, Any],
    channels: Sequence[Channel] | None,
) -> dict[str, Any] | None:
    """Set the given fields and, unless None, replace the channels (pass them through
    `keep_secrets` first to keep the secrets of channels re-sent without one)."""
    names = _known(fields)
    sets = "".join(f"{n} = ${i}, " for i, n in enumerate(names, start=2))
    found = await conn.fetchval(
        f"UPDATE contacts SET {sets}updated_at = now() WHERE contact_id = $1 RETURNING 1",
        contact_id, *(fields[n] for n in names),
    )  # fmt: skip
    if found is None:
        return None
    if channels is not None:
        await conn.execute("DELETE FROM contact_channels WHERE contact_id = $1", contact_id)
        await _put_channels(conn, contact_id, channels)
    return await get_contact(conn, contact_id)


async def delete_contact(conn: asyncpg.Connection, contact_id: int) -> None:
    """Delete a contact (check `ladders_naming` first: a ladder step naming it refuses)."""
    await conn.execute("DELETE FROM contacts WHERE contact_id = $1", contact_id)


async def ladders_naming(conn: asyncpg.Connection, contact_id: int) -> list[int]:
    """The residents whose ladder names this contact."""
    rows = await conn.fetch(
        "SELECT DISTINCT resident_id FROM escalation_step_contacts WHERE contact_id = $1"
        " ORDER BY 1",
        contact_id,
    )
    return [r["resident_id"] for r in rows]


async def list_contacts(
    conn: asyncpg.Connection,
    *,
    scope: str,
    area: str | None = None,
    q: str | None = None,
    relationship: str | None = None,
    after: tuple[str, int] | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], tuple[str, int] | None]:
    """A page of the contacts in `scope` (filtered), by name; and the next page's key."""
    args: list[Any] = [scope, area, like_pattern(q) if q else None, relationship, limit + 1]
    where = [_IN_SCOPE, "($2::text IS NULL OR c.area = $2 OR starts_with(c.area, $2 || '/'))",
             "($3::text IS NULL OR c.name ILIKE $3)",
             "($4::text IS NULL OR c.relationship = $4)"]  # fmt: skip
    if after is not None:
        args += list(after)
        where.append("(c.name, c.contact_id) > ($6, $7)")
    rows = await conn.fetch(
        f"SELECT {_SELECT} FROM contacts c WHERE {' AND '.join(where)}"
        " ORDER BY c.name, c.contact_id LIMIT $5",
        *args,
    )
    items = await _with_channels(conn, [dict(r) for r in rows[:limit]])
    more = len(rows) > limit
    return items, ((items[-1]["name"], items[-1]["contact_id"]) if more else None)


async def visible(conn: asyncpg.Connection, scope: str, contact_ids: Sequence[int]) -> set[int]:
    """Which of these contacts exist in `scope` or below it."""
    rows = await conn.fetch(
        f"SELECT contact_id FROM contacts c WHERE {_IN_SCOPE} AND contact_id = ANY($2)",
        scope, list(contact_ids),
    )  # fmt: skip
    return {r["contact_id"] for r in rows}


async def link(conn: asyncpg.Connection, resident_id: int, contact_ids: Sequence[int]) -> int:
    """Make these contacts the resident's (those that are already: unchanged); how many
    were new."""
    status = await conn.execute(
        "INSERT INTO resident_contacts (resident_id, contact_id)"
        " SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
        resident_id, list(contact_ids),
    )  # fmt: skip
    return int(status.rsplit(" ", 1)[1])


async def unlink(conn: asyncpg.Connection, resident_id: int, contact_id: int) -> bool:
    """The contact is no longer the resident's; whether it was."""
    status = await conn.execute(
        "DELETE FROM resident_contacts WHERE resident_id = $1 AND contact_id = $2",
        resident_id, contact_id,
    )  # fmt: skip
    return bool(status != "DELETE 0")


async def contacts_of_resident(conn: asyncpg.Connection, resident_id: int) -> list[dict[str, Any]]:
    """The resident's contacts, by name, each with `on_ladder`."""
    rows = await conn.fetch(
        f"SELECT {', '.join(f'c.{c}' for c in _SELECT.split(', '))},"
        " EXISTS (SELECT 1 FROM escalation_step_contacts s"
        "         WHERE s.resident_id = $1 AND s.contact_id = c.contact_id) AS on_ladder"
        " FROM resident_contacts rc JOIN contacts c USING (contact_id)"
        " WHERE rc.resident_id = $1 ORDER BY c.name, c.contact_id",
        resident_id,
    )
    return await _with_channels(conn, [dict(r) for r in rows])


async def get_ladder(conn: asyncpg.Connection, resident_id: int) -> dict[str, Any]:
    """`{"steps": [{"contacts", "schedules", "wait_s"}], "repeat", "updated_at"}`; no steps
    when unset."""
    head = await conn.fetchrow(
        "SELECT repeat, updated_at FROM escalations WHERE resident_id = $1", resident_id
    )
    if head is None:
        return {"steps": [], "repeat": 0, "updated_at": None}
    rows = await conn.fetch(
        "SELECT s.step, s.wait_s,"
        " ARRAY(SELECT contact_id FROM escalation_step_contacts c WHERE c.resident_id ="
        "  s.resident_id AND c.step = s.step ORDER BY c.position) AS contacts,"
        " ARRAY(SELECT schedule_id FROM escalation_step_schedules c WHERE c.resident_id ="
        "  s.resident_id AND c.step = s.step ORDER BY c.position) AS schedules"
        " FROM escalation_steps s WHERE s.resident_id = $1 ORDER BY s.step",
        resident_id,
    )
    steps = [
        {"contacts": list(r["contacts"]), "schedules": list(r["schedules"]), "wait_s": r["wait_s"]}
        for r in rows
    ]
    return {"steps": steps, "repeat": head["repeat"], "updated_at": head["updated_at"]}


async def set_ladder(
    conn: asyncpg.Connection, resident_id: int, steps: Sequence[Mapping[str, Any]], repeat: int
) -> dict[str, Any]:
    """Replace the resident's ladder (validate with `check_ladder` first) and make its
    contacts the resident's; returns it. Call inside a transaction."""
    await conn.execute("DELETE FROM escalations WHERE resident_id = $1", resident_id)
    await conn.execute(
        "INSERT INTO escalations (resident_id, repeat) VALUES ($1, $2)", resident_id, repeat
    )
    await conn.executemany(
        "INSERT INTO escalation_steps (resident_id, step, wait_s) VALUES ($1, $2, $3)",
        [(resident_id, i, step["wait_s"]) for i, step in enumerate(steps)],
    )
    for table, key in (("contacts", "contact_id"), ("schedules", "schedule_id")):
        await conn.executemany(
            f"INSERT INTO escalation_step_{table} (resident_id, step, position, {key})"
            " VALUES ($1, $2, $3, $4)",
            [(resident_id, i, pos, target)
             for i, step in enumerate(steps) for pos, target in enumerate(step.get(table, []))],
        )  # fmt: skip
    await link(conn, resident_id, sorted({c for step in steps for c in step["contacts"]}))
    return await get_ladder(conn, resident_id)


async def delete_ladder(conn: asyncpg.Connection, resident_id: int) -> bool:
    """Remove the resident's ladder (its contacts stay the resident's); whether it had one."""
    done = await conn.execute("DELETE FROM escalations WHERE resident_id = $1", resident_id)
    return bool(done != "DELETE 0")


async def get_default(conn: asyncpg.Connection, severity: str) -> dict[str, Any] | None:
    """The default policy of a severity (`{"steps", "repeat", "updated_at"}`), or None."""
    row = await conn.fetchrow(
        "SELECT steps, repeat, updated_at FROM escalation_defaults WHERE severity = $1",
        severity,
    )
    if row is None:
        return None
    return {"steps": orjson.loads(row["steps"]), "repeat": row["repeat"],
            "updated_at": row["updated_at"]}  # fmt: skip


async def set_default(
    conn: asyncpg.Connection, severity: str, steps: Sequence[Mapping[str, Any]], repeat: int
) -> None:
    await conn.execute(
        "INSERT INTO escalation_defaults (severity, steps, repeat) VALUES ($1, $2, $3)"
        " ON CONFLICT (severity) DO UPDATE SET steps = $2, repeat = $3, updated_at = now()",
        severity, orjson.dumps(list(steps)).decode(), repeat,
    )  # fmt: skip


async def channel_secrets(conn: asyncpg.Connection, contact_id: int) -> list[dict[str, Any]]:
    """The contact's channels with their secrets: for the notifier, never for the API."""
    rows = await conn.fetch(
        "SELECT type, address, secret FROM contact_channels WHERE contact_id = $1"
        " ORDER BY position",
        contact_id,
    )
    return [dict(r) for r in rows]


def check_ladder(steps: Sequence[Mapping[str, Any]], repeat: int) -> list[str]:
    """What is wrong with a ladder's shape (counts, ranges, a contact twice in a step), as
    messages naming the place; [] when it will do. Whether the contacts exist is not
    checked here."""
    lo, hi = LADDER_LIMITS["steps"]
    problems = [] if lo <= len(steps) <= hi else [f"steps: {lo} to {hi} steps"]
    for i, step in enumerate(steps):
        for what in ("contacts", "schedules"):
            targets = list(step.get(what, []))
            lo, hi = LADDER_LIMITS[what]
            if not lo <= len(targets) <= hi:
                problems.append(f"steps[{i}].{what}: {lo} to {hi} {what}")
            if len(set(targets)) != len(targets):
                problems.append(f"steps[{i}].{what}: one appears twice")
        if not step.get("contacts") and not step.get("schedules"):
            problems.append(f"steps[{i}]: contacts or schedules, at least one")
        lo, hi = LADDER_LIMITS["wait_s"]
        if not lo <= step.get("wait_s", -1) <= hi:
            problems.append(f"steps[{i}].wait_s: {lo} to {hi} seconds")
    lo, hi = LADDER_LIMITS["repeat"]
    if not lo <= repeat <= hi:
        problems.append(f"repeat: {lo} to {hi}")
    return problems


def keep_secrets(old: Sequence[Channel], new: Sequence[Channel]) -> list[dict[str, Any]]:
    """`new` channels, where one re-sent without a secret keeps the secret the same type
    and address had: clients never see secrets, so they cannot send them back."""
    kept = {(c["type"], c["address"]): c.get("secret") for c in old}
    return [{**c, "secret": c.get("secret") or kept.get((c["type"], c["address"]))} for c in new]


async def _put_channels(
    conn: asyncpg.Connection, contact_id: int, channels: Sequence[Channel]
) -> None:
    await conn.executemany(
        "INSERT INTO contact_channels (contact_id, position, type, address, secret)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(contact_id, i, c["type"], c["address"], c.get("secret")) for i, c in enumerate(channels)],
    )


async def _with_channels(
    conn: asyncpg.Connection, contacts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = await conn.fetch(_CHANNELS, [c["contact_id"] for c in contacts])
    by_contact: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        channel = {"type": r["type"], "address": r["address"], "has_secret": r["has_secret"]}
        by_contact.setdefault(r["contact_id"], []).append(channel)
    return [{**c, "channels": by_contact.get(c["contact_id"], [])} for c in contacts]


def _known(fields: Mapping[str, Any]) -> list[str]:
    # Column names go into the SQL text: only the contact's own are accepted.
    unknown = set(fields) - set(CONTACT_COLUMNS)
    if unknown:
        raise ValueError(f"not contact columns: {sorted(unknown)}")
    return [name for name in CONTACT_COLUMNS if name in fields]
