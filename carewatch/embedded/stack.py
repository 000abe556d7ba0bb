"""The three services carewatch needs, embedded unless the settings point at real ones.

Started in the order data is stored (PostgreSQL, Kafka, MQTT), so they stop the other
way round: input first. Where they run is written to `<data_dir>/stack.json` for the other
`carewatch` commands, and removed on stop.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, TypeVar
from urllib.parse import urlsplit

import asyncpg
import orjson
from aiokafka.errors import KafkaError

from alerts.rule_state import topics_made_anew
from carewatch.broker_accounts import ADMIN_USER, dynsec_config
from carewatch.embedded.kafka import EmbeddedKafka
from carewatch.embedded.mqtt import EmbeddedMqtt
from carewatch.embedded.postgres import EmbeddedPostgres
from carewatch.embedded.process import ChildProcess, EmbeddedError, port_open
from devices.broker_auth import ensure_service_user, load_accounts
from devices.credentials import hash_secret, new_secret
from plumbing.db import migrate
from plumbing.files import write_file
from plumbing.kafka import ensure_topics
from plumbing.mqtt import with_login
from plumbing.redact import redact_url
from plumbing.settings import Settings

__all__ = ["EmbeddedStack"]

log = logging.getLogger(__name__)

_Service = TypeVar("_Service", EmbeddedPostgres, EmbeddedKafka, EmbeddedMqtt)


class EmbeddedStack:
    """PostgreSQL, Kafka and MQTT for one machine; the URLs once started."""

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        self._exits: contextlib.AsyncExitStack | None = None
        self._described: list[tuple[str, str]] = []
        self._wrote_stack_file = False
        self.database_url = ""
        self.kafka_bootstrap = ""
        self.mqtt_url = ""
        self.mqtt_protocol: Literal["5", "3.1.1"] = settings.mqtt_protocol
        self.mqtt_shared = False
        # Per service role, the URL with that role's broker account (embedded broker only).
        self.mqtt_urls: dict[str, str] = {}
        # TLS for devices (mqtts://, with the local CA to trust in its `ca` parameter).
        self.mqtts_url: str | None = None
        self._more: dict[str, object] = {}  # what `record` added (the API's URL)
        self._embedded: dict[str, EmbeddedPostgres | EmbeddedKafka | EmbeddedMqtt] = {}

    def describe(self) -> list[tuple[str, str]]:
        """(service, "embedded <what> at <url>" or "external <url>"), for printing."""
        return list(self._described)

    def processes(self) -> dict[str, ChildProcess]:
        """The embedded servers' OS processes by service ("postgres", "kafka", "mqtt"); an
        external service has none. For fault injection (carewatch/faults.py)."""
        found = {name: service.process for name, service in self._embedded.items()}
        return {name: process for name, process in found.items() if process is not None}

    def record(self, **more: object) -> None:
        """Add to what stack.json says, e.g. `api_url` once `up` has started the API."""
        self._more.update(more)
        if self._wrote_stack_file:
            self._write_stack_file()

    async def start(self) -> None:
        data_dir = self.settings.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        await self._refuse_if_running()
        self._described = []
        self._exits = contextlib.AsyncExitStack()
        try:
            await self._start_postgres(data_dir / "postgres")
            await self._start_kafka(data_dir / "kafka")
            await self._start_mqtt(data_dir / "mqtt")
            self._write_stack_file()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the embedded services, newest first; safe to call twice."""
        if self._wrote_stack_file:
            # First: from now on the recorded services are going away.
            self.settings.stack_file().unlink(missing_ok=True)
            self._wrote_stack_file = False
        exits, self._exits = self._exits, None
        self._embedded = {}
        if exits is not None:
            await exits.aclose()

    async def _start_postgres(self, data_dir: Path) -> None:
        if self.settings.database_url:
            self.database_url = self.settings.database_url
            self._described.append(("postgres", f"external {redact_url(self.database_url)}"))
            return
        postgres = await self._enter("postgres", EmbeddedPostgres(data_dir=data_dir))
        self.database_url = postgres.url
        self._described.append(("postgres", f"embedded PostgreSQL at {postgres.url}"))

    async def _start_kafka(self, data_dir: Path) -> None:
        partitions = self.settings.topic_partitions()
        if self.settings.kafka_bootstrap:
            self.kafka_bootstrap = self.settings.kafka_bootstrap
            try:
                await ensure_topics(self.kafka_bootstrap, partitions=partitions)
            except KafkaError as exc:
                raise EmbeddedError(f"kafka at {self.kafka_bootstrap}: {exc}") from exc
            self._described.append(("kafka", f"external {self.kafka_bootstrap}"))
            return
        kafka = await self._enter("kafka", EmbeddedKafka(data_dir=data_dir, partitions=partitions))
        self.kafka_bootstrap = kafka.bootstrap
        # A fresh in-memory broker: positions stored by an earlier run point past its end,
        # and the partition count may have changed since.
        conn = await asyncpg.connect(self.database_url)
        try:
            await migrate(conn)
            await topics_made_anew(conn, partitions=partitions)
        finally:
            await conn.close()
        self._described.append(("kafka", f"embedded tansu at {kafka.bootstrap}"))

    async def _start_mqtt(self, data_dir: Path) -> None:
        if self.settings.mqtt_url:
            self.mqtt_url = self.settings.mqtt_url
            self.mqtt_protocol = self.settings.mqtt_protocol
            # MQTT 5 brokers (mosquitto 2, EMQX, HiveMQ) all have shared subscriptions.
            self.mqtt_shared = self.mqtt_protocol == "5"
            self._described.append(("mqtt", f"external {redact_url(self.mqtt_url)}"))
            return
        accounts_file = data_dir / "dynamic-security.json"
        secrets = await self._write_broker_accounts(accounts_file)
        mqtt = await self._enter(
            "mqtt",
            EmbeddedMqtt(
                data_dir=data_dir,
                accounts_file=accounts_file,
                allow_anonymous=self.settings.dev_mode,
                tls_dir=data_dir / "tls",
            ),
        )
        self.mqtts_url = mqtt.tls_url
        self.mqtt_url = mqtt.url
        self.mqtt_protocol = mqtt.protocol
        self.mqtt_shared = mqtt.supports_shared_subscriptions
        if mqtt.enforces_auth:
            self.mqtt_urls = {
                role: with_login(mqtt.url, user, secret) for role, (user, secret) in secrets.items()
            }
        access = "per-device accounts" if mqtt.enforces_auth else "anonymous: development only"
        if mqtt.enforces_auth and self.settings.dev_mode:
            access += " + anonymous (dev mode)"
        what = f"embedded {mqtt.broker} (MQTT {mqtt.protocol}, {access}) at {mqtt.url}"
        self._described.append(("mqtt", what))
        if mqtt.tls_url is not None:
            self._described.append(("mqtts", f"TLS for devices at {mqtt.tls_url}"))

    async def _write_broker_accounts(self, path: Path) -> dict[str, tuple[str, str]]:
        """The registry's accounts, the services' re-keyed for this run and a new admin
        account, in the broker's accounts file; returns each role's (user, secret)."""
        conn = await asyncpg.connect(self.database_url)
        try:
            await migrate(conn)
            logins = {
                role: (
                    f"carewatch-{role}",
                    await ensure_service_user(conn, f"carewatch-{role}", role),
                )
                for role in ("ingest", "gateway")
            }
            accounts = await load_accounts(conn)
        finally:
            await conn.close()
        admin = new_secret()
        logins["admin"] = (ADMIN_USER, admin)
        config = dynsec_config(
            accounts, admin_hash=hash_secret(admin), anonymous=self.settings.dev_mode
        )
        write_file(path, config)
        return logins

    async def _enter(self, name: str, service: _Service) -> _Service:
        assert self._exits is not None
        entered = await self._exits.enter_async_context(service)
        self._embedded[name] = entered
        return entered

    def _write_stack_file(self) -> None:
        record = {
            "database_url": self.database_url,
            "kafka_bootstrap": self.kafka_bootstrap,
            "mqtt_url": self.mqtt_url,
            "mqtt_protocol": self.mqtt_protocol,
            "mqtt_shared": self.mqtt_shared,
            "mqtt_urls": self.mqtt_urls,
            "mqtts_url": self.mqtts_url,
            **self._more,
        }
        write_file(self.settings.stack_file(), orjson.dumps(record, option=orjson.OPT_INDENT_2))
        self._wrote_stack_file = True

    async def _refuse_if_running(self) -> None:
        """EmbeddedError if another stack on this data dir still serves what it recorded.

        Only the services this stack would embed are checked: those are what two stacks
        on one data dir would fight over (the same pgdata, the same mosquitto store).
        An external service is reachable whether or not the old stack still runs.
        """
        path = self.settings.stack_file()
        try:
            recorded = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        live = [url for key, url in self._embedded_keys(recorded) if await _reachable(url)]
        if live:
            raise EmbeddedError(
                f"another carewatch stack is running on {self.settings.data_dir} "
                f"({', '.join(live)} answer, recorded in {path}); stop it first, or use "
                "another CAREWATCH_DATA_DIR"
            )
        log.info("replacing stale %s (nothing recorded there answers)", path)

    def _embedded_keys(self, recorded: dict[str, object]) -> list[tuple[str, str]]:
        given = {
            "database_url": self.settings.database_url,
            "kafka_bootstrap": self.settings.kafka_bootstrap,
            "mqtt_url": self.settings.mqtt_url,
        }
        return [
            (key, str(recorded[key]))
            for key, value in given.items()
            if not value and recorded.get(key)
        ]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def _reachable(url: str) -> bool:
    """True if any host:port in a URL or a Kafka bootstrap list accepts TCP connections."""
    for address in url.split(","):
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            continue  # not a port number: nothing can answer there
        if host and port and await port_open(host, port):
            return True
    return False
