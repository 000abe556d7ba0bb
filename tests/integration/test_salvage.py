"""Alarms salvaged, input bounded, end to end: an SOS with broken side fields still raises
its alert, with a dead-letter record of what was dropped; what PostgreSQL cannot store
never reaches it, and never holds up the events behind it."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


async def test_an_sos_with_broken_side_fields_alerts_and_says_what_was_dropped(
    pipeline: Pipeline, device: str
) -> None:
    payload = orjson.dumps(
        [
            {"kind": "heartbeat", "ts": "0001-01-01T00:00:00+01:00"},  # used to crash ingest
            {"kind": "sos", "msg_id": "p-1", "ts": "yesterday", "lat": 1000, "lon": 1, "x": 1},
        ]
    )
    await pipeline.publish(device, payload)
    alert = await pipeline.wait_alert(device, "sos")
    assert alert["lat"] is None
    assert alert["summary"].endswith("invalid data dropped: ts, position, unknown_field:x")

    records = await pipeline.wait_dlq(device, 2)
    by_reason = {r["reason"]: r for r in records}
    assert by_reason["invalid_timestamp"]["index"] == 0
    assert "before 2000-01-01" in by_reason["invalid_timestamp"]["detail"]
    salvaged = by_reason["salvaged_alarm"]
    assert salvaged["index"] == 1 and base64.b64decode(salvaged["payload_b64"]) == payload

    await pipeline.settle(device)
    (sos,) = [e for e in await pipeline.events(device) if e["kind"] == "sos"]
    assert orjson.loads(sos["body"])["salvaged"] == ["ts", "position", "unknown_field:x"]


async def test_a_nul_never_reaches_postgresql_nor_holds_up_the_events_behind_it(
    pipeline: Pipeline, device: str
) -> None:
    await pipeline.publish(
        device,
        [
            {"kind": "sensor", "sensor": "door", "state": "op\x00en"},
            {"kind": "geofence", "transition": "leave", "zone": "h\x00me"},
            {"kind": "battery", "battery_pct": 50},
        ],
    )
    records = await pipeline.wait_dlq(device, 2)
    assert sorted((r["reason"], r["index"]) for r in records) == [
        ("invalid_field", 0),
        ("invalid_field", 1),
    ]
    await pipeline.settle(device)
    assert sorted(e["kind"] for e in await pipeline.events(device)) == ["battery", "fall"]
