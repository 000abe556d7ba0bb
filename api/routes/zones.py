"""`/api/v1/residents/{id}/zones`: a resident's safe zones, as the geofence rule applies
them.

The zones are `geofence.zones` in the resident's rule overrides (the `resident_rules` row
`carewatch residents configure` writes): the data the rules worker loads, merged over the
defaults, within `ResidentConfigs`' refresh (30 s). A change is validated as the rules
validate overrides (alerts/rules/config.py `check`: shapes, polygons, windows, unique
names), with the rest of the resident's overrides, and written with an audit row in one
transaction, the resident's row locked so two edits do not lose one another.

Reading needs any role in the resident's area; changing needs admin.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, HTTPException, Path, Response

from alerts.rules.config import DEFAULTS_PATH, RulesConfig, check, effective, load_defaults
from api import audit
from api.deps import Admin, Conn, CurrentUser, forbid_outside
from api.device_models import ZoneIn, ZonePage, from_rule, to_rule
from api.models import Error
from api.routes import API_PREFIX
from api.users import User
from devices import residents

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Error} for code in (401, 403, 404, 422)}
router = APIRouter(prefix=f"{API_PREFIX}/residents", tags=["zones"], responses=_ERRORS)

ResidentId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ZoneName = Annotated[str, Path(min_length=1, max_length=128)]
Zones = Annotated[list[ZoneIn], Body(max_length=100, description="every zone; replaces all")]


@functools.cache
def _defaults() -> tuple[str, RulesConfig]:
    """The shipped defaults, as text (for `check`) and as the rules worker loads them."""
    text = DEFAULTS_PATH.read_text(encoding="utf-8")
    return text, load_defaults(DEFAULTS_PATH)


@router.get(
    "/{resident_id}/zones",
    response_model=ZonePage,
    summary="a resident's safe zones",
)
async def get_zones(conn: Conn, user: CurrentUser, resident_id: ResidentId) -> dict[str, Any]:
    resident, overrides = await _resident(conn, user, resident_id)
    return {"items": _applied(resident, overrides), "next": None}


@router.put(
    "/{resident_id}/zones",
    response_model=ZonePage,
    summary="replace the safe zones",
)
async def put_zones(
    conn: Conn, user: Admin, resident_id: ResidentId, zones: Zones
) -> dict[str, Any]:
    async with conn.transaction():
        resident, overrides = await _resident(conn, user, resident_id, lock=True)
        before = _applied(resident, overrides)
        await _store(conn, user, resident, overrides, [to_rule(z) for z in zones], before)
        return {"items": _applied(resident, await residents.overrides_of(conn, resident_id))}


@router.delete("/{resident_id}/zones/{name}", status_code=204, summary="remove one safe zone")
async def delete_zone(conn: Conn, user: Admin, resident_id: ResidentId, name: ZoneName) -> Response:
    async with conn.transaction():
        resident, overrides = await _resident(conn, user, resident_id, lock=True)
        before = _applied(resident, overrides)
        if not any(zone["name"] == name for zone in before):
            raise HTTPException(404, f"resident {resident_id} has no zone {name!r}")
        current = _config(resident, overrides).geofence.zones
        kept = [z.model_dump(mode="json", exclude_none=True) for z in current if z.name != name]
        await _store(conn, user, resident, overrides, kept, before)
    return Response(status_code=204)


async def _resident(
    conn: asyncpg.Connection, user: User, resident_id: int, *, lock: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The resident's row and stored overrides: 404 unknown, 403 outside the user's area."""
    resident = await residents.get_resident(conn, resident_id, lock=lock)
    if resident is None:
        raise HTTPException(404, f"no resident {resident_id}")
    forbid_outside(user, resident["area"], f"resident {resident_id}")
    return resident, await residents.overrides_of(conn, resident_id)


def _with_timezone(resident: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    # As alerts/resident_config.py merges them: the resident's zone unless overridden.
    own = overrides.get("resident")
    return {**overrides, "resident": {"timezone": resident["timezone"],
                                      **(own if isinstance(own, dict) else {})}}  # fmt: skip


def _config(resident: dict[str, Any], overrides: dict[str, Any]) -> RulesConfig:
    """The configuration the rules apply: the defaults where the overrides do not
    validate (as the rules worker falls back)."""
    defaults = _defaults()[1]
    try:
        return effective(defaults, _with_timezone(resident, overrides))
    except ValueError:
        return defaults


def _applied(resident: dict[str, Any], overrides: dict[str, Any]) -> list[dict[str, Any]]:
    zones = _config(resident, overrides).geofence.zones
    return [from_rule(z.model_dump(mode="json")) for z in zones]


async def _store(
    conn: asyncpg.Connection,
    user: User,
    resident: dict[str, Any],
    overrides: dict[str, Any],
    zones: list[dict[str, Any]],
    before: list[dict[str, Any]],
) -> None:
    """Write `zones` into the resident's overrides, validated as the rules validate them."""
    geofence = overrides.get("geofence")
    geofence = geofence if isinstance(geofence, dict) else {}
    changed = {**overrides, "geofence": {**geofence, "zones": zones}}
    resident_id = resident["resident_id"]
    problems = check(_defaults()[0], {str(resident_id): _with_timezone(resident, changed)})
    if problems:
        raise HTTPException(422, "; ".join(problems))
    await residents.set_rule_overrides(conn, resident_id, changed)
    await audit.record(
        conn, actor=user.name, action="resident.zones", target=f"resident:{resident_id}",
        before={"zones": before}, after={"zones": _applied(resident, changed)},
    )  # fmt: skip
