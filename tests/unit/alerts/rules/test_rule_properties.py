"""Properties of every registered rule over arbitrary event sequences: the state stays
plain JSON (the worker stores it), and a timer's key never depends on the clock."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.rules import RULES, Context, RaiseAlert
from devices.events import make_event
from tests.unit.alerts.rules.rule_harness import HOME, T0, config

CONFIG = config(
    {
        "vitals": {"min_readings": 2, "min_duration_min": 1, "resolve_after_min": 3},
        "geofence": {
            "zones": [
                {"name": "home", "center": list(HOME), "radius_m": 300},
                {
                    "name": "night",
                    "polygon": [[31.22, 121.46], [31.24, 121.46], [31.24, 121.49]],
                    "window": "22:00-06:00",
                },
            ]
        },
    }
)

_floats = {"allow_nan": False, "allow_infinity": False}
_near = st.floats(-0.02, 0.02, **_floats)
_FIELDS = st.one_of(
    st.tuples(
        st.just("location"),
        st.fixed_dictionaries(
            {"lat": _near.map(lambda d: HOME[0] + d), "lon": _near.map(lambda d: HOME[1] + d)},
            optional={"accuracy_m": st.floats(0, 2000, **_floats)},
        ),
    ),
    st.tuples(
        st.just("vitals"),
        st.fixed_dictionaries(
            {},
            optional={
                "heart_rate_bpm": st.floats(20, 220, **_floats),
                "spo2_pct": st.floats(70, 100, **_floats),
                "body_temp_c": st.floats(33, 42, **_floats),
            },
        ).filter(bool),
    ),
    st.tuples(
        st.just("activity"),
        st.fixed_dictionaries(
            {}, optional={"steps": st.integers(0, 20_000), "motion": st.booleans()}
        ).filter(bool),
    ),
    st.tuples(st.just("battery"), st.fixed_dictionaries({"battery_pct": st.integers(0, 100)})),
    st.tuples(
        st.just("fall"),
        st.fixed_dictionaries(
            {}, optional={"cancelled": st.booleans(), "confirmed": st.booleans()}
        ),
    ),
    st.tuples(
        st.just("geofence"),
        st.fixed_dictionaries(
            {
                "transition": st.sampled_from(["enter", "leave"]),
                "zone": st.sampled_from(["home", "x"]),
            }
        ),
    ),
    st.tuples(st.just("worn"), st.fixed_dictionaries({"worn": st.booleans()})),
    st.tuples(st.sampled_from(["sos", "heartbeat"]), st.just({})),
)
# (what, device time relative to the clock in s, then how far the clock moves in s)
_STEPS = st.lists(
    st.tuples(
        st.one_of(_FIELDS, st.just(("tick", {}))),
        st.integers(-3 * 3600, 600),
        st.integers(0, 3 * 3600),
    ),
    max_size=40,
)


@settings(max_examples=150)
@given(_STEPS)
def test_state_stays_json_and_timer_keys_ignore_the_clock(steps: list[Any]) -> None:
    states: dict[str, dict[str, Any]] = {rule.name: {} for rule in RULES}
    now = T0
    for (kind, fields), offset_s, advance_s in steps:
        ctx = Context(now=now, config=CONFIG)
        if kind == "tick":
            for rule in RULES:
                if rule.tick is not None:
                    _check_tick_keys(rule.tick, states[rule.name], ctx)
                    rule.tick(states[rule.name], ctx)
        else:
            ts = now + timedelta(seconds=offset_s)
            event = make_event(
                device_id="d1", kind=kind, ts=ts, received_at=now, source="t", fields=fields
            )
            for rule in RULES:
                rule.evaluate(event, states[rule.name], ctx)
        for state in states.values():
            assert json.loads(json.dumps(state, allow_nan=False)) == state
        now += timedelta(seconds=advance_s)


def _check_tick_keys(tick: Any, state: dict[str, Any], ctx: Context) -> None:
    """Ticking from the same state now and later raises the same keys (when it raises)."""
    later = Context(now=ctx.now + timedelta(hours=5), config=ctx.config)
    now_keys = {d.kind: d.key for d in tick(copy.deepcopy(state), ctx) if isinstance(d, RaiseAlert)}
    later_keys = {
        d.kind: d.key for d in tick(copy.deepcopy(state), later) if isinstance(d, RaiseAlert)
    }
    for kind in now_keys.keys() & later_keys.keys():
        assert now_keys[kind] == later_keys[kind]
