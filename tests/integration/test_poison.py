"""A record a worker cannot store is set aside on the dead-letter topic and costs only
itself: the events of other devices, and of the same device, are stored around it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from devices.events import make_event
from plumbing.kafka import EVENTS_TOPIC, make_producer
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration


def _event(device_id: str, kind: str, n: int, **fields: object) -> bytes:
    now = datetime.now(UTC)
    event = make_event(
        device_id=device_id, kind=kind, ts=now, received_at=now, source="native",
        fields=fields, msg_id=f"poison-{n}",
    )  # fmt: skip
    return event.model_dump_json().encode()


async def test_an_event_postgresql_refuses_goes_to_the_dead_letters_not_in_the_way(
    pipeline: Pipeline, device: str
) -> None:
    good = _event(device, "battery", 1, battery_pct=70)
    # As an older ingest would have let through: jsonb refuses a NUL in a string.
    body = orjson.loads(_event(device, "sensor", 2, sensor="door", state="open"))
    body["state"] = "op\u0000en"
    bad = orjson.dumps(body)
    after = _event(device, "battery", 3, battery_pct=69)
    producer = make_producer(pipeline.stack.kafka_bootstrap)
    await producer.start()
    try:
        for value in (good, bad, after):
            await producer.send_and_wait(EVENTS_TOPIC, value, key=device.encode())
    finally:
        await producer.stop()

    rows = await pipeline.wait_events(device, 2)
    assert sorted(r["kind"] for r in rows) == ["battery", "battery"]

    async def set_aside() -> dict[str, object] | None:
        return next(
            (r for r in pipeline.dlq if r.get("device_id") == device and r.get("worker")), None
        )

    record = await eventually(set_aside)
    assert record["topic"] == EVENTS_TOPIC
    assert record["reason"] in ("undecodable_record", "unappliable_record")
    assert isinstance(record["offset"], int) and isinstance(record["partition"], int)
    assert orjson.loads(base64.b64decode(str(record["payload_b64"]))) == body
