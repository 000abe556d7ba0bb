"""Simulated devices are registered devices: they get registry entries and broker accounts
like real ones, so the demo runs through the same checks production does."""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterator, Mapping, Sequence

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from carewatch.broker_accounts import put_accounts, wait_for_account
from carewatch.simulate_people import give_people
from devices import registry
from devices.broker_auth import Account, device_account, ensure_service_user, service_account
from devices.errors import RegistryError
from plumbing.db import connect_pool
from plumbing.mqtt import with_login
from plumbing.settings import Settings
from simulators.fleet import FleetStats
from simulators.people import Person

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
    people: Sequence[Person] = (),
) -> dict[str, str]:
    """Register (or re-key) every simulated device; returns the secrets of those with a
    broker account of their own (4G watches have none: they reach the broker through the
    gateway) once the broker admits them. `formats`: device id -> registry format (default
    native). `people`: residents for those devices (simulators/people.py), created for the
    devices that have none yet (carewatch/simulate_people.py)."""
    formats = formats or {}
    pool = await connect_pool(settings.require_database_url(), min_size=1, max_size=1)
    accounts: list[tuple[Account, str]] = []
    try:
        async with pool.acquire() as conn, conn.transaction():
            for device_id in device_ids:
                found = await _account(conn, device_id, formats.get(device_id, "native"))
                if found is not None:
                    accounts.append(found)
            if people:
                created, kept = await give_people(conn, people)
                log.info("simulated residents: %d new, %d kept", created, kept)
    finally:
        await pool.close()
    log.info(await put_accounts(settings, accounts))
    secrets = {a.client_id: s for a, s in accounts if a.client_id is not None}
    if accounts:
        last, secret = accounts[-1]
        await wait_for_account(
            mqtt_url, last.username, secret, client_id=last.client_id,
            protocol=settings.mqtt_protocol,
        )  # fmt: skip
    return secrets


async def network_server_url(settings: Settings, mqtt_url: str) -> str:
    """`mqtt_url` with the account simulated LoRaWAN network servers publish with (role
    lorawan, re-keyed on every run), once the broker admits it."""
    pool = await connect_pool(settings.require_database_url(), min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            secret = await ensure_service_user(conn, NETWORK_SERVER_USER, "lorawan")
    finally:
        await pool.close()
    account = service_account(NETWORK_SERVER_USER, "lorawan")
    log.info(await put_accounts(settings, [(account, secret)]))
    await wait_for_account(mqtt_url, NETWORK_SERVER_USER, secret, protocol=settings.mqtt_protocol)
    return with_login(mqtt_url, NETWORK_SERVER_USER, secret)


async def _account(
    conn: asyncpg.Connection, device_id: str, fmt: str
) -> tuple[Account, str] | None:
    """The device registered (or re-keyed and enabled), and its broker account with its
    new secret; None for a device without an account of its own."""
    try:
        device = await registry.get_device(conn, device_id)
    except RegistryError:
        device, secret = await registry.add_device(conn, device_id=device_id, format=fmt)
    else:
        if not device.active:
            device = await registry.set_status(conn, device_id, "active")
        secret = await registry.issue_secret(conn, device_id) if device.mqtt_username else None
    if device.mqtt_username is None or secret is None:
        return None
    account = device_account(device_id, device.format, device.mqtt_username)
    return (account, secret) if account is not None else None


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
