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


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "geofence", "transition": "leave", "zone": "h\x00me"},
        {"kind": "sensor", "sensor": "door", "state": "op\x00en"},
        {"kind": "sensor", "sensor": "do\ud800r", "state": "open"},
        {"kind": "heartbeat", "ts": datetime(1999, 12, 31, 23, 59, tzinfo=UTC)},
        {"kind": "heartbeat", "ts": "0001-01-01T00:00:00+01:00"},  # no UTC form: not a crash
        {"kind": "battery", "battery_pct": float("nan")},
        {"kind": "location", "lat": 1, "lon": 2, "altitude_m": float("inf")},
    ],
)
def test_what_postgresql_or_json_cannot_hold_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _event(**fields)


def test_a_worker_refuses_a_stored_record_it_could_not_store() -> None:
    # Written before the model refused them: a worker sets such a record aside (DLQ)
    # instead of failing every batch that holds it.
    good = orjson.loads(event_to_json(_event(kind="geofence", transition="leave", zone="home")))
    for change in ({"zone": "h\x00me"}, {"ts": "0001-01-01T00:00:00Z"}):
        with pytest.raises(ValidationError):
            event_from_json(orjson.dumps({**good, **change}))


def test_contract_extensions_are_optional_and_absent_by_default() -> None:
    sos, location = _event(), _event(kind="location", lat=31.2, lon=121.5)
    assert sos.salvaged is None and location.fix is None  # type: ignore[union-attr]
    assert "salvaged" not in orjson.loads(event_to_json(sos))
    stale = _event(kind="location", lat=31.2, lon=121.5, fix=False)
    assert orjson.loads(event_to_json(stale))["fix"] is False
    salvaged = _event(salvaged=["ts"])
    assert salvaged.event_id == sos.event_id  # how carewatch read it is not its identity
