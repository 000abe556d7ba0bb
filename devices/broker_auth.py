"""Broker accounts as the registry defines them: who may log in, as which client, and
publish or read which topics.

Each device that logs in itself gets one account, bound to its device id as MQTT client
id (no device can take another client's session, ingest's included), that may publish
only its own topics; carewatch's processes and integrations get service accounts by role.
A disabled device keeps its account, disabled: the broker refuses it, and enabling it
needs no new secret. carewatch/broker_accounts.py applies these to the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from devices.codecs import get_codec
from devices.credentials import hash_secret, new_secret
from devices.errors import RegistryError

__all__ = [
    "ROLE_TOPICS",
    "Account",
    "device_account",
    "ensure_service_user",
    "load_accounts",
    "service_account",
]

# What each service role may do. The gateway publishes raw watch frames for the watch codec;
# network-server integrations publish TTN / ChirpStack uplinks.
ROLE_TOPICS: dict[str, tuple[tuple[str, str], ...]] = {
    "ingest": (("read", "#"),),
    "gateway": (("write", "carewatch/v1/watch/+/up"), ("write", "carewatch/v1/watch/+/alarm")),
    "lorawan": (("write", "v3/+/devices/+/up"), ("write", "application/+/device/+/event/up")),
}


@dataclass(frozen=True)
class Account:
    username: str
    secret_hash: str | None  # None: not known here (the caller has the secret itself)
    rules: tuple[tuple[str, str], ...]  # (access, topic): access is read / write
    role: str  # "device:<username>" for a device's own; "service:<role>" shared by a role
    client_id: str | None = None  # the only client id it may connect with (devices)
    enabled: bool = True


def device_account(
    device_id: str,
    format: str,
    username: str,
    secret_hash: str | None = None,
    *,
    enabled: bool = True,
) -> Account | None:
    """The account of a device that logs in itself (None for one that does not)."""
    account = get_codec(format).broker_account
    if account is None:
        return None
    _, topics = account(device_id)
    rules = tuple(("write", topic) for topic in topics)
    return Account(username, secret_hash, rules, f"device:{username}", device_id, enabled)


def service_account(username: str, role: str, secret_hash: str | None = None) -> Account:
    if role not in ROLE_TOPICS:
        raise RegistryError(f"role must be one of {', '.join(ROLE_TOPICS)}, not {role!r}")
    return Account(username, secret_hash, ROLE_TOPICS[role], f"service:{role}")


async def load_accounts(conn: asyncpg.Connection) -> list[Account]:
    """Every account the registry defines: services, then devices (disabled ones too)."""
    services = await conn.fetch(
        "SELECT username, role, secret_hash FROM mqtt_service_users ORDER BY username"
    )
    accounts = [service_account(r["username"], r["role"], r["secret_hash"]) for r in services]
    rows = await conn.fetch(
        "SELECT device_id, format, mqtt_username, secret_hash, status FROM devices"
        " WHERE mqtt_username IS NOT NULL AND secret_hash IS NOT NULL ORDER BY device_id"
    )
    for row in rows:
        account = device_account(
            row["device_id"], row["format"], row["mqtt_username"], row["secret_hash"],
            enabled=row["status"] == "active",
        )  # fmt: skip
        if account is not None:
            accounts.append(account)
    return accounts


async def ensure_service_user(conn: asyncpg.Connection, username: str, role: str) -> str:
    """Create or re-key a service account; returns its new secret."""
    service_account(username, role)  # checks the role
    secret = new_secret()
    await conn.execute(
        "INSERT INTO mqtt_service_users (username, role, secret_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT (username) DO UPDATE SET role = $2, secret_hash = $3, updated_at = now()",
        username,
        role,
        hash_secret(secret),
    )
    return secret
