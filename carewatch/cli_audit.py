"""The CLI's audit rows: the same trail the API writes (api/audit.py), with the actor
`cli:<OS user>` and the same action names, targets and object shapes as the API's routes
(api/routes/devices.py, api/routes/residents.py), so a change reads the same whichever way
it was made. Call `record` in the transaction of the change. Secrets are never recorded.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

import asyncpg

from api import audit
from devices import registry

__all__ = ["actor", "device_item", "locked_device", "os_user", "record", "resident_item"]


def os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def actor() -> str:
    """Who changes things from the command line, as the audit trail names them."""
    return f"cli:{os_user()}"


async def record(
    conn: asyncpg.Connection,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    await audit.record(
        conn, actor=actor(), action=action, target=target, before=before, after=after
    )


def device_item(device: registry.Device, area: str) -> dict[str, Any]:
    """A device as the API shows it and the audit trail records it (no secret)."""
    return {
        "device_id": device.device_id, "format": device.format, "model": device.model,
        "resident_id": device.resident_id, "area": area, "status": device.status,
        "mqtt_username": device.mqtt_username, "clock_tz": device.clock_tz,
        "last_seen": device.last_seen,
    }  # fmt: skip


async def locked_device(conn: asyncpg.Connection, device_id: str) -> dict[str, Any]:
    """`device_item` of the device as it is, its row locked until the transaction ends;
    DeviceNotFound."""
    device, area = await registry.device_and_area(conn, device_id, lock=True)
    return device_item(device, area)


def resident_item(row: dict[str, Any]) -> dict[str, Any]:
    """A resident's profile row as the API shows it and the audit trail records it."""
    split = ("home_lat", "home_lon", "gp_name", "gp_phone")
    out = {k: v for k, v in row.items() if k not in split}
    out["home"] = (
        None if row["home_lat"] is None else {"lat": row["home_lat"], "lon": row["home_lon"]}
    )
    out["gp"] = (
        None if row["gp_name"] is None else {"name": row["gp_name"], "phone": row["gp_phone"]}
    )
    out["languages"] = list(row["languages"])
    return out
