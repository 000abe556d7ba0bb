"""The registry as ingest sees it: every device in memory, kept fresh by NOTIFY.

Ingest checks each message's device against it (unknown? disabled? which format and
model?), so a lookup must not cost a database round trip. Changes arrive by
`LISTEN carewatch_devices` (a trigger on `devices`); a full reload every `refresh_s` covers
notifications missed while the connection was down. A device not in memory is looked up
once more in the database before it is called unknown: its registration may have committed
a moment before its notification arrives. When that look-up cannot be made (the database
is down), the answer is "unavailable", not "unknown": ingest must not treat a device it
cannot check as one that is not registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from devices.errors import RegistryError
from devices.registry import Device, get_device, list_devices
from plumbing.backoff import Backoff
from plumbing.component import Component

__all__ = ["DeviceDirectory", "RegistryUnavailable"]

log = logging.getLogger(__name__)

_CHANNEL = "carewatch_devices"
# An unknown device that keeps publishing costs one query per this many seconds.
_MISS_TTL = 2.0
# Ingest handles messages in order, so a look-up that hangs (a half-open connection) must
# not hold every other device's messages for long; after a failure, uncached devices are
# answered "unavailable" at once for _MISS_TTL s instead of waiting again.
_LOOKUP_TIMEOUT_S = 2.0
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class RegistryUnavailable(Exception):
    """A device is not in memory and the database cannot be asked about it."""


class DeviceDirectory(Component):
    def __init__(self, *, database_url: str, refresh_s: float = 60.0) -> None:
        super().__init__(name="device-directory")
        self._url = database_url
        self._refresh_s = refresh_s
        self._devices: dict[str, Device] = {}
        self._misses: dict[str, float] = {}
        self._failed_at = float("-inf")  # the last look-up that could not be made
        self._conn: asyncpg.Connection | None = None
        # One connection serves notifications, misses and reloads: one query at a time.
        self._query = asyncio.Lock()
        self._lost = asyncio.Event()  # set when the connection drops: reconnect at once

    async def _open(self) -> None:
        await self._connect()
        # Restarted if it crashes: a frozen cache would refuse every new device as unknown.
        self.supervise("refresh", self._refresh_loop, restart=True)

    async def _close(self) -> None:
        await self.cancel_tasks()
        if self._conn is not None:
            self._conn.remove_termination_listener(self._terminated)
            await self._conn.close()
            self._conn = None

    def __len__(self) -> int:
        return len(self._devices)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def cached(self, device_id: str) -> Device | None:
        """What ingest currently believes about a device, without asking the database."""
        return self._devices.get(device_id)

    async def lookup(self, device_id: str) -> Device | None:
        """The device, or None if the registry does not know it.

        Raises RegistryUnavailable when the device is not in memory and the database cannot
        be reached to look it up."""
        device = self._devices.get(device_id)
        if device is not None:
            return device
        missed = self._misses.get(device_id)
        if missed is not None and time.monotonic() - missed < _MISS_TTL:
            return None  # the database said so a moment ago
        if not self.connected or time.monotonic() - self._failed_at < _MISS_TTL:
            raise RegistryUnavailable(f"{device_id!r} is not cached and the registry is down")
        try:
            await asyncio.wait_for(self._reload_one(device_id), _LOOKUP_TIMEOUT_S)
        except (*_DB_ERRORS, TimeoutError) as exc:
            self._failed_at = time.monotonic()
            log.warning("device lookup failed", extra={"device_id": device_id, "error": repr(exc)})
            raise RegistryUnavailable(f"looking up {device_id!r} failed: {exc!r}") from exc
        return self._devices.get(device_id)

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._url)
        conn.add_termination_listener(self._terminated)
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
        self.supervise("reload-notified", lambda: self._reload_notified(device_id), restart=True)

    async def _reload_notified(self, device_id: str) -> None:
        try:
            await self._reload_one(device_id)
        except _DB_ERRORS as exc:
            # The next full reload (at once, once the connection is back) covers it.
            log.warning("device reload failed", extra={"device_id": device_id, "error": repr(exc)})
            self._lost.set()

    def _terminated(self, _conn: Any) -> None:
        log.warning("device registry connection lost")
        self._lost.set()

    async def _refresh_loop(self) -> None:
        """Full reloads every `refresh_s`; when the connection is lost, reconnects at once,
        then with growing random delays while that fails."""
        backoff = Backoff(first=1.0, cap=30.0)
        while True:
            if self.connected:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), self._refresh_s)
            else:
                await backoff.wait()
            self._lost.clear()
            try:
                if self.connected:
                    await self._reload_all()
                else:
                    await self._connect()
                backoff.reset()
            except _DB_ERRORS as exc:
                log.warning("device registry refresh failed", extra={"error": repr(exc)})
