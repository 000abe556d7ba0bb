"""The alarm topic (`carewatch/v1/devices/{id}/alarm`): ingest reads it on an MQTT session
of its own, so an alarm never waits in the broker's queue behind telemetry."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from carewatch.embedded.stack import EmbeddedStack
from devices.codecs.native import alarm_topic_for, topic_for
from ingest.pipeline import ALARM_HELD_FACTOR, Ingest
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration

BACKLOG = 1500
FLOOD = 400


async def test_an_sos_on_the_alarm_topic_alerts(pipeline: Pipeline, device: str) -> None:
    sos = orjson.dumps({"kind": "sos", "msg_id": "alarm-topic-1"})
    await (await pipeline.client(device)).publish(alarm_topic_for(device), sos)
    alert = await pipeline.wait_alert(device, "sos")
    assert (alert["status"], alert["count"]) == ("open", 1)


async def test_only_alarms_may_use_the_alarm_topic(pipeline: Pipeline, device: str) -> None:
    """It jumps every queue, so nothing else may ride it; an alarm next to the refused
    element still alerts."""
    batch = [{"kind": "location", "lat": 31.2, "lon": 121.5}, {"kind": "fall", "msg_id": "f1"}]
    await (await pipeline.client(device)).publish(alarm_topic_for(device), orjson.dumps(batch))
    (reject,) = await pipeline.wait_dlq(device)
    assert reject["reason"] == "not_an_alarm" and "/up" in reject["detail"]
    await pipeline.wait_alert(device, "fall")


async def test_an_alarm_overtakes_a_backlog_of_telemetry(
    stack: EmbeddedStack, pipeline: Pipeline, device: str
) -> None:
    """A backlog waits in the broker for an ingest that is away (a restart, an outage);
    the SOS pressed after it arrives among the first messages once ingest is back, not
    after the whole backlog as it would on one session (one FIFO queue per session)."""
    presser = await pipeline.register()
    make = _ingest_factory(stack, f"test-backlog-{uuid.uuid4().hex[:8]}")
    async with make([]):  # its two persistent sessions exist and are subscribed
        pass
    client = await pipeline.client(device)
    heartbeats = (orjson.dumps({"kind": "heartbeat", "msg_id": f"b{n}"}) for n in range(BACKLOG))
    await asyncio.gather(*(client.publish(topic_for(device), body) for body in heartbeats))
    sos = orjson.dumps({"kind": "sos", "msg_id": "after-the-backlog"})
    await (await pipeline.client(presser)).publish(alarm_topic_for(presser), sos)

    arrivals: list[str] = []
    held: list[int] = []  # messages in hand on the ordinary session, at each arrival
    async with make(arrivals, held):

        async def sos_arrived() -> int | None:
            topic = alarm_topic_for(presser)
            return arrivals.index(topic) if topic in arrivals else None

        position = await eventually(sos_arrived)
        await eventually(lambda: _at_least(arrivals, 200))
    assert position < 50, f"the SOS came as message {position} of {len(arrivals)}"
    # Never more in hand than the Receive Maximum (5), although the broker sends more
    # once acks flow: ingest stops reading the session instead.
    assert max(held) <= 5, f"held up to {max(held)} messages"


async def test_a_flood_on_the_alarm_topic_is_held_in_the_broker_not_in_ingest(
    stack: EmbeddedStack, pipeline: Pipeline, device: str
) -> None:
    """The alarm session is read first and stopped late, but stopped: at five times the
    ordinary limit (25 here), so a device flooding its alarm topic cannot take ingest's
    memory (mosquitto sends past the Receive Maximum once acks flow)."""
    make = _ingest_factory(stack, f"test-flood-{uuid.uuid4().hex[:8]}")
    async with make([]):
        pass
    client = await pipeline.client(device)
    flood = (orjson.dumps({"kind": "sos", "msg_id": f"flood-{n}"}) for n in range(FLOOD))
    await asyncio.gather(*(client.publish(alarm_topic_for(device), body) for body in flood))
    arrivals: list[str] = []
    held: list[int] = []
    async with make(arrivals, held, alarms=True):
        await eventually(lambda: _at_least(arrivals, FLOOD))
    assert max(held) <= 5 * ALARM_HELD_FACTOR, f"held up to {max(held)} alarm messages"


async def _at_least(arrivals: list[str], count: int) -> bool:
    return len(arrivals) >= count


def _ingest_factory(stack: EmbeddedStack, client_id: str) -> Any:
    """Ingests with one client id (so the same sessions) that note the topic of every
    message as it arrives. A plain subscription: its sessions get every message whatever
    the pipeline's own ingest takes. Receive Maximum 5: the backlog drains slowly. `held`
    notes the messages in hand on the ordinary session (the alarm session: `alarms`)."""

    def make(arrivals: list[str], held: list[int] | None = None, *, alarms: bool = False) -> Ingest:
        ingest = Ingest(
            mqtt_url=stack.mqtt_urls["ingest"],
            kafka_bootstrap=stack.kafka_bootstrap,
            database_url=stack.database_url,
            client_id=client_id,
            mqtt_protocol=stack.mqtt_protocol,
            max_inflight=5,
        )
        handle = ingest._on_message

        def noted(message: Any, generation: int, session: Any) -> None:
            arrivals.append(message.topic)
            handle(message, generation, session)
            if held is not None and session.alarm == alarms:
                held.append(len(session.acks))

        ingest._on_message = noted  # type: ignore[method-assign]
        return ingest

    return make
