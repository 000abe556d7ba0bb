"""How each long-running process is composed from components (see plumbing.service).

Components enter the exit stack in the order data flows, so they stop in reverse: input
first, then in-flight work drains, then producers flush, then the database pool closes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
import orjson

from alerts.alarm_lane import AlarmLane
from alerts.event_store import prepare_staging
from alerts.outbox import AlertPublisher
from alerts.reconcile import reconcile
from alerts.resident_config import ResidentConfigs
from alerts.rule_state import RuleStateStore
from alerts.rules_worker import RulesWorker
from alerts.telemetry import MAINTENANCE_INTERVAL_S, PartitionMaintenance, TelemetryWriter
from api.app import create_app
from api.feed import AlertFeed
from carewatch.broker_accounts import accounts_for
from console.app import ConsoleConfig
from console.app import install as install_console
from devices.codecs import CODECS
from devices.events import Event, event_from_json
from ingest import gateway_metrics  # noqa: F401 - registers the gateway's metrics
from ingest.admission import Admission
from ingest.alarm_reader import AlarmReader
from ingest.directory import DeviceDirectory
from ingest.pipeline import Ingest
from ingest.watch_gateway import WatchGateway
from notifier.channels import build_channels
from notifier.clock import Clock, SystemClock
from notifier.delivery import Delivery
from notifier.escalation import Escalation
from notifier.links import Links, base_url, link_key
from plumbing.component import Component
from plumbing.consumer import BatchConsumer
from plumbing.db import TRANSIENT, connect_pool
from plumbing.dead_letters import DeadLetters
from plumbing.http import HealthServer
from plumbing.kafka import ALARMS_TOPIC, ALERTS_TOPIC, EVENTS_TOPIC
from plumbing.mqtt import MqttClient
from plumbing.service import Running
from plumbing.settings import Settings
from plumbing.ticker import Ticker

__all__ = [
    "BUILDERS",
    "NotifierParts",
    "RulesParts",
    "TelemetryParts",
    "build_alarms",
    "build_api",
    "build_ingest",
    "build_notifier",
    "build_rules",
    "build_telemetry",
    "build_watch_gateway",
    "notifier_parts",
    "rules_parts",
    "telemetry_parts",
]


async def build_ingest(settings: Settings, stack: AsyncExitStack) -> Running:
    ingest = Ingest(
        mqtt_url=settings.require_mqtt_url("ingest"),
        kafka_bootstrap=settings.require_kafka_bootstrap(),
        client_id=settings.ingest_client_id,
        mqtt_protocol=settings.mqtt_protocol,
        share_group=settings.mqtt_share_group,
        max_inflight=settings.ingest_max_inflight,
        database_url=settings.require_database_url(),
        max_payload_bytes=settings.max_payload_bytes,
        device_rate=settings.device_rate,
        device_burst=settings.device_burst,
        max_ahead_s=settings.max_clock_ahead_s,
    )
    await stack.enter_async_context(ingest)
    return Running(health=ingest.health, watch=[ingest.done])


async def build_alarms(settings: Settings, stack: AsyncExitStack) -> Running:
    """The alarm fast path (ingest/alarm_reader.py): alarms from the broker raised in
    PostgreSQL, and published to the notifier by an outbox publisher of its own (several
    publishers share the outbox safely), so neither waits for the busy rules process."""
    database_url = settings.require_database_url()
    pool = await connect_pool(database_url, max_size=4)
    stack.push_async_callback(pool.close)
    publisher = AlertPublisher(
        database_url=database_url,
        bootstrap=settings.require_kafka_bootstrap(),
        client_id="carewatch-alarms-alerts",
    )
    await stack.enter_async_context(publisher)
    admission = Admission(
        codecs=CODECS.values(),
        directory=DeviceDirectory(database_url=database_url),
        max_payload_bytes=settings.max_payload_bytes,
        device_rate=settings.device_rate,
        device_burst=settings.device_burst,
        max_ahead_s=settings.max_clock_ahead_s,
    )
    reader = AlarmReader(
        mqtt_url=settings.require_mqtt_url("ingest"),
        # Its own session: a second reader of the alarm topics beside ingest's (and beside
        # another alarms process's: the id names the host and process).
        client_id=f"carewatch-alarms-{socket.gethostname()}-{os.getpid()}",
        admission=admission,
        raise_alarms=AlarmLane(pool=pool).raise_alarms,
        mqtt_protocol=settings.mqtt_protocol,
    )
    await stack.enter_async_context(reader)

    def health() -> dict[str, Any]:
        return _health(reader, publisher=publisher)

    return Running(health=health, watch=[reader.done, publisher.done])


@dataclass
class RulesParts:
    """The components of the rules process, built without I/O; `components` in the order
    they start (they stop the other way round: the publisher last, so the changes of the
    last batch go out too)."""

    publisher: AlertPublisher
    dead_letters: DeadLetters
    configs: ResidentConfigs
    store: RuleStateStore
    worker: RulesWorker
    consumer: BatchConsumer[Event]
    alarm_lane: BatchConsumer[Event]
    timers: Ticker
    reconciliation: Ticker

    def components(self) -> list[Component]:
        return [
            self.publisher,
            self.dead_letters,
            self.configs,
            self.consumer,
            self.alarm_lane,
            self.timers,
            self.reconciliation,
        ]

    def health(self) -> dict[str, Any]:
        return _health(
            self.consumer,
            alarm_lane=self.alarm_lane,
            publisher=self.publisher,
            configs=self.configs,
            timers=self.timers,
            reconciliation=self.reconciliation,
        )


def rules_parts(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    clock: Callable[[], datetime] | None = None,
    configs_refresh_s: float = 30.0,
) -> RulesParts:
    """The rules process as `carewatch rules` runs it (the tests build theirs here too,
    with a clock they can move)."""
    bootstrap = settings.require_kafka_bootstrap()
    database_url = settings.require_database_url()
    publisher = AlertPublisher(
        database_url=database_url, bootstrap=bootstrap, client_id=f"{settings.rules_group}-alerts"
    )
    dead_letters = DeadLetters(bootstrap=bootstrap, client_id=f"{settings.rules_group}-dlq")
    configs = ResidentConfigs(pool=pool, refresh_s=configs_refresh_s)
    store = RuleStateStore(pool=pool, group_id=settings.rules_group, topic=EVENTS_TOPIC)
    worker = RulesWorker(pool=pool, store=store, configs=configs, clock=clock)
    consumer = BatchConsumer(
        name="rules",
        bootstrap=bootstrap,
        group_id=settings.rules_group,
        topic=EVENTS_TOPIC,
        decode=event_from_json,
        handler=worker.handle,
        max_records=settings.batch_max_records,
        positions=store,
        on_poison=dead_letters.poison,
        stall_after_s=settings.worker_stall_after_s,
    )
    alarm_lane = BatchConsumer(
        name="alarms",
        bootstrap=bootstrap,
        group_id=f"{settings.rules_group}-alarms",
        topic=ALARMS_TOPIC,
        decode=event_from_json,
        handler=AlarmLane(pool=pool).handle,
        urgent=True,
        on_poison=dead_letters.poison,
        stall_after_s=settings.worker_stall_after_s,
    )
    # Timers wait until the backlog is read: while it is replayed, old silence would look
    # like a device gone offline.
    timers = Ticker(
        name="rules-timers",
        tick=worker.tick,
        interval=settings.rules_tick_s,
        ready=_caught_up(consumer),
        transient=TRANSIENT,
    )
    reconciliation = Ticker(
        name="reconciliation",
        tick=_reconcile(pool, settings, clock or _utcnow),
        interval=settings.reconcile_interval_s,
        transient=TRANSIENT,
    )
    return RulesParts(
        publisher,
        dead_letters,
        configs,
        store,
        worker,
        consumer,
        alarm_lane,
        timers,
        reconciliation,
    )


def _reconcile(
    pool: asyncpg.Pool, settings: Settings, clock: Callable[[], datetime]
) -> Callable[[], Awaitable[object]]:
    grace = timedelta(seconds=settings.reconcile_grace_s)

    async def check() -> object:
        async with pool.acquire() as conn:
            return await reconcile(conn, now=clock(), grace=grace)

    return check


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def build_rules(settings: Settings, stack: AsyncExitStack) -> Running:
    pool = await connect_pool(settings.require_database_url())
    stack.push_async_callback(pool.close)
    return await _started(rules_parts(settings, pool), stack)


class _Parts(Protocol):
    def components(self) -> list[Component]: ...
    def health(self) -> dict[str, Any]: ...


async def _started(parts: _Parts, stack: AsyncExitStack) -> Running:
    """Start a worker process's components in order (they stop in reverse with `stack`)."""
    for component in parts.components():
        await stack.enter_async_context(component)
    return Running(health=parts.health, watch=[c.done for c in parts.components()])


def _health(main: Component, **others: Component) -> dict[str, Any]:
    """`main`'s health document, with each other component's under its name; ok if all are."""
    docs = {name: component.health() for name, component in others.items()}
    doc = main.health()
    ok = doc["ok"] and all(d["ok"] for d in docs.values())
    return {**doc, **docs, "ok": ok}


def _caught_up(consumer: BatchConsumer[Any], backlog: int = 1000) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        lag = await consumer.lag()
        return lag is not None and lag < backlog

    return check


@dataclass
class TelemetryParts:
    """The components of the telemetry process, in the order they start."""

    dead_letters: DeadLetters
    consumer: BatchConsumer[Event]
    partitions: Ticker

    def components(self) -> list[Component]:
        return [self.dead_letters, self.consumer, self.partitions]

    def health(self) -> dict[str, Any]:
        return _health(self.consumer, dead_letters=self.dead_letters, partitions=self.partitions)


def telemetry_parts(
    settings: Settings, pool: asyncpg.Pool, *, clock: Callable[[], datetime] | None = None
) -> TelemetryParts:
    """The telemetry process as `carewatch telemetry` runs it (the tests build theirs here
    too). A row PostgreSQL refuses costs that row, not the batch: the consumer applies a
    failing batch in halves down to the record, which goes to the dead-letter topic. A row
    of a day without a partition is not refused: the day is added (alerts/partitions.py),
    and a ticker adds days ahead and drops those past CAREWATCH_RETENTION_DAYS."""
    bootstrap = settings.require_kafka_bootstrap()
    dead_letters = DeadLetters(bootstrap=bootstrap, client_id=f"{settings.telemetry_group}-dlq")
    clock = clock or _utcnow
    writer = TelemetryWriter(pool=pool, retention_days=settings.retention_days, clock=clock)
    consumer = BatchConsumer(
        name="telemetry",
        bootstrap=bootstrap,
        group_id=settings.telemetry_group,
        topic=EVENTS_TOPIC,
        decode=event_from_json,
        handler=writer.handle,
        max_records=settings.batch_max_records,
        on_poison=dead_letters.poison,
        stall_after_s=settings.worker_stall_after_s,
    )
    maintenance = PartitionMaintenance(
        pool=pool, retention_days=settings.retention_days, clock=clock
    )
    partitions = Ticker(
        name="event-partitions",
        tick=maintenance.tick,
        interval=MAINTENANCE_INTERVAL_S,
        transient=TRANSIENT,
    )
    return TelemetryParts(dead_letters, consumer, partitions)


async def build_telemetry(settings: Settings, stack: AsyncExitStack) -> Running:
    pool = await connect_pool(settings.require_database_url(), init=prepare_staging)
    stack.push_async_callback(pool.close)
    return await _started(telemetry_parts(settings, pool), stack)


async def build_watch_gateway(settings: Settings, stack: AsyncExitStack) -> Running:
    # The MQTT client enters first, so it stops last: the gateway drains its publishes
    # (and replies to the watches) before the connection goes.
    mqtt = MqttClient(
        url=settings.require_mqtt_url("gateway"),
        client_id=f"carewatch-gateway-{socket.gethostname()}-{settings.gateway_port}",
        protocol=settings.mqtt_protocol,
    )
    await stack.enter_async_context(mqtt)
    gateway = WatchGateway(
        mqtt=mqtt,
        host=settings.gateway_host,
        port=settings.gateway_port,
        idle_timeout=settings.gateway_idle_timeout_s,
        max_frame_bytes=settings.max_payload_bytes,
    )
    await stack.enter_async_context(gateway)
    return Running(health=gateway.health)


async def build_api(settings: Settings, stack: AsyncExitStack) -> Running:
    # The pool enters first, so it closes last: requests in flight finish on it while the
    # server drains on SIGTERM.
    pool = await connect_pool(settings.require_database_url(), max_size=10)
    stack.push_async_callback(pool.close)

    feed = AlertFeed(database_url=settings.require_database_url(), pool=pool)
    links = Links(
        key=link_key(settings), base_url=base_url(settings), ttl_s=settings.ack_link_ttl_s
    )
    app = create_app(
        pool=pool, feed=feed, centre_tz=settings.centre_tz, shift_starts=settings.shift_starts,
        links=links, gateway_secret=settings.gateway_secret,
    )  # fmt: skip
    install_console(app, ConsoleConfig(centre_tz=settings.centre_tz, map_tiles=settings.map_tiles))
    # Device changes reach the broker's accounts through the admin account this process
    # finds (CAREWATCH_MQTT_ADMIN_URL, or the one `up` records in stack.json), over one
    # short connection per change: alerts are served while the broker is down.
    app.state.broker_accounts = lambda: accounts_for(settings)

    def health() -> dict[str, Any]:
        parts = {"server": server.health(), "feed": feed.health()}
        ok = all(part["ok"] for part in parts.values())
        return {"ok": ok, **parts, "db_connections": pool.get_size()}

    server = HealthServer(
        host=settings.api_host,
        port=settings.api_port,
        health=health,
        app=app,
        name="api",
    )
    await stack.enter_async_context(server)
    # Entered after the server, so it stops first: it ends the open streams, which the
    # server would otherwise wait for on SIGTERM.
    await stack.enter_async_context(feed)
    return Running(health=health, watch=[server.done, feed.done])


@dataclass
class NotifierParts:
    """The components of the notifier process, in the order they start: delivery first,
    so what the chains decide has a sender; the consumer and the clock after it."""

    delivery: Delivery
    escalation: Escalation
    consumer: BatchConsumer[dict[str, Any]]
    ticker: Ticker

    def components(self) -> list[Component]:
        return [self.delivery, self.consumer, self.ticker]

    def health(self) -> dict[str, Any]:
        return _health(self.consumer, delivery=self.delivery, ticker=self.ticker)


def notifier_parts(
    settings: Settings, pool: asyncpg.Pool, *, clock: Clock | None = None
) -> NotifierParts:
    """The notifier as `carewatch notifier` runs it (the tests build theirs here, with a
    clock of their own)."""
    clock = clock or SystemClock()
    delivery = Delivery(
        pool=pool, channels=build_channels(settings), clock=clock,
        attempts=settings.notify_attempts,
    )  # fmt: skip
    links = Links(
        key=link_key(settings), base_url=base_url(settings), ttl_s=settings.ack_link_ttl_s
    )
    escalation = Escalation(
        pool=pool, clock=clock, links=links, ack_timeout_s=settings.ack_timeout_s,
        operator_target_s=settings.operator_ack_target_s, wake=delivery.wake,
    )  # fmt: skip
    consumer = BatchConsumer(
        name="notifier",
        bootstrap=settings.require_kafka_bootstrap(),
        group_id=settings.notifier_group,
        topic=ALERTS_TOPIC,
        decode=orjson.loads,
        handler=escalation.handle,
        urgent=True,
        stall_after_s=settings.worker_stall_after_s,
    )
    ticker = Ticker(name="escalation", tick=escalation.tick, interval=1.0, transient=TRANSIENT)
    return NotifierParts(delivery, escalation, consumer, ticker)


async def build_notifier(settings: Settings, stack: AsyncExitStack) -> Running:
    # Deciding (8 alerts at once), sending and the clock each hold connections.
    pool = await connect_pool(settings.require_database_url(), max_size=16)
    stack.push_async_callback(pool.close)
    return await _started(notifier_parts(settings, pool), stack)


# What `carewatch NAME` runs, by the name of its subcommand.
BUILDERS: dict[str, Callable[[Settings, AsyncExitStack], Awaitable[Running]]] = {
    "ingest": build_ingest,
    "alarms": build_alarms,
    "rules": build_rules,
    "telemetry": build_telemetry,
    "watch-gateway": build_watch_gateway,
    "api": build_api,
    "notifier": build_notifier,
}
