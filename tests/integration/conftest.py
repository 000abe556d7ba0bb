"""One real stack per test session: PostgreSQL, tansu and mosquitto on free loopback ports,
with ingest and both workers running in the test's event loop.

Each test uses its own device ids, so tests share the pipeline without seeing each
other's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from playwright.async_api import Browser

from alerts import event_store, store
from alerts.event_store import prepare_staging
from alerts.rules_worker import RulesWorker
from carewatch.broker_accounts import put_accounts
from carewatch.embedded import EmbeddedStack
from carewatch.processes import RulesParts, rules_parts, telemetry_parts
from devices import residents
from devices.broker_auth import device_account, ensure_service_user, service_account
from devices.codecs.native import topic_for
from devices.events import make_event
from devices.registry import add_device
from ingest.pipeline import Ingest
from plumbing.db import connect_pool
from plumbing.kafka import DLQ_TOPIC, EVENTS_TOPIC, end_offsets, partitions_of
from plumbing.mqtt import MqttClient, with_login
from plumbing.settings import Settings
from tests.integration.browser import Console, chromium, serve_console
from tests.integration.faults import TcpLink
from tests.integration.notifier_world import (  # noqa: F401 - the notifier tests' fixtures
    notifier_pool,
    notifier_settings,
    receiver,
    smtp,
    world,
)

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], *, within: float = 20.0) -> T:
    """Poll an observable condition until it holds (returns non-None); fail after `within`."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s: {probe}")
        await asyncio.sleep(0.05)


def _within(wanted: Any, actual: Any) -> bool:
    """Whether every value in `wanted` is in `actual` (which may hold more keys)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and _within(v, actual[k]) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list | tuple)
            and len(wanted) == len(actual)
            and all(_within(w, a) for w, a in zip(wanted, actual, strict=True))
        )
    return bool(wanted == actual)


@pytest_asyncio.fixture
async def device(pipeline: Pipeline) -> str:
    """A registered native device, with a broker account, that no other test uses."""
    return await pipeline.register()


@pytest_asyncio.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedStack]:
    # Services given by CAREWATCH_*_URL in the environment are used instead of embedded ones.
    settings = Settings(data_dir=tmp_path_factory.mktemp("stack"))
    async with EmbeddedStack(settings=settings) as running:
        yield running


@pytest_asyncio.fixture
async def own_database(stack: EmbeddedStack) -> AsyncIterator[str]:
    """The URL of a new, empty database on the stack's PostgreSQL, dropped after the test:
    for tests that delete or move what other tests' rows rely on."""
    name = f"own_{uuid.uuid4().hex[:8]}"
    await _admin(stack.database_url, f"CREATE DATABASE {name}")
    yield f"{stack.database_url.rsplit('/', 1)[0]}/{name}"
    await _admin(stack.database_url, f"DROP DATABASE {name} WITH (FORCE)")


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class Pipeline:
    """The running pipeline and what a test needs to drive and observe it."""

    stack: EmbeddedStack
    db: asyncpg.Pool
    ingest: Ingest
    rules: RulesProcess
    registry_link: TcpLink  # between ingest and its registry database
    progress: EventsProgress
    telemetry_group: str
    dlq: list[dict[str, Any]] = field(default_factory=list)
    clients: dict[str, MqttClient] = field(default_factory=dict)
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (user, secret)

    async def register(
        self, device_id: str | None = None, *, format: str = "native", **fields: Any
    ) -> str:
        """Register a device; if it logs in itself, wait until the broker admits it."""
        device_id = device_id or f"t-{uuid.uuid4().hex[:12]}"
        async with self.db.acquire() as conn:
            device, secret = await add_device(conn, device_id=device_id, format=format, **fields)
        account = device_account(device_id, format, device.mqtt_username or "")
        if account is not None and secret is not None:
            await put_accounts(self.stack.settings, [(account, secret)])  # confirmed
            self.logins[device_id] = (account.username, secret)
        return device_id

    async def resident_device(
        self, overrides: dict[str, Any], *, name: str = "Chen Jie", timezone: str = "Asia/Shanghai"
    ) -> str:
        """A new device of a new resident with these rule overrides, once the rules worker
        has them (bad overrides would leave the defaults in place: this would wait)."""
        async with self.db.acquire() as conn:
            resident = await residents.add_resident(conn, name=name, timezone=timezone)
            await residents.set_rule_overrides(conn, resident, overrides)
        device = await self.register(resident_id=resident)

        async def configured() -> bool:
            return _within(overrides, self.rules.config_for(device))

        await eventually(configured)
        return device

    async def service_account(self, role: str) -> str:
        """A client id whose connection logs in with a new service account of `role`."""
        username = f"test-{role}-{uuid.uuid4().hex[:8]}"
        async with self.db.acquire() as conn:
            secret = await ensure_service_user(conn, username, role)
        await put_accounts(self.stack.settings, [(service_account(username, role), secret)])
        self.logins[username] = (username, secret)
        return username

    async def publish_as(self, login: str, topic: str, payload: bytes) -> None:
        await (await self.client(login)).publish(topic, payload)

    async def ingest_sees(self, device_id: str, status: str | None) -> None:
        """Wait until ingest's copy of the registry has caught up (it follows NOTIFY)."""

        async def probe() -> bool:
            device = self.ingest.directory.cached(device_id)
            return (device.status if device else None) == status

        await eventually(probe)

    @contextlib.asynccontextmanager
    async def registry_unreachable(self) -> AsyncIterator[None]:
        """Cut ingest off from the registry database (the database itself stays up); on
        leaving, restore the link and wait until ingest has reconnected and reloaded."""
        directory = self.ingest.directory

        async def connected(wanted: bool) -> bool:
            return directory.connected == wanted

        await self.registry_link.cut()
        await eventually(lambda: connected(False))
        try:
            yield
        finally:
            await self.registry_link.restore()
            # Soon, not at the next periodic reload: the loss itself wakes the reconnect.
            await eventually(lambda: connected(True), within=10)

    async def client(self, device_id: str) -> MqttClient:
        """The device's own connection, logged in with its own account (one per device:
        a second connection with the same client id would push the first off)."""
        if device_id not in self.clients:
            client = MqttClient(
                url=with_login(self.stack.mqtt_url, *self.logins[device_id]),
                client_id=device_id,
                protocol=self.stack.mqtt_protocol,
            )
            self.clients[device_id] = client
            await client.start()
        else:
            await self.clients[device_id].wait_connected()
        return self.clients[device_id]

    async def publish(self, device_id: str, payload: bytes | object) -> None:
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        await (await self.client(device_id)).publish(topic_for(device_id), raw)

    async def alerts(self, device_id: str) -> list[dict[str, Any]]:
        async with self.db.acquire() as conn:
            return await store.alerts_of_device(conn, device_id)

    async def events(self, device_id: str) -> list[dict[str, Any]]:
        async with self.db.acquire() as conn:
            return await event_store.events_of_device(conn, device_id)

    async def wait_alert(self, device_id: str, kind: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            return next((a for a in await self.alerts(device_id) if a["kind"] == kind), None)

        return await eventually(probe)

    async def wait_events(self, device_id: str, count: int) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            rows = await self.events(device_id)
            return rows if len(rows) >= count else None

        return await eventually(probe)

    async def wait_dlq(self, device_id: str, count: int = 1) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            found = [r for r in self.dlq if r["device_id"] == device_id]
            return found if len(found) >= count else None

        return await eventually(probe)

    async def settle(self, device_id: str) -> None:
        """Wait until both workers have handled everything published so far for a device.

        A fall is sent after it. MQTT keeps a connection's messages in order, so once the
        rules worker's state has the fall, ingest has read every earlier message (the
        fall's alert alone may come from the alarm lane, ahead of the worker). It is not
        proof that the worker has them too: ingest writes alarms on a producer of their
        own that never waits for a batch to fill, so a reading sent before the fall may
        reach Kafka after it. Hence: once ingest has nothing in flight, everything is in
        Kafka; then wait until both workers are past every partition's end as it was then.
        """
        msg_id = f"settle-{uuid.uuid4()}"
        await self.publish(device_id, {"kind": "fall", "msg_id": msg_id})
        fall = make_event(
            device_id=device_id, kind="fall", ts=None, received_at=datetime.now(UTC),
            source="native", fields={}, msg_id=msg_id,
        )  # fmt: skip

        async def seen_by_rules() -> bool:
            falls = self.rules.state(device_id).get("alarms", {}).get("falls", [])
            return any(f[1] == fall.event_id for f in falls)

        async def ingest_idle() -> bool:
            return self.ingest.health()["inflight"] == 0

        # Long enough for a restarted rules process to get its partitions back: tansu
        # answers each join after ~5 s and keeps a stopped member until its session times
        # out (10 s), so a restart costs two rounds of joining (~20 s measured).
        await eventually(seen_by_rules, within=45)
        await eventually(ingest_idle)
        ends = await self.progress.ends()

        async def rules_past() -> bool:
            return all(self.rules.parts.store.applied(p, end - 1) for p, end in ends.items())

        async def telemetry_past() -> bool:
            done = await self.progress.committed(self.telemetry_group)
            return all(done.get(p, 0) >= end for p, end in ends.items())

        await eventually(rules_past)
        await eventually(telemetry_past)


class EventsProgress:
    """How far the events topic goes, and how far a consumer group has committed in it."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> EventsProgress:
        await self._consumer.start()
        await self._admin.start()
        self._partitions = await partitions_of(self._consumer, EVENTS_TOPIC)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def ends(self) -> dict[int, int]:
        """Each non-empty partition's next offset."""
        ends = await end_offsets(self._consumer, self._partitions)
        return {tp.partition: end for tp, end in ends.items() if end > 0}

    async def committed(self, group_id: str) -> dict[int, int]:
        done = await self._admin.list_consumer_group_offsets(group_id, partitions=self._partitions)
        return {tp.partition: meta.offset for tp, meta in done.items() if meta.offset >= 0}


def _via(url: str, port: int) -> str:
    """`url` with its host and port replaced by a loopback port (a TcpLink's)."""
    parts = urlsplit(url)
    login = parts.netloc.rpartition("@")[0]
    return urlunsplit(
        parts._replace(netloc=f"{login}@127.0.0.1:{port}" if login else f"127.0.0.1:{port}")
    )


@pytest_asyncio.fixture(scope="session")
async def pipeline(stack: EmbeddedStack) -> AsyncIterator[Pipeline]:
    run = uuid.uuid4().hex[:8]
    db = urlsplit(stack.database_url)
    registry_link = TcpLink(db.hostname or "127.0.0.1", db.port or 5432)
    await registry_link.start()
    ingest = Ingest(
        mqtt_url=stack.mqtt_urls["ingest"],
        kafka_bootstrap=stack.kafka_bootstrap,
        database_url=_via(stack.database_url, registry_link.port),
        client_id=f"test-ingest-{run}",
        mqtt_protocol=stack.mqtt_protocol,
        share_group=f"test-{run}" if stack.mqtt_shared else "",
    )
    rules_pool = await connect_pool(stack.database_url)
    telemetry_pool = await connect_pool(stack.database_url, init=prepare_staging)
    rules = RulesProcess(stack=stack, pool=rules_pool, group_id=f"test-rules-{run}")
    telemetry_group = f"test-telemetry-{run}"
    telemetry = telemetry_parts(_settings(stack, telemetry_group=telemetry_group), telemetry_pool)
    progress = EventsProgress(stack.kafka_bootstrap)
    pipeline = Pipeline(
        stack=stack,
        db=rules_pool,
        ingest=ingest,
        rules=rules,
        registry_link=registry_link,
        progress=progress,
        telemetry_group=telemetry_group,
    )
    dlq_reader = asyncio.create_task(_collect(stack.kafka_bootstrap, DLQ_TOPIC, pipeline.dlq))
    async with telemetry.dead_letters, telemetry.consumer, rules, ingest, progress:
        yield pipeline
        for client in pipeline.clients.values():
            await client.stop()
    dlq_reader.cancel()
    await asyncio.gather(dlq_reader, return_exceptions=True)
    await rules_pool.close()
    await telemetry_pool.close()
    await registry_link.stop()


def _settings(stack: EmbeddedStack, **changes: Any) -> Settings:
    """The stack's settings with its services' addresses and `changes` filled in."""
    where = {"database_url": stack.database_url, "kafka_bootstrap": stack.kafka_bootstrap}
    return stack.settings.model_copy(update={**where, **changes})


async def _collect(bootstrap: str, topic: str, into: list[dict[str, Any]]) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            into.append(orjson.loads(record.value))
    finally:
        await consumer.stop()


@pytest_asyncio.fixture(scope="module")
async def console(stack: EmbeddedStack) -> AsyncIterator[Console]:
    """The API and the console served on a free port (tests/integration/browser.py)."""
    async with serve_console(stack.database_url) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, driven by Playwright."""
    async with chromium() as running:
        yield running


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).parents[2]


class RulesProcess:
    """The rules process as `carewatch rules` composes it (carewatch.processes.rules_parts),
    restartable mid-test, with a clock a test can move forward (for the timer rules)."""

    def __init__(self, *, stack: EmbeddedStack, pool: asyncpg.Pool, group_id: str) -> None:
        self._stack = stack
        self._pool = pool
        self.group_id = group_id
        self.clock_offset = timedelta(0)
        self._parts: RulesParts | None = None

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    @property
    def parts(self) -> RulesParts:
        assert self._parts is not None, "rules process not started"
        return self._parts

    @property
    def worker(self) -> RulesWorker:
        return self.parts.worker

    async def start(self) -> None:
        # Timers run when a test calls tick(), not on their own clock.
        settings = _settings(self._stack, rules_group=self.group_id, rules_tick_s=3600.0)
        self._parts = rules_parts(settings, self._pool, clock=self.now, configs_refresh_s=0.5)
        for component in self._parts.components():
            await component.start()

    async def stop(self) -> None:
        if self._parts is not None:
            for component in reversed(self._parts.components()):
                await component.stop()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @contextlib.asynccontextmanager
    async def worker_stuck(self) -> AsyncIterator[None]:
        """The rules worker stuck (its state lock held, as by a long batch's write) while
        the alarm lane runs on."""
        async with self.parts.store.lock:
            yield

    async def tick(self) -> None:
        await self.worker.tick()

    def state(self, device_id: str) -> dict[str, Any]:
        """The rule state the worker has stored for a device ({rule: state})."""
        return self.parts.store.state(device_id)

    def config_for(self, device_id: str) -> dict[str, Any]:
        return self.parts.configs.for_device(device_id)

    async def __aenter__(self) -> RulesProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
