"""The canonical event contract: its schema file, its ids, its wire form."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from devices.events import ALARM_KINDS, KINDS, event_from_json, event_to_json, make_event
from devices.schema import event_schema_json

SCHEMA_FILE = Path(__file__).parents[3] / "docs" / "schema" / "event.v1.json"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
# DESIGN.md's kinds: a contract, so removing one must fail a test.
CONTRACT_KINDS = {
    "location", "vitals", "activity", "battery", "sos", "fall",
    "heartbeat", "geofence", "sensor", "worn",
}  # fmt: skip


def test_schema_file_is_in_sync_with_the_models() -> None:
    assert SCHEMA_FILE.read_text() == event_schema_json(), (
        "docs/schema/event.v1.json is stale: run `carewatch schema --write`"
    )


def test_kinds_extend_the_contract() -> None:
    assert CONTRACT_KINDS <= KINDS
    assert {"sos", "fall"} <= ALARM_KINDS


def _event(**fields: object):  # type: ignore[no-untyped-def]
    base: dict[str, object] = {"device_id": "d1", "kind": "sos", "ts": NOW}
    base.update(fields)
    kind, device, ts = base.pop("kind"), base.pop("device_id"), base.pop("ts")
    return make_event(
        device_id=str(device), kind=str(kind), ts=ts, received_at=NOW, source="t", fields=base
    )


def test_wire_form_round_trips_and_leaves_out_absent_fields() -> None:
    event = _event(kind="location", lat=31.2, lon=121.5)
    wire = orjson.loads(event_to_json(event))
    assert "accuracy_m" not in wire
    assert wire["ts"] == "2026-11-22T08:00:00Z"
    assert event_from_json(event_to_json(event)) == event


def test_event_id_ignores_receive_time_and_source_but_not_content() -> None:
    a = _event(kind="location", lat=31.2, lon=121.5)
    b = make_event(
        device_id="d1",
        kind="location",
        ts=NOW,
        received_at=datetime(2027, 1, 1, tzinfo=UTC),
        source="other",
        fields={"lat": 31.2, "lon": 121.5},
    )
    assert a.event_id == b.event_id
    assert _event(kind="location", lat=31.2, lon=121.6).event_id != a.event_id


def test_events_are_immutable_and_strict() -> None:
    event = _event()
    with pytest.raises(ValidationError):
        event.device_id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        _event(ts=datetime(2026, 11, 22))  # naive: which zone?
