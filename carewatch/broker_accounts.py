"""The broker's accounts, kept in step with the registry over the network.

One interface for every change to who may log in (`BrokerAccounts`), with one backend:
mosquitto's dynamic-security plugin, managed by an admin account over MQTT
(plumbing/dynsec.py). A change is sent as commands and returns once the broker has
confirmed it: a new device can connect at once, a disabled one is refused (and a
connected one disconnected) at once, from any host that reaches the broker; no signal, no
shared file. What EMQX needs instead is in docs/broker-accounts.md.

The registry keeps only secrets' hashes, and the plugin takes a new client's secret in
plain text. So the embedded stack writes the plugin's file from the registry before it
starts the broker (`dynsec_config`: the hashes are in the plugin's own format), and each
later change is sent by whoever holds the new secret: the command that generated it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from devices.broker_auth import Account
from plumbing.component import Component
from plumbing.dynsec import (
    ADMIN_ROLE,
    DynsecClient,
    DynsecRefused,
    admin_role,
    config_file,
    password_fields,
)
from plumbing.mqtt import MqttClient, MqttError, with_login
from plumbing.settings import Settings

__all__ = [
    "ADMIN_USER",
    "NOT_CONFIGURED",
    "BrokerAccounts",
    "BrokerNotConfigured",
    "accounts_for",
    "dynsec_config",
    "enable_accounts",
    "put_accounts",
    "sync_roles",
    "wait_for_account",
]

log = logging.getLogger(__name__)

ADMIN_USER = "carewatch-admin"
_ANONYMOUS_ROLE = "anonymous"  # dev mode only: clients without an account


def dynsec_config(
    accounts: Iterable[Account], *, admin_hash: str, anonymous: bool = False
) -> bytes:
    """The plugin's file for these accounts, with carewatch's admin account."""
    accounts = list(accounts)
    roles = {account.role: _role(account) for account in accounts}
    clients = [_file_client(a, a.secret_hash) for a in accounts if a.secret_hash]
    clients.append(
        {"username": ADMIN_USER, "roles": [{"rolename": ADMIN_ROLE}], **password_fields(admin_hash)}
    )
    all_roles = [admin_role(), *roles.values()]
    if anonymous:
        all_roles.append(_anonymous_role())
    return config_file(clients, all_roles, anonymous_roles=[_ANONYMOUS_ROLE] if anonymous else ())


class BrokerAccounts(Component):
    """Creates, re-keys, enables and disables accounts on the broker, confirmed."""

    def __init__(self, *, admin_url: str, protocol: str = "5") -> None:
        super().__init__(name="broker-accounts")
        self._dynsec = DynsecClient(url=admin_url, protocol=protocol)

    async def _open(self) -> None:
        await self._dynsec.start()

    async def _close(self) -> None:
        await self._dynsec.stop()

    async def put(self, accounts: Sequence[tuple[Account, str]]) -> None:
        """Each account with this secret: created, or brought in line where it exists
        (its role's rights, client id, secret, enabled or not), so a repeated put
        converges. Returns once the broker has confirmed every change."""
        await self.put_roles(account for account, _ in accounts)
        existed = await self._dynsec.upsert([(_create(a, s), _modify(a, s)) for a, s in accounts])
        # A new client is enabled; one that was there may have been disabled.
        await self._dynsec.check(
            [_enable(a) for (a, _), there in zip(accounts, existed, strict=True)
             if there or not a.enabled]
        )  # fmt: skip

    async def put_roles(self, accounts: Iterable[Account]) -> int:
        """The roles these accounts use, created or given exactly the rights the registry
        says (no secret needed: the clients themselves are left as they are). Returns how
        many roles, once the broker has confirmed them."""
        roles = {account.role: _role(account) for account in accounts}
        await self._dynsec.upsert(
            [
                ({"command": "createRole", **r}, {"command": "modifyRole", **r})
                for r in roles.values()
            ]
        )
        return len(roles)

    async def set_enabled(self, usernames: list[str], enabled: bool) -> None:
        """Enable, or disable (the broker disconnects a connected client), confirmed."""
        commands = [
            {"command": "enableClient" if enabled else "disableClient", "username": username}
            for username in usernames
        ]
        try:
            await self._dynsec.check(commands)
        except DynsecRefused as exc:
            if exc.reason != "Client not found":
                raise
            raise DynsecRefused(
                exc.command,
                "the broker has no such account; `carewatch devices rekey` creates it",
            ) from exc


def accounts_for(settings: Settings) -> BrokerAccounts | None:
    """The broker's accounts as this process can reach them: an admin account from
    CAREWATCH_MQTT_ADMIN_URL, or the one `carewatch up` recorded; None without one."""
    url = settings.mqtt_admin_url
    if url is None:
        urls = settings.from_stack("mqtt_urls")
        url = urls.get("admin") if isinstance(urls, dict) else None
    if not url:
        return None
    protocol = settings.from_stack("mqtt_protocol") or settings.mqtt_protocol
    return BrokerAccounts(admin_url=str(url), protocol=str(protocol))


async def wait_for_account(
    url: str,
    username: str,
    secret: str,
    *,
    client_id: str | None = None,
    protocol: str = "5",
    within: float = 10.0,
) -> None:
    """Return once the broker admits this login; MqttError after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        client = MqttClient(
            url=with_login(url, username, secret),
            client_id=client_id or f"probe-{username}-{uuid.uuid4().hex[:6]}",
            protocol=protocol,  # type: ignore[arg-type]
        )
        try:
            await client.start(timeout=2.0)
            await client.stop()
            return
        except MqttError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def _role(account: Account) -> dict[str, Any]:
    acls = []
    for access, topic in account.rules:
        if access == "write":
            acls.append({"acltype": "publishClientSend", "topic": topic, "allow": True})
        else:
            acls.append({"acltype": "subscribePattern", "topic": topic, "allow": True})
            acls.append({"acltype": "publishClientReceive", "topic": topic, "allow": True})
    return {"rolename": account.role, "acls": acls}


def _anonymous_role() -> dict[str, Any]:
    """Development only: publish and read everything but the broker's control topics."""
    return _role(Account("", None, (("write", "#"), ("read", "#")), _ANONYMOUS_ROLE))


def _client(account: Account, password: dict[str, Any]) -> dict[str, Any]:
    client: dict[str, Any] = {
        "username": account.username,
        "roles": [{"rolename": account.role}],
        **password,
    }
    if account.client_id is not None:
        client["clientid"] = account.client_id
    return client


def _file_client(account: Account, secret_hash: str) -> dict[str, Any]:
    client = _client(account, password_fields(secret_hash))
    return {**client, "disabled": True} if not account.enabled else client


def _create(account: Account, secret: str) -> dict[str, Any]:
    return {"command": "createClient", **_client(account, {"password": secret})}


def _modify(account: Account, secret: str) -> dict[str, Any]:
    return {"command": "modifyClient", **_client(account, {"password": secret})}


def _enable(account: Account) -> dict[str, Any]:
    return {
        "command": "enableClient" if account.enabled else "disableClient",
        "username": account.username,
    }


NOT_CONFIGURED = (
    "broker accounts not changed: no admin account to change them with (set "
    "CAREWATCH_MQTT_ADMIN_URL, or start the embedded stack with `carewatch up`)"
)


class BrokerNotConfigured(MqttError):
    """No admin account to change the broker's accounts with."""


async def put_accounts(settings: Settings, accounts: Sequence[tuple[Account, str]]) -> str:
    """`BrokerAccounts.put` through the broker `settings` lead to; says what it did."""
    if not accounts:
        return "broker: no accounts to change"
    broker = accounts_for(settings)
    if broker is None:
        return NOT_CONFIGURED
    async with broker:
        await broker.put(accounts)
    return f"broker: {len(accounts)} account(s) in place, confirmed by the broker"


async def sync_roles(settings: Settings, accounts: Sequence[Account]) -> str:
    """`BrokerAccounts.put_roles` through the broker `settings` lead to. For a broker that
    keeps running across an upgrade which gives accounts new topics (the alarm topic):
    `carewatch up` writes every role afresh when it starts its broker, a broker of your
    own keeps the rights it was given. Raises BrokerNotConfigured without an admin."""
    broker = accounts_for(settings)
    if broker is None:
        raise BrokerNotConfigured(NOT_CONFIGURED)
    async with broker:
        count = await broker.put_roles(accounts)
    return f"broker: {count} role(s) of {len(accounts)} account(s) in line with the registry"


async def enable_accounts(settings: Settings, usernames: list[str], enabled: bool) -> str:
    """`BrokerAccounts.set_enabled` through the broker `settings` lead to."""
    broker = accounts_for(settings)
    if broker is None:
        return NOT_CONFIGURED
    async with broker:
        await broker.set_enabled(usernames, enabled)
    state = "enabled" if enabled else "disabled (and disconnected)"
    return f"broker: {', '.join(usernames)} {state}, confirmed by the broker"
