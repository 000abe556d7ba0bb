"""Residents and their rule overrides in PostgreSQL: the people devices belong to.

This module owns the `residents` and `resident_rules` tables; the CLI, the rules process
(alerts/resident_config.py), the tests and the API read and write them through it.
Overrides are stored as given: `carewatch rules check` validates them before they come
here, and the rules process falls back to the defaults for a resident whose stored
overrides no longer validate.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from devices.errors import RegistryError

__all__ = ["add_resident", "device_rule_configs", "rule_overrides", "set_rule_overrides"]


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
