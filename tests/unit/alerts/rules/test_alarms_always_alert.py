"""SOS and fall always alert: no position, late, or repeated makes no difference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.rules import RULES, Context
from alerts.rules.alarms import evaluate
from devices.events import make_event

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CTX = Context(now=NOW)


def _event(kind: str, ts: datetime = NOW, **fields: object):  # type: ignore[no-untyped-def]
    return make_event(
        device_id="d1", kind=kind, ts=ts, received_at=NOW, source="t", fields=dict(fields)
    )


def test_sos_without_position_alerts() -> None:
    (decision,) = evaluate(_event("sos"), {}, CTX)
    assert (decision.kind, decision.severity) == ("sos", "critical")
    assert decision.lat is None and "no position" in decision.summary


def test_sos_with_position_carries_it() -> None:
    (decision,) = evaluate(_event("sos", lat=31.23, lon=121.47), {}, CTX)
    assert (decision.lat, decision.lon) == (31.23, 121.47)


def test_a_day_old_sos_still_alerts() -> None:
    assert evaluate(_event("sos", ts=NOW - timedelta(days=1)), {}, CTX)


def test_fall_alerts_unless_the_wearer_cancelled_it() -> None:
    (decision,) = evaluate(_event("fall", confirmed=True), {}, CTX)
    assert decision.kind == "fall" and "confirmed" in decision.summary
    assert evaluate(_event("fall", cancelled=False), {}, CTX)
    assert evaluate(_event("fall", cancelled=True), {}, CTX) == []


def test_other_kinds_do_not_alarm() -> None:
    assert evaluate(_event("heartbeat"), {}, CTX) == []
    assert evaluate(_event("battery", battery_pct=3), {}, CTX) == []


def test_the_alarm_rule_is_registered() -> None:
    assert "alarms" in {rule.name for rule in RULES}


def test_a_salvaged_alarm_alerts_and_tells_the_operator_what_was_dropped() -> None:
    (decision,) = evaluate(_event("sos", salvaged=["ts", "position"]), {}, CTX)
    assert decision.kind == "sos" and decision.lat is None
    assert decision.summary.endswith("(no position); invalid data dropped: ts, position")
