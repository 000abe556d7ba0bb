"""Simulated devices are registered devices: they get registry entries and broker accounts
like real ones, so the demo runs through the same checks production does."""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterator, Mapping

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from carewatch.broker_sync import sync_broker_auth, wait_for_account
from devices import registry
from devices.broker_auth import ensure_service_user
from devices.codecs import get_codec
from devices.errors import RegistryError
from plumbing.db import connect_pool
from plumbing.mqtt import with_login
from plumbing.settings import Settings
from simulators.fleet import FleetStats

__all__ = [
    "NETWORK_SERVER_USER",
    "FleetCollector",
    "network_server_url",
    "raise_fd_limit",
    "register_fleet",
]

# The broker account simulated LoRaWAN network servers (TTN, ChirpStack) publish with.
NETWORK_SERVER_USER = "carewatch-sim-lorawan"

log = logging.getLogger(__name__)


async def register_fleet(
    settings: Settings,
    device_ids: list[str],
    mqtt_url: str,
    formats: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Register (or re-key) every simulated device; returns the secrets of those with a
    broker account of their own (4G watches have none: they reach the broker through the
    gateway) once the broker admits them. `formats`: device id -> registry format (default
    native)."""
    formats = formats or {}
    pool = await connect_pool(settings.require_database_url(), min_size=1, max_size=1)
    secrets: dict[str, str] = {}
    try:
        async with pool.acquire() as conn, conn.transaction():
            for device_id in device_ids:
                secret = await _account(conn, device_id, formats.get(device_id, "native"))
                if secret is not None:
                    secrets[device_id] = secret
        async with pool.acquire() as conn:
            log.info(await sync_broker_auth(conn, settings))
    finally:
        await pool.close()
    if secrets:
        last = list(secrets)[-1]
        account = get_codec(formats.get(last, "native")).broker_account
        username = account(last)[0] if account is not None else last
        await wait_for_account(
            mqtt_url, username, secrets[last], protocol=settings.mqtt_protocol, settings=settings
        )
    return secrets


async def network_server_url(settings: Settings, mqtt_url: str) -> str:
    """`mqtt_url` with the account simulated LoRaWAN network servers publish with (role
    lorawan, re-keyed on every run), once the broker admits it."""
    pool = await connect_pool(settings.require_database_url(), min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            secret = await ensure_service_user(conn, NETWORK_SERVER_USER, "lorawan")
            log.info(await sync_broker_auth(conn, settings))
    finally:
        await pool.close()
    await wait_for_account(
        mqtt_url, NETWORK_SERVER_USER, secret, protocol=settings.mqtt_protocol, settings=settings
    )
    return with_login(mqtt_url, NETWORK_SERVER_USER, secret)


async def _account(conn: asyncpg.Connection, device_id: str, fmt: str) -> str | None:
    try:
        device = await registry.get_device(conn, device_id)
    except RegistryError:
        _, secret = await registry.add_device(conn, device_id=device_id, format=fmt)
        return secret
    if not device.active:
        await registry.set_status(conn, device_id, "active")
    if device.mqtt_username is None:
        return None
    return await registry.issue_secret(conn, device_id)


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file soft limit towards `wanted` (at most the hard limit):
    every simulated device holds a socket. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if ceiling > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        return ceiling
    return soft


class FleetCollector(Collector):
    """The fleet's counts on `carewatch simulate`'s /metrics, read when scraped."""

    def __init__(self, stats: FleetStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        events = CounterMetricFamily(
            "carewatch_sim_events", "events the fleet sent and had acknowledged", labels=["kind"]
        )
        for kind, count in sorted(stats.events_by_kind.items()):
            events.add_metric([kind], count)
        yield events
        for name, value, text in (
            ("messages", stats.messages, "messages sent and acknowledged"),
            ("sos", stats.sos_sent, "SOS presses sent"),
            ("duplicates", stats.duplicates, "events sent again on purpose (the same ids)"),
            ("late", stats.late, "events held back and sent late on purpose"),
            ("errors", stats.errors, "publishes failed or abandoned, devices crashed"),
            ("connect_errors", stats.connect_errors, "connection attempts that failed"),
        ):
            yield CounterMetricFamily(f"carewatch_sim_{name}", text, value=value)
        yield GaugeMetricFamily(
            "carewatch_sim_devices_connected", "devices that got a connection", stats.connected
        )
