"""Bringing the broker's accounts in line with the registry after a change.

The embedded mosquitto re-reads its password and ACL files on SIGHUP; `carewatch up`
records where they are and its pid in stack.json. For an external broker, set
`CAREWATCH_MQTT_AUTH_DIR` to the directory its `password_file` / `acl_file` point at and
reload it yourself (e.g. `systemctl reload mosquitto`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import asyncpg
import psutil

from devices.broker_auth import load_accounts, write_auth_files
from plumbing.mqtt import MqttClient, MqttError, with_login
from plumbing.settings import Settings

__all__ = ["reload_broker", "sync_broker_auth", "wait_for_account"]

log = logging.getLogger(__name__)


async def sync_broker_auth(conn: asyncpg.Connection, settings: Settings) -> str:
    """Rewrite the broker's files from the registry and reload it; says what it did."""
    auth_dir = settings.mqtt_auth_dir or _stack_path(settings, "mqtt_auth_dir")
    if auth_dir is None:
        return "broker accounts not written: set CAREWATCH_MQTT_AUTH_DIR for an external broker"
    accounts = await load_accounts(conn)
    write_auth_files(auth_dir, accounts)
    if reload_broker(settings):
        return f"broker reloaded with {len(accounts)} accounts ({auth_dir})"
    return f"wrote {len(accounts)} accounts to {auth_dir}; reload the broker to apply them"


def reload_broker(settings: Settings) -> bool:
    """SIGHUP the embedded mosquitto (False if there is none to signal).

    mosquitto drops a SIGHUP that arrives while it is still reloading (it clears its reload
    flag when the reload ends), so files written during a reload may stay unread until the
    next signal: whoever needs an account loaded checks, and signals again
    (`wait_for_account`)."""
    pid = settings.from_stack("mqtt_pid") if settings.mqtt_auth_dir is None else None
    if isinstance(pid, int) and _is_mosquitto(pid):
        os.kill(pid, signal.SIGHUP)
        return True
    return False


async def wait_for_account(
    url: str,
    username: str,
    secret: str,
    *,
    protocol: str = "5",
    within: float = 10.0,
    settings: Settings | None = None,
) -> None:
    """Return once the broker admits this account (a reload takes a moment); MqttError after
    `within` seconds. With `settings`, each failed try signals the embedded broker again, in
    case the signal that should have loaded the account was dropped (`reload_broker`)."""
    deadline = time.monotonic() + within
    while True:
        client = MqttClient(
            url=with_login(url, username, secret),
            client_id=f"probe-{username}-{os.getpid()}",
            protocol=protocol,  # type: ignore[arg-type]
        )
        try:
            await client.start(timeout=2.0)
            await client.stop()
            return
        except MqttError:
            if time.monotonic() > deadline:
                raise
            if settings is not None:
                reload_broker(settings)
            await asyncio.sleep(0.1)


def _stack_path(settings: Settings, key: str) -> Path | None:
    value = settings.from_stack(key)
    return Path(value) if isinstance(value, str) and value else None


def _is_mosquitto(pid: int) -> bool:
    try:
        return "mosquitto" in psutil.Process(pid).name()
    except psutil.Error:
        return False
