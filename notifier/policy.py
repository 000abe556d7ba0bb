"""Whose policy an alert follows, and whom a step reaches.

A resident's own ladder first (PUT /api/v1/residents/{id}/escalation); without one, the
default for the alert's severity (PUT /api/v1/escalation-defaults/{severity}); without
that, the built-in one below. A policy is copied into the alert's chain when the alert
opens: steps are `{"contacts", "schedules", "resident_contacts", "wait_s"}`. Who those
targets are is read when the step is notified: whoever is on call then, the resident's
contacts as they are then.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from devices import contacts
from notifier import schedule_store

__all__ = ["BUILT_IN", "in_quiet_hours", "policy_for", "reach", "supervisors"]

# No configuration at all: a resident's contacts hear about anything that is not mere
# information; critical alerts go round the contacts three times, two minutes apart.
BUILT_IN: dict[str, dict[str, Any]] = {
    "critical": {"steps": [{"resident_contacts": True, "wait_s": 120}], "repeat": 2},
    "warning": {"steps": [{"resident_contacts": True, "wait_s": 600}], "repeat": 0},
    "info": {"steps": [], "repeat": 0},
}

_CONTACTS = """
SELECT c.contact_id, c.name, c.language, c.time_zone, c.quiet_from, c.quiet_to,
       ch.position, ch.type AS channel, ch.address
FROM contacts c JOIN contact_channels ch USING (contact_id)
WHERE c.contact_id = ANY($1::bigint[])
ORDER BY array_position($1::bigint[], c.contact_id), ch.position
"""


async def policy_for(conn: asyncpg.Connection, alert: dict[str, Any]) -> dict[str, Any]:
    if alert["resident_id"] is not None:
        ladder = await contacts.get_ladder(conn, alert["resident_id"])
        if ladder["steps"]:
            return {"steps": ladder["steps"], "repeat": ladder["repeat"], "source": "resident"}
    default = await contacts.get_default(conn, alert["severity"])
    if default is not None:
        return {"steps": default["steps"], "repeat": default["repeat"], "source": "default"}
    return {**BUILT_IN.get(alert["severity"], BUILT_IN["info"]), "source": "built-in"}


async def reach(
    conn: asyncpg.Connection, step: dict[str, Any], alert: dict[str, Any], at: datetime
) -> list[dict[str, Any]]:
    """The channels of everyone a step names at `at`, each contact once, in the step's
    order: its contacts, whoever is on call in its schedules, the resident's contacts."""
    ids: list[int] = list(step.get("contacts", []))
    schedules = step.get("schedules", [])
    if schedules:
        on_call = await schedule_store.on_call_now(conn, schedules, at)
        ids += [c for s in schedules for c in on_call.get(s, [])]
    if step.get("resident_contacts") and alert["resident_id"] is not None:
        ids += await conn.fetchval(
            "SELECT coalesce(array_agg(contact_id ORDER BY contact_id), '{}')"
            " FROM resident_contacts WHERE resident_id = $1",
            alert["resident_id"],
        )
    return await channels_of(conn, list(dict.fromkeys(ids)))


async def supervisors(
    conn: asyncpg.Connection, alert: dict[str, Any], at: datetime
) -> list[dict[str, Any]]:
    """The channels of the supervisor(s) on duty for the alert's area."""
    ids = await schedule_store.supervisors_on_duty(conn, alert["area"], at)
    return await channels_of(conn, ids)


async def channels_of(conn: asyncpg.Connection, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    return [dict(r) for r in await conn.fetch(_CONTACTS, ids)]


def in_quiet_hours(target: dict[str, Any], at: datetime) -> datetime | None:
    """When the contact's quiet hours end, if `at` falls in them; else None."""
    start, end = target.get("quiet_from"), target.get("quiet_to")
    if start is None or end is None or start == end:
        return None
    try:
        zone = ZoneInfo(target.get("time_zone") or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("Asia/Shanghai")
    local = at.astimezone(zone)
    now = local.time()
    if start < end:  # 12:00-14:00: within the day
        quiet, ends_tomorrow = start <= now < end, False
    else:  # 22:00-07:00: across midnight
        quiet, ends_tomorrow = now >= start or now < end, now >= start
    if not quiet:
        return None
    day = local.date() + timedelta(days=1 if ends_tomorrow else 0)
    return datetime.combine(day, end.replace(tzinfo=None), zone)
