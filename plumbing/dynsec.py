"""mosquitto's dynamic-security plugin: broker accounts managed over MQTT.

The plugin keeps clients (user name, password hash, an optional client id they are bound
to, roles), roles (topic ACLs) and groups in a JSON file it reads at start and rewrites on
every change. Changes arrive as commands published to `$CONTROL/dynamic-security/v1` by a
client with the admin role; the plugin answers each command on `.../response` (with the
`correlationData` we gave it), so a change is confirmed, applied, within milliseconds: no
signal to send, no file to share with the broker's host.

Measured with mosquitto 2.0.11 (docs/broker-accounts.md): every command rewrites the whole
file, so one command costs ~50 ms with 1,000 clients and ~130 ms with 10,000; a bulk
import of thousands of accounts is better written into the file while the broker is
stopped (`config_file`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
import paho.mqtt.client as paho

from plumbing.component import Component
from plumbing.mqtt import MqttClient, MqttError

__all__ = [
    "ADMIN_ROLE",
    "CONTROL_TOPIC",
    "DynsecClient",
    "DynsecError",
    "admin_role",
    "config_file",
    "password_fields",
]

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
_RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
ADMIN_ROLE = "dynsec-admin"
# Commands per message (see DynsecClient.run): with 10,000 accounts, about 6 s of work.
_CHUNK = 50

# What a client may do without a role allowing it: nothing but receive what it subscribed
# to (and it may subscribe to nothing), so a role is needed for every right.
_DEFAULT_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


class DynsecError(MqttError):
    """The plugin refused a command (its own message says why), or did not answer."""


def password_fields(mosquitto_hash: str) -> dict[str, Any]:
    """A mosquitto 2 password-file hash (`$7$<rounds>$<b64 salt>$<b64 sha512 pbkdf2>`) as
    the plugin's client fields: the same algorithm, so no secret needs to be known."""
    try:
        _, kind, rounds, salt, digest = mosquitto_hash.split("$")
        if kind != "7":
            raise ValueError(f"hash type ${kind}$")
        return {"password": digest, "salt": salt, "iterations": int(rounds)}
    except ValueError as exc:
        raise DynsecError(f"not a mosquitto PBKDF2-SHA512 ($7$) hash: {exc}") from exc


def admin_role() -> dict[str, Any]:
    """The role of the client that manages accounts: the control topics, nothing else."""
    return {
        "rolename": ADMIN_ROLE,
        "acls": [
            {"acltype": acl, "topic": f"{CONTROL_TOPIC}/#", "allow": True}
            for acl in ("publishClientSend", "publishClientReceive", "subscribePattern")
        ],
    }


def config_file(
    clients: Iterable[dict[str, Any]],
    roles: Iterable[dict[str, Any]],
    *,
    anonymous_roles: Iterable[str] = (),
) -> bytes:
    """The plugin's configuration file, for writing before the broker starts.

    `anonymous_roles`: roles of clients that log in without a user name (only where the
    broker's `allow_anonymous` is on)."""
    config: dict[str, Any] = {
        "clients": list(clients),
        "roles": list(roles),
        "groups": [],
        "defaultACLAccess": _DEFAULT_ACCESS,
    }
    anonymous = [{"rolename": role} for role in anonymous_roles]
    if anonymous:
        config["groups"] = [{"groupname": "anonymous", "roles": anonymous, "clients": []}]
        config["anonymousGroup"] = "anonymous"
    return orjson.dumps(config, option=orjson.OPT_INDENT_2)


class DynsecClient(Component):
    """An admin connection that sends commands and waits for the plugin's answers."""

    def __init__(
        self,
        *,
        url: str,
        client_id: str | None = None,
        protocol: str = "5",
        timeout: float = 10.0,
    ) -> None:
        super().__init__(name="dynsec")
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._mqtt = MqttClient(
            url=url,
            client_id=client_id or f"carewatch-dynsec-{uuid.uuid4().hex[:12]}",
            protocol=protocol,  # type: ignore[arg-type]
            subscriptions=(_RESPONSE_TOPIC,),
            on_message=self._answered,
        )

    async def _open(self) -> None:
        await self._mqtt.start(timeout=self._timeout)
        await self._mqtt.subscribed()

    async def _close(self) -> None:
        await self._mqtt.stop()
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(DynsecError("connection closed before the answer"))
        self._waiting.clear()

    async def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The plugin's answer to each command, in order (a refused one has an `error`).
        DynsecError if an answer does not come in time.

        Sent in chunks, each after the last was answered: the broker handles a message's
        commands in one go, serving no other client meanwhile, and each command rewrites
        its file; a chunk keeps that pause short for devices (and for our keepalive)."""
        answers: list[dict[str, Any]] = []
        for start in range(0, len(commands), _CHUNK):
            answers += await self._run_chunk(commands[start : start + _CHUNK])
        return answers

    async def _run_chunk(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        tags = [uuid.uuid4().hex for _ in commands]
        for tag in tags:
            self._waiting[tag] = loop.create_future()
        tagged = [{**c, "correlationData": tag} for c, tag in zip(commands, tags, strict=True)]
        try:
            await self._mqtt.publish(CONTROL_TOPIC, orjson.dumps({"commands": tagged}))
            async with asyncio.timeout(self._timeout):
                return [await self._waiting[tag] for tag in tags]
        except TimeoutError as exc:
            raise DynsecError(
                f"the broker's dynamic-security plugin did not answer within {self._timeout} s"
                " (is the plugin loaded, and is this an admin account?)"
            ) from exc
        finally:
            for tag in tags:
                self._waiting.pop(tag, None)

    async def check(self, commands: list[dict[str, Any]], *, allowed: Iterable[str] = ()) -> None:
        """`run`, raising DynsecError on the first error not in `allowed`."""
        accepted = set(allowed)
        for answer in await self.run(commands):
            error = answer.get("error")
            if error and error not in accepted:
                raise DynsecError(f"{answer.get('command')}: {error}")

    def _answered(self, message: paho.MQTTMessage, _generation: int) -> None:
        try:
            answers = orjson.loads(message.payload).get("responses", [])
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("unreadable dynamic-security answer", extra={"bytes": len(message.payload)})
            return
        for answer in answers:
            waiting = self._waiting.get(str(answer.get("correlationData")))
            if waiting is not None and not waiting.done():
                waiting.set_result(answer)
