"""Residents and their rule overrides in PostgreSQL: the people devices belong to.

This module owns the `residents` and `resident_rules` tables; the CLI, the rules process
(alerts/resident_config.py), the tests and the API read and write them through it. The
profile (PROFILE_COLUMNS) is what a call handler needs on one screen; areas come here in
their stored form (api/areas.py checks them), and `scope` means "this area and below".
Overrides are stored as given: `carewatch rules check` validates them before they come
here, and the rules process falls back to the defaults for a resident whose stored
overrides no longer validate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson

from devices.errors import RegistryError

__all__ = [
    "PROFILE_COLUMNS",
    "add_resident",
    "create_resident",
    "delete_resident",
    "device_rule_configs",
    "devices_of",
    "get_resident",
    "like_pattern",
    "list_residents",
    "overrides_of",
    "rule_overrides",
    "set_rule_overrides",
    "update_resident",
    "why_in_use",
]

PROFILE_COLUMNS = (
    "name", "sex", "birth_year", "address", "home_lat", "home_lon", "phone", "area",
    "languages", "dialect", "living_alone", "medical_notes", "allergies", "gp_name",
    "gp_phone", "photo_url", "timezone",
)  # fmt: skip
_COLUMNS = f"resident_id, {', '.join(PROFILE_COLUMNS)}, created_at, updated_at"
# "In `scope` or below it" on `/` boundaries (api/areas.py), for a parameter $n.
_IN_SCOPE = "($%(n)d = '' OR area = $%(n)d OR starts_with(area, $%(n)d || '/'))"
_PHONE_QUERY = re.compile(r"[0-9+()\s-]+")
_DEVICES = (
    "SELECT device_id, format, model, status, resident_id, last_seen FROM devices"
    " WHERE resident_id = ANY($1) ORDER BY device_id"
)


async def add_resident(
    conn: asyncpg.Connection,
    *,
    name: str,
    address: str | None = None,
    home: tuple[float, float] | None = None,
    timezone: str = "Asia/Shanghai",
    area: str = "",
) -> int:
    """A new resident; returns the resident id. `area`: where they live in the hierarchy
    of jurisdiction, in its stored form (api/areas.py), '' for the top."""
    lat, lon = home if home is not None else (None, None)
    try:
        resident_id: int = await conn.fetchval(
            "INSERT INTO residents (name, address, home_lat, home_lon, timezone, area)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING resident_id",
            name, address, lat, lon, timezone, area,
        )  # fmt: skip
    except asyncpg.CheckViolationError as exc:
        raise RegistryError(f"resident {name!r}: {exc.detail or exc}") from exc
    return resident_id


async def create_resident(conn: asyncpg.Connection, profile: Mapping[str, Any]) -> dict[str, Any]:
    """A new resident from profile columns (unknown keys: ValueError); returns the row."""
    names = _known(profile)
    marks = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    try:
        row = await conn.fetchrow(
            f"INSERT INTO residents ({', '.join(names)}) VALUES ({marks}) RETURNING {_COLUMNS}",
            *(profile[n] for n in names),
        )
    except asyncpg.CheckViolationError as exc:
        raise RegistryError(f"resident: {exc.detail or exc}") from exc
    return dict(row)


async def get_resident(
    conn: asyncpg.Connection, resident_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """The resident's profile row, or None; `lock`: FOR UPDATE (a change follows)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM residents WHERE resident_id = $1"
        + (" FOR UPDATE" if lock else ""),
        resident_id,
    )
    return None if row is None else dict(row)


async def update_resident(
    conn: asyncpg.Connection, resident_id: int, changes: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Set the given profile columns; returns the row as it now is, or None (no resident)."""
    names = _known(changes)
    sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
    try:
        row = await conn.fetchrow(
            f"UPDATE residents SET {sets + ', ' if sets else ''}updated_at = now()"
            f" WHERE resident_id = $1 RETURNING {_COLUMNS}",
            resident_id, *(changes[n] for n in names),
        )  # fmt: skip
    except asyncpg.CheckViolationError as exc:
        raise RegistryError(f"resident {resident_id}: {exc.detail or exc}") from exc
    return None if row is None else dict(row)


async def list_residents(
    conn: asyncpg.Connection,
    *,
    scope: str,
    area: str | None = None,
    q: str | None = None,
    after: tuple[str, int] | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], tuple[str, int] | None]:
    """A page of the residents in `scope` (and in `area`, whose name, address or phone
    contains `q`), by name; returns them and, when more follow, the (name, id) key for the
    next page. A `q` that looks like a phone number (3 digits or more, spaces and + - ( )
    aside) also finds the phone written with other spacing."""
    args: list[Any] = [scope, area, like_pattern(q) if q else None, limit + 1, _digits(q)]
    where = [_IN_SCOPE % {"n": 1}, f"($2::text IS NULL OR {_IN_SCOPE % {'n': 2}})",
             "($3::text IS NULL OR name ILIKE $3 OR address ILIKE $3 OR phone ILIKE $3"
             " OR regexp_replace(phone, '[^0-9]', '', 'g') LIKE $5)"]  # fmt: skip
    if after is not None:
        args += list(after)
        where.append("(name, resident_id) > ($6, $7)")
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM residents WHERE {' AND '.join(where)}"
        " ORDER BY name, resident_id LIMIT $4",
        *args,
    )
    items = [dict(r) for r in rows[:limit]]
    more = len(rows) > limit
    return items, ((items[-1]["name"], items[-1]["resident_id"]) if more else None)


async def why_in_use(conn: asyncpg.Connection, resident_id: int) -> str | None:
    """Why the resident cannot be deleted (devices assigned, alerts not resolved), or None."""
    devices = await conn.fetchval(
        "SELECT count(*) FROM devices WHERE resident_id = $1", resident_id
    )
    alerts = await conn.fetchval(
        "SELECT count(*) FROM alerts WHERE resident_id = $1 AND status <> 'resolved'",
        resident_id,
    )
    reasons = [f"{devices} device(s) assigned"] if devices else []
    reasons += [f"{alerts} alert(s) not resolved"] if alerts else []
    return "; ".join(reasons) or None


async def delete_resident(conn: asyncpg.Connection, resident_id: int) -> None:
    """Delete a resident with their overrides, contact links and ladder (check
    `why_in_use` first: a device still pointing at them makes this fail)."""
    await conn.execute("DELETE FROM resident_rules WHERE resident_id = $1", resident_id)
    await conn.execute("DELETE FROM residents WHERE resident_id = $1", resident_id)


async def devices_of(conn: asyncpg.Connection, resident_ids: list[int]) -> list[dict[str, Any]]:
    """The devices of these residents: id, format, model, status, last seen."""
    return [dict(r) for r in await conn.fetch(_DEVICES, resident_ids)]


async def overrides_of(conn: asyncpg.Connection, resident_id: int) -> dict[str, Any]:
    """One resident's stored rule overrides ({} when none)."""
    value = await conn.fetchval(
        "SELECT overrides FROM resident_rules WHERE resident_id = $1", resident_id
    )
    return {} if value is None else dict(_json(value))


def _digits(q: str | None) -> str | None:
    """A LIKE pattern for the digits of a `q` that is a phone number, else None."""
    if not q or not _PHONE_QUERY.fullmatch(q):
        return None
    digits = re.sub(r"\D", "", q)
    return f"%{digits}%" if len(digits) >= 3 else None


def like_pattern(text: str) -> str:
    """An ILIKE pattern for "contains `text`", its own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _known(columns: Mapping[str, Any]) -> list[str]:
    # Column names go into the SQL text: only the profile's own are accepted.
    unknown = set(columns) - set(PROFILE_COLUMNS)
    if unknown:
        raise ValueError(f"not profile columns: {sorted(unknown)}")
    return [name for name in PROFILE_COLUMNS if name in columns]


async def set_rule_overrides(
    conn: asyncpg.Connection, resident_id: int, overrides: dict[str, Any]
) -> None:
    """Store a resident's overrides (replacing any); RegistryError for an unknown resident."""
    try:
        await conn.execute(
            "INSERT INTO resident_rules (resident_id, overrides) VALUES ($1, $2)"
            " ON CONFLICT (resident_id) DO UPDATE SET overrides = $2, updated_at = now()",
            resident_id, orjson.dumps(overrides).decode(),
        )  # fmt: skip
    except asyncpg.ForeignKeyViolationError as exc:
        raise RegistryError(f"no resident {resident_id}") from exc


async def rule_overrides(conn: asyncpg.Connection) -> dict[int, dict[str, Any]]:
    """Every resident's stored overrides, by resident id."""
    rows = await conn.fetch("SELECT resident_id, overrides FROM resident_rules")
    return {r["resident_id"]: _json(r["overrides"]) for r in rows}


async def device_rule_configs(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """For every device with a resident: its device_id, resident_id, the resident's
    timezone and overrides ({} when none): what the rules need per device."""
    rows = await conn.fetch(
        "SELECT d.device_id, r.resident_id, r.timezone,"
        " coalesce(rr.overrides, '{}'::jsonb) AS overrides"
        " FROM devices d JOIN residents r USING (resident_id)"
        " LEFT JOIN resident_rules rr USING (resident_id)"
    )
    return [{**dict(r), "overrides": _json(r["overrides"])} for r in rows]


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value
