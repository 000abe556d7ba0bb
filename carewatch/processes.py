"""How each long-running process is composed from components (see plumbing.service).

Components enter the exit stack in the order data flows, so they stop in reverse: input
first, then in-flight work drains, then producers flush, then the database pool closes.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from alerts.alarm_lane import AlarmLane
from alerts.consumer import BatchConsumer
from alerts.outbox import AlertPublisher
from alerts.resident_config import ResidentConfigs
from alerts.rule_state import RuleStateStore
from alerts.rules_worker import RulesWorker, Ticker
from alerts.telemetry import TelemetryWriter, prepare_connection
from ingest import gateway_metrics  # noqa: F401 - registers the gateway's metrics
from ingest.pipeline import Ingest
from ingest.watch_gateway import WatchGateway
from plumbing.db import connect_pool
from plumbing.kafka import ALARMS_TOPIC, EVENTS_TOPIC
from plumbing.mqtt import MqttClient
from plumbing.service import Running
from plumbing.settings import Settings

__all__ = ["build_ingest", "build_rules", "build_telemetry", "build_watch_gateway"]


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


async def build_rules(settings: Settings, stack: AsyncExitStack) -> Running:
    bootstrap = settings.require_kafka_bootstrap()
    database_url = settings.require_database_url()
    pool = await connect_pool(database_url)
    stack.push_async_callback(pool.close)
    # Before the consumer, so it stops after it: the changes of the last batch go out too.
    publisher = AlertPublisher(database_url=database_url, bootstrap=bootstrap)
    await stack.enter_async_context(publisher)
    configs = await stack.enter_async_context(ResidentConfigs(pool=pool))
    store = RuleStateStore(pool=pool, group_id=settings.rules_group, topic=EVENTS_TOPIC)
    worker = RulesWorker(pool=pool, store=store, configs=configs)
    consumer = BatchConsumer(
        name="rules",
        bootstrap=bootstrap,
        group_id=settings.rules_group,
        handler=worker.handle,
        max_records=settings.batch_max_records,
        positions=store,
    )
    await stack.enter_async_context(consumer)
    alarm_lane = BatchConsumer(
        name="alarms",
        bootstrap=bootstrap,
        group_id=f"{settings.rules_group}-alarms",
        handler=AlarmLane(pool=pool).handle,
        topic=ALARMS_TOPIC,
        urgent=True,
    )
    await stack.enter_async_context(alarm_lane)
    ticker = Ticker(worker=worker, caught_up=_caught_up(consumer), interval=settings.rules_tick_s)
    await stack.enter_async_context(ticker)

    def health() -> dict[str, Any]:
        consuming, alarms, publishing = consumer.health(), alarm_lane.health(), publisher.health()
        ok = consuming["ok"] and alarms["ok"] and publishing["ok"]
        return {**consuming, "ok": ok, "alarm_lane": alarms, "publisher": publishing}

    watch = [consumer.done, alarm_lane.done, publisher.done, ticker.done]
    return Running(health=health, watch=watch)


def _caught_up(consumer: BatchConsumer, backlog: int = 1000) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        lag = await consumer.lag()
        return lag is not None and lag < backlog

    return check


async def build_telemetry(settings: Settings, stack: AsyncExitStack) -> Running:
    pool = await connect_pool(settings.require_database_url(), init=prepare_connection)
    stack.push_async_callback(pool.close)
    writer = TelemetryWriter(pool=pool)
    consumer = BatchConsumer(
        name="telemetry",
        bootstrap=settings.require_kafka_bootstrap(),
        group_id=settings.telemetry_group,
        handler=writer.handle,
        max_records=settings.batch_max_records,
    )
    await stack.enter_async_context(consumer)
    return Running(health=consumer.health, watch=[consumer.done])


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
