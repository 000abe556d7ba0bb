"""The rules never raise, whatever the times: ingest refuses device times before 2000, but
events and state stored before that check may hold times near year 1 or 9999, where date
arithmetic overflows. A rule that raises stops the worker (or its timer) for every device.

Such events cannot be made through `make_event` any more: the tests build a valid event and
set its times afterwards (`model_copy` does not validate), as an old record would hold them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.rules import RULES, Context, RaiseAlert, alarms, geofence, inactivity, worn
from alerts.rules._support import active_seconds, in_window, local_time
from devices.events import Event, make_event
from tests.unit.alerts.rules.rule_harness import HOME, T0, Device, north_of
from tests.unit.alerts.rules.test_rule_properties import _FIELDS, CONFIG

YEAR_1 = datetime(1, 1, 1, tzinfo=UTC)
YEAR_9999 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _old(kind: str, ts: datetime, received: datetime = T0, **fields: Any) -> Event:
    """An event as a record written before ingest bounded device time could hold it."""
    event = make_event(device_id="d1", kind=kind, ts=T0, received_at=T0, source="t", fields=fields)
    return event.model_copy(update={"ts": ts, "received_at": received})


# -- the findings ----------------------------------------------------------------------------


def test_two_falls_dated_year_1_do_not_stop_the_rules_worker() -> None:
    device = Device(alarms.RULE)
    for n in range(2):
        (decision,) = device.feed(_old("fall", YEAR_1 + timedelta(seconds=n), confirmed=bool(n)))
        assert isinstance(decision, RaiseAlert) and decision.kind == "fall"
    # The cancel matches the newer fall; the older one keeps the alert open.
    assert device.feed(_old("fall", YEAR_1 + timedelta(seconds=5), cancelled=True)) == []


def test_a_fall_and_its_cancel_at_the_end_of_time_do_not_overflow() -> None:
    device = Device(alarms.RULE)
    assert device.feed(_old("fall", YEAR_9999 - timedelta(seconds=1)))
    (resolved,) = device.feed(_old("fall", YEAR_9999, cancelled=True))
    assert resolved.kind == "fall"


def test_activity_dated_year_1_does_not_kill_the_inactivity_timer() -> None:
    device = Device(inactivity.RULE)
    device.feed(_old("activity", YEAR_1, motion=True))
    device.advance(hours=4)
    device.send("heartbeat")  # the device itself still talks
    (decision,) = device.tick()  # no activity since year 1: inactive, said without crashing
    assert isinstance(decision, RaiseAlert) and decision.kind == "inactivity"


def test_a_watch_taken_off_in_year_1_does_not_kill_the_worn_timer() -> None:
    device = Device(worn.RULE)
    device.feed(_old("worn", YEAR_1, worn=False))
    device.advance(hours=1)
    assert [d.kind for d in device.tick()] == ["not_worn"]


def test_time_helpers_hold_at_the_ends_of_the_calendar() -> None:
    from alerts.rules._support import shift  # new: imported here, so the rest runs without it

    assert shift(YEAR_9999, timedelta(days=1)) == datetime.max.replace(tzinfo=UTC)
    assert shift(YEAR_1, -timedelta(days=1)) == datetime.min.replace(tzinfo=UTC)
    assert local_time(YEAR_1, "America/New_York") and local_time(YEAR_9999, "Asia/Shanghai")
    assert in_window(YEAR_1, "08:00-20:00", "America/New_York") in (True, False)
    assert active_seconds(YEAR_1, T0, "00:00-23:59", "Asia/Shanghai", 600) >= 600
    assert active_seconds(T0, YEAR_9999, "00:00-23:59", "America/New_York", 600) >= 600


# -- a location without a fix decides nothing ---------------------------------------------


def test_a_last_known_position_never_raises_or_resolves_a_geofence_alert() -> None:
    zones = {"geofence": {"zones": [{"name": "home", "center": list(HOME), "radius_m": 200}]}}
    device = Device(geofence.RULE, zones)
    far = north_of(HOME, 5000)
    assert device.send("location", lat=far[0], lon=far[1], fix=False) == []
    assert device.state == {}  # not even the newest position: it is not one
    device.advance(minutes=1)
    (raised,) = device.send("location", lat=far[0], lon=far[1])
    assert raised.kind == "geofence_exit"
    device.advance(minutes=1)
    assert device.send("location", lat=HOME[0], lon=HOME[1], fix=False) == []
    device.advance(minutes=1)
    assert [d.kind for d in device.send("location", lat=HOME[0], lon=HOME[1])] == ["geofence_exit"]


# -- any times at all -----------------------------------------------------------------------

_ANY_TIME = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from([datetime.min, datetime.max, datetime(1999, 12, 31, 16)]),
).map(lambda moment: moment.replace(tzinfo=UTC))
_STEPS = st.lists(
    st.tuples(st.one_of(_FIELDS, st.just(("tick", {}))), _ANY_TIME, _ANY_TIME),
    max_size=20,
)


@settings(max_examples=150)
@given(_STEPS, st.sampled_from([0, 1, -1]))
def test_evaluate_and_tick_never_raise_on_any_times(steps: list[Any], sign: int) -> None:
    states: dict[str, dict[str, Any]] = {rule.name: {} for rule in RULES}
    now = T0
    for (kind, fields), ts, received in steps:
        ctx = Context(now=now, config=CONFIG)
        for rule in RULES:
            if kind != "tick":
                rule.evaluate(_old(kind, ts, received, **fields), states[rule.name], ctx)
            elif rule.tick is not None:
                rule.tick(states[rule.name], ctx)
        now += sign * timedelta(hours=7)  # the worker's clock: steady, or even going back
