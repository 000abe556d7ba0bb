"""End to end through the real pipeline: MQTT -> ingest -> Kafka -> workers -> PostgreSQL."""

from __future__ import annotations

import base64
import uuid

import orjson
import pytest
from prometheus_client import REGISTRY

from plumbing.kafka import ALARMS_TOPIC, make_producer, topic_exists
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_sos_becomes_exactly_one_open_alert(pipeline: Pipeline, device: str) -> None:
    await pipeline.publish(device, {"kind": "sos", "msg_id": "press-1"})
    alert = await pipeline.wait_alert(device, "sos")
    assert (alert["status"], alert["severity"], alert["count"]) == ("open", "critical", 1)
    assert alert["lat"] is None and "no position" in alert["summary"]

    await pipeline.settle(device)
    assert [a["kind"] for a in await pipeline.alerts(device)] == ["sos", "fall"]
    (stored,) = [e for e in await pipeline.events(device) if e["kind"] == "sos"]
    assert orjson.loads(stored["body"])["device_id"] == device


async def test_the_same_message_twice_is_one_row_and_one_count(
    pipeline: Pipeline, device: str
) -> None:
    # No msg_id: the id comes from the content, which a redelivery repeats exactly.
    message = orjson.dumps({"kind": "sos", "ts": "2026-11-22T08:00:00Z", "lat": 31.2, "lon": 121.5})
    await pipeline.publish(device, message)
    await pipeline.publish(device, message)
    await pipeline.settle(device)

    sos_rows = [e for e in await pipeline.events(device) if e["kind"] == "sos"]
    (sos,) = [a for a in await pipeline.alerts(device) if a["kind"] == "sos"]
    assert len(sos_rows) == 1
    assert sos["count"] == 1 and (sos["lat"], sos["lon"]) == (31.2, 121.5)


async def test_a_repeated_press_counts_on_the_open_alert(pipeline: Pipeline, device: str) -> None:
    await pipeline.publish(device, {"kind": "sos", "msg_id": "1"})
    await pipeline.publish(device, {"kind": "sos", "msg_id": "2"})
    await pipeline.settle(device)
    sos = [a for a in await pipeline.alerts(device) if a["kind"] == "sos"]
    assert [a["count"] for a in sos] == [2]


async def test_malformed_payload_goes_to_dlq_and_its_neighbour_is_stored(
    pipeline: Pipeline, device: str
) -> None:
    rejected_before = _metric("carewatch_ingest_rejects_total", reason="invalid_json")
    await pipeline.publish(device, b'{"kind": "sos", ')
    await pipeline.publish(device, {"kind": "battery", "battery_pct": 41})

    (record,) = await pipeline.wait_dlq(device)
    assert record["reason"] == "invalid_json" and record["protocol"] == "native"
    assert record["topic"] == f"carewatch/v1/devices/{device}/up"
    assert base64.b64decode(record["payload_b64"]) == b'{"kind": "sos", '
    assert record["received_at"]
    (battery,) = await pipeline.wait_events(device, 1)
    assert battery["kind"] == "battery"
    assert _metric("carewatch_ingest_rejects_total", reason="invalid_json") > rejected_before


async def test_one_bad_element_of_a_batch_is_rejected_alone(
    pipeline: Pipeline, device: str
) -> None:
    await pipeline.publish(
        device,
        [
            {"kind": "location", "lat": 31.2, "lon": 121.5, "msg_id": "a"},
            {"kind": "vitals", "heart_rate_bpm": "fast", "msg_id": "b"},
            {"kind": "sos", "msg_id": "c"},
        ],
    )
    (record,) = await pipeline.wait_dlq(device)
    assert (record["reason"], record["index"]) == ("invalid_field", 1)
    await pipeline.wait_alert(device, "sos")
    kinds = {e["kind"] for e in await pipeline.wait_events(device, 2)}
    assert kinds == {"location", "sos"}


async def test_a_device_cannot_write_as_another(pipeline: Pipeline, device: str) -> None:
    victim = device + "-victim"
    await pipeline.publish(device, {"kind": "sos", "device_id": victim})
    (record,) = await pipeline.wait_dlq(device)
    assert record["reason"] == "device_mismatch" and victim in record["detail"]

    await pipeline.settle(device)
    assert [a["kind"] for a in await pipeline.alerts(device)] == ["fall"]
    assert await pipeline.alerts(victim) == []
    assert await pipeline.events(victim) == []


async def test_oversized_payload_is_rejected_and_truncated(pipeline: Pipeline, device: str) -> None:
    huge = orjson.dumps({"kind": "sos", "pad": "x" * 70_000})
    await pipeline.publish(device, huge)
    await pipeline.publish(device, {"kind": "sos", "msg_id": "after"})
    (record,) = await pipeline.wait_dlq(device)
    assert record["reason"] == "payload_too_large"
    assert record["payload_size"] == len(huge) and record["payload_truncated"] is True
    await pipeline.wait_alert(device, "sos")


async def test_a_cancelled_fall_is_stored_but_does_not_alert(
    pipeline: Pipeline, device: str
) -> None:
    await pipeline.publish(device, {"kind": "fall", "cancelled": True, "msg_id": "f1"})
    await pipeline.publish(device, {"kind": "sos", "msg_id": "s1"})
    await pipeline.wait_alert(device, "sos")
    rows = await pipeline.wait_events(device, 2)
    assert {r["kind"] for r in rows} == {"fall", "sos"}
    await pipeline.settle(device)  # the rules worker has seen the cancel too
    alerts = {a["kind"]: a["count"] for a in await pipeline.alerts(device)}
    assert alerts == {"sos": 1, "fall": 1}  # that fall is settle's own: the cancel raised none


async def test_the_alarm_lane_alerts_while_the_rules_worker_is_behind(
    pipeline: Pipeline, device: str
) -> None:
    async with pipeline.rules.worker_stuck():
        await pipeline.publish(device, {"kind": "sos", "msg_id": "press-1"})
        alert = await pipeline.wait_alert(device, "sos")
        assert (alert["status"], alert["count"]) == ("open", 1)
    # The worker catches up and decides the same raise: it changes nothing.
    await pipeline.settle(device)
    (sos,) = [a for a in await pipeline.alerts(device) if a["kind"] == "sos"]
    assert (sos["alert_id"], sos["count"]) == (alert["alert_id"], 1)


async def test_a_fall_the_alarm_lane_raised_is_still_cancelled_by_the_wearer(
    pipeline: Pipeline, device: str
) -> None:
    async with pipeline.rules.worker_stuck():
        await pipeline.publish(device, {"kind": "fall", "msg_id": "f1"})
        await pipeline.wait_alert(device, "fall")
        await pipeline.publish(device, {"kind": "fall", "cancelled": True, "msg_id": "c1"})

    async def resolved() -> dict[str, object] | None:
        (fall,) = [a for a in await pipeline.alerts(device) if a["kind"] == "fall"]
        return fall if fall["status"] == "resolved" else None

    fall = await eventually(resolved)  # the cancel needs the worker's state: once it is back
    assert (fall["resolution"], fall["count"]) == ("cancelled by wearer", 1)


async def test_ingest_copies_alarms_only_to_a_lane_topic_that_exists(pipeline: Pipeline) -> None:
    """Writing to a missing topic would stall ingest: an older deployment without the
    alarm lane's topic must keep alerting through the events topic."""
    assert pipeline.ingest.health()["alarm_lane"] is True
    async with make_producer(pipeline.stack.kafka_bootstrap) as producer:
        assert await topic_exists(producer, ALARMS_TOPIC)
        assert not await topic_exists(producer, f"carewatch.missing-{uuid.uuid4().hex}")
