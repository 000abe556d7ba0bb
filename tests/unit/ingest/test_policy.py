"""Ingest's time policy: events from the future are refused, except the ones that raise
alerts, which are kept at their receive time with the device's claim beside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devices.events import Event, make_event
from ingest.policy import TIMESTAMP_IN_FUTURE, check_times

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LOCAL_TIME = NOW + timedelta(hours=8)  # a watch set to UTC+8, read as UTC


def _event(kind: str, **fields: object) -> Event:
    return make_event(
        device_id="w1", kind=kind, ts=LOCAL_TIME, received_at=NOW, source="watch",
        fields=fields,
    )  # fmt: skip


def test_a_clock_ahead_loses_telemetry_but_no_alarm_or_alerting_state_change() -> None:
    events = [
        _event("heartbeat"),
        _event("location", lat=31.2, lon=121.4),
        _event("sos"),
        _event("fall"),
        _event("geofence", transition="leave", zone="device"),
        _event("worn", worn=False),
    ]
    kept, rejects = check_times(events, NOW, timedelta(minutes=5), "watch")
    assert [e.kind for e in kept] == ["sos", "fall", "geofence", "worn"]
    assert all(e.ts == NOW and e.device_ts == LOCAL_TIME for e in kept)
    assert [r.reason for r in rejects] == [TIMESTAMP_IN_FUTURE] * 2


def test_a_clock_a_little_ahead_is_accepted_as_it_is() -> None:
    event = make_event(
        device_id="w1", kind="heartbeat", ts=NOW + timedelta(minutes=4), received_at=NOW,
        source="native", fields={},
    )  # fmt: skip
    kept, rejects = check_times([event], NOW, timedelta(minutes=5), "native")
    assert (kept, rejects) == ([event], [])
