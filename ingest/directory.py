"""The registry as ingest sees it: every device in memory, kept fresh by NOTIFY.

Ingest checks each message's device against it (unknown? disabled? which format and
model?), so a lookup must not cost a database round trip. Changes arrive by
`LISTEN carewatch_devices` (a trigger on `devices`); a full reload every `refresh_s` covers
notifications missed while the connection was down. A device not in memory is looked up
once more in the database before it is called unknown: its registration may have committed
a moment before its notification arrives.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import asyncpg

from devices.errors import RegistryError
from devices.registry import Device, get_device, list_devices

__all__ = ["DeviceDirectory"]

log = logging.getLogger(__name__)

_CHANNEL = "carewatch_devices"
# An unknown device that keeps publishing costs one query per this many seconds.
_MISS_TTL = 2.0


class DeviceDirectory:
    def __init__(self, *, database_url: str, refresh_s: float = 60.0) -> None:
        self._url = database_url
        self._refresh_s = refresh_s
        self._devices: dict[str, Device] = {}
        self._misses: dict[str, float] = {}
        self._conn: asyncpg.Connection | None = None
        # One connection serves notifications, misses and reloads: one query at a time.
        self._query = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._refresh_loop(), name="directory-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> DeviceDirectory:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __len__(self) -> int:
        return len(self._devices)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def cached(self, device_id: str) -> Device | None:
        """What ingest currently believes about a device, without asking the database."""
        return self._devices.get(device_id)

    async def lookup(self, device_id: str) -> Device | None:
        """The device, or None if the registry does not know it."""
        device = self._devices.get(device_id)
        if device is not None or not self.connected:
            return device
        missed = self._misses.get(device_id)
        if missed is not None and time.monotonic() - missed < _MISS_TTL:
            return None
        try:
            await self._reload_one(device_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Not known to be registered: refused to the DLQ (bytes kept), not lost.
            log.warning("device lookup failed", extra={"device_id": device_id, "error": repr(exc)})
            self._misses[device_id] = time.monotonic()
        return self._devices.get(device_id)

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._url)
        await conn.add_listener(_CHANNEL, self._notified)
        self._conn = conn
        await self._reload_all()

    async def _reload_all(self) -> None:
        assert self._conn is not None
        async with self._query:
            devices = await list_devices(self._conn)
        self._devices = {d.device_id: d for d in devices}
        self._misses.clear()
        log.info("device registry loaded", extra={"devices": len(self._devices)})

    async def _reload_one(self, device_id: str) -> None:
        assert self._conn is not None
        try:
            async with self._query:
                device = await get_device(self._conn, device_id)
            self._devices[device_id] = device
            self._misses.pop(device_id, None)
        except RegistryError:
            self._devices.pop(device_id, None)
            self._misses[device_id] = time.monotonic()

    def _notified(self, _conn: Any, _pid: int, _channel: str, device_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_one(device_id))
        task.add_done_callback(_log_failure)

    async def _refresh_loop(self) -> None:
        """Full reloads; reconnects (with jitter) when the connection is lost."""
        cap = 1.0
        while True:
            await asyncio.sleep(self._refresh_s if self.connected else random.uniform(0, cap))
            try:
                if self.connected:
                    await self._reload_all()
                else:
                    await self._connect()
                cap = 1.0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("device registry refresh failed", extra={"error": repr(exc)})
                cap = min(cap * 2, 30.0)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("device reload failed", extra={"error": repr(task.exception())})
