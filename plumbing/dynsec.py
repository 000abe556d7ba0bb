"""mosquitto's dynamic-security plugin: broker accounts managed over MQTT.

The plugin keeps clients (user name, password hash, an optional client id they are bound
to, roles), roles (topic ACLs) and groups in a JSON file it reads at start and rewrites on
every change. Changes arrive as commands published to `$CONTROL/dynamic-security/v1` by a
client with the admin role; the plugin answers each command on `.../response` (with the
`correlationData` we gave it), so a change is confirmed, applied, within milliseconds: no
signal to send, no file to share with the broker's host.

Measured with mosquitto 2.0.11 (docs/broker-accounts.md): every command rewrites the whole
file, so one costs ~15 ms with 1,000 devices in it and ~170 ms with 10,000 (a client and a
role each), and the broker serves no one meanwhile; a bulk import of thousands of accounts
is better written into the file while the broker is stopped (`config_file`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from plumbing.component import Component
from plumbing.mqtt import MqttClient, MqttError, Received

__all__ = [
    "ADMIN_ROLE",
    "CONTROL_TOPIC",
    "DynsecClient",
    "DynsecError",
    "DynsecRefused",
    "admin_role",
    "config_file",
    "password_fields",
]

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
_RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
ADMIN_ROLE = "dynsec-admin"
# Commands per message (see DynsecClient.run): the first few, then as many as take the
# broker about _STALL_S, at most _MAX_CHUNK.
_FIRST_CHUNK = 1
_MAX_CHUNK = 100
_STALL_S = 0.2

# What a client may do without a role allowing it: nothing but receive what it subscribed
# to (and it may subscribe to nothing), so a role is needed for every right.
_DEFAULT_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


class DynsecError(MqttError):
    """The plugin did not answer, or refused a command (DynsecRefused)."""


class DynsecRefused(DynsecError):
    """The plugin refused a command; `reason` is its own text (e.g. "Client not found")."""

    def __init__(self, command: dict[str, Any], reason: str) -> None:
        name = command.get("username") or command.get("rolename") or command.get("groupname")
        super().__init__(f"{command.get('command')} {name or ''}: {reason}")
        self.command = command
        self.reason = reason


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
        if self._mqtt.refused_subscriptions:
            await self._mqtt.stop()
            # Say so now: commands would go unanswered (and, at QoS 0, unrefused).
            raise DynsecError(
                "the broker refused this account the dynamic-security answers: it needs "
                "the plugin's admin role"
            )

    async def _close(self) -> None:
        await self._mqtt.stop()
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(DynsecError("connection closed before the answer"))
        self._waiting.clear()

    async def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The plugin's answer to each command, in order (a refused one has an `error`).
        DynsecError if an answer does not come in time.

        Sent in chunks, each once the last was answered, sized so that the broker works
        about `_STALL_S` on one: it handles a message's commands in one go, serving no
        other client meanwhile, and each command rewrites its whole file (15 ms with 1,000
        devices, 170 ms with 10,000), so a big chunk would hold every device's messages."""
        answers: list[dict[str, Any]] = []
        size = _FIRST_CHUNK
        while len(answers) < len(commands):
            chunk = commands[len(answers) : len(answers) + size]
            started = time.monotonic()
            answers += await self._run_chunk(chunk)
            per_command = (time.monotonic() - started) / len(chunk)
            size = max(1, min(_MAX_CHUNK, int(_STALL_S / max(per_command, 1e-4))))
        return answers

    async def _run_chunk(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        tags = [uuid.uuid4().hex for _ in commands]
        for tag in tags:
            self._waiting[tag] = loop.create_future()
        tagged = [{**c, "correlationData": tag} for c, tag in zip(commands, tags, strict=True)]
        try:
            # QoS 0: the plugin's answer is the acknowledgement. (A QoS 1 PUBACK would be
            # followed by the answer in a second small packet, which Nagle's algorithm on
            # the broker holds until our delayed ACK: 40 ms more per message.)
            await self._mqtt.publish(CONTROL_TOPIC, orjson.dumps({"commands": tagged}), qos=0)
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

    async def check(self, commands: list[dict[str, Any]]) -> None:
        """`run`, raising DynsecRefused for the first command the plugin refused."""
        for command, answer in zip(commands, await self.run(commands), strict=True):
            if answer.get("error"):
                raise DynsecRefused(command, str(answer["error"]))

    async def upsert(self, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[bool]:
        """For each (create, modify) pair of commands, the create, or where the object is
        there already the modify, so that sending the same again converges. Returns, for
        each pair, whether the object was there. (A refused command costs no rewrite.)"""
        creates = [create for create, _ in pairs]
        existed = []
        for create, answer in zip(creates, await self.run(creates), strict=True):
            error = str(answer.get("error") or "")
            existed.append(error.endswith("already exists"))
            if error and not existed[-1]:
                raise DynsecRefused(create, error)
        await self.check(
            [modify for (_, modify), there in zip(pairs, existed, strict=True) if there]
        )
        return existed

    def _answered(self, message: Received, _generation: int) -> None:
        try:
            answers = orjson.loads(message.payload).get("responses", [])
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("unreadable dynamic-security answer", extra={"bytes": len(message.payload)})
            return
        for answer in answers:
            waiting = self._waiting.get(str(answer.get("correlationData")))
            if waiting is not None and not waiting.done():
                waiting.set_result(answer)
