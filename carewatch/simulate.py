"""Simulated devices are registered devices: they get registry entries and broker accounts
like real ones, so the demo runs through the same checks production does."""

from __future__ import annotations

import logging

import asyncpg

from carewatch.broker_sync import sync_broker_auth, wait_for_account
from carewatch.db import connect_pool
from carewatch.settings import Settings
from devices import registry
from devices.errors import RegistryError

__all__ = ["register_fleet"]

log = logging.getLogger(__name__)


async def register_fleet(
    settings: Settings, device_ids: list[str], mqtt_url: str
) -> dict[str, str]:
    """Register (or re-key) every simulated device; returns their secrets once the broker
    admits them."""
    pool = await connect_pool(settings.require_database_url(), min_size=1, max_size=1)
    secrets: dict[str, str] = {}
    try:
        async with pool.acquire() as conn, conn.transaction():
            for device_id in device_ids:
                secrets[device_id] = await _account(conn, device_id)
        async with pool.acquire() as conn:
            log.info(await sync_broker_auth(conn, settings))
    finally:
        await pool.close()
    if device_ids:
        last = device_ids[-1]
        await wait_for_account(mqtt_url, last, secrets[last], protocol=settings.mqtt_protocol)
    return secrets


async def _account(conn: asyncpg.Connection, device_id: str) -> str:
    try:
        device = await registry.get_device(conn, device_id)
    except RegistryError:
        _, secret = await registry.add_device(conn, device_id=device_id, format="native")
        assert secret is not None
        return secret
    if not device.active:
        await registry.set_status(conn, device_id, "active")
    return await registry.issue_secret(conn, device_id)
