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
from api.records import device_record
from devices import registry

__all__ = ["actor", "locked_device", "os_user", "record"]


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


async def locked_device(conn: asyncpg.Connection, device_id: str) -> dict[str, Any]:
    """`device_record` of the device as it is, its row locked until the transaction ends;
    DeviceNotFound."""
    device, area = await registry.device_and_area(conn, device_id, lock=True)
    return device_record(device, area)
