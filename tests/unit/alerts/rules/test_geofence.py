"""geofence_exit: hysteresis and accuracy at the boundary, device time, windows, shapes."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from alerts.rules import RaiseAlert, ResolveAlert
from alerts.rules.config import Zone
from alerts.rules.geofence import RULE, distance_m, outside_by_m
from tests.unit.alerts.rules.rule_harness import HOME, T0, Device, local, north_of

CIRCLE = {"name": "home", "center": list(HOME), "radius_m": 200}


def _device(*zones: dict[str, object], **geofence: object) -> Device:
    return Device(RULE, {"geofence": {"zones": list(zones) or [CIRCLE], **geofence}})


def _at(device: Device, metres: float, minutes: float, **fields: object) -> list[object]:
    """A fix `metres` north of HOME, `minutes` after T0 by device time."""
    lat, lon = north_of(HOME, metres)
    return device.send("location", T0 + timedelta(minutes=minutes), lat=lat, lon=lon, **fields)


def test_leaving_alerts_once_and_coming_back_resolves() -> None:
    device = _device()
    assert _at(device, 100, 0) == []
    (alert,) = _at(device, 300, 1)
    assert isinstance(alert, RaiseAlert)
    assert (alert.kind, alert.severity, alert.ts) == (
        "geofence_exit",
        "critical",
        T0 + timedelta(minutes=1),
    )
    assert alert.lat == pytest.approx(north_of(HOME, 300)[0]) and "home" in alert.summary
    assert _at(device, 400, 2) == []
    (back,) = _at(device, 50, 3)
    assert isinstance(back, ResolveAlert) and back.reason == "back inside safe zone home"
    assert _at(device, 60, 4) == []


def test_flapping_gps_at_the_boundary_raises_once() -> None:
    device = _device()  # radius 200 m, hysteresis 30 m
    walk = [150, 215, 190, 225, 185, 240, 210, 195, 175, 228, 205, 180, 260, 215, 250]
    decisions = [d for i, metres in enumerate(walk) for d in _at(device, metres, i)]
    assert [d.kind for d in decisions] == ["geofence_exit"]
    assert isinstance(decisions[0], RaiseAlert) and "40 m outside" in decisions[0].summary


def test_a_fix_counts_as_outside_only_beyond_its_accuracy() -> None:
    device = _device()
    assert _at(device, 300, 0, accuracy_m=150) == []  # 100 m out, but ±150 m
    assert _at(device, 400, 1, accuracy_m=150) != []  # 200 m out: out whatever the error
    assert _at(device, 100, 2, accuracy_m=150) == []  # 100 m in, ±150 m: not surely back
    assert _at(device, 0, 3, accuracy_m=150) != []


def test_a_late_fix_never_changes_state() -> None:
    device = _device()
    assert _at(device, 100, 0) == []
    assert _at(device, 300, 10) != []
    assert _at(device, 0, 5) == []  # older than the newest fix: history
    assert _at(device, 0, 10) == []  # same device time: a repeat
    assert _at(device, 0, 12) != []  # back inside
    assert _at(device, 300, 11) == []  # a late fix does not move the resident back out
    assert device.state["outside"] is False


def test_a_night_only_zone_alerts_only_at_night() -> None:
    zone = {**CIRCLE, "window": "22:00-06:00"}
    device = _device(zone)
    lat, lon = north_of(HOME, 500)
    assert device.send("location", local(23, 15), lat=lat, lon=lon) == []  # afternoon
    assert device.send("location", local(23, 21, 59), lat=lat, lon=lon) == []
    (alert,) = device.send("location", local(23, 22, 1), lat=lat, lon=lon)
    assert alert.kind == "geofence_exit"
    (back,) = device.send("location", local(23, 23), lat=HOME[0], lon=HOME[1])
    assert isinstance(back, ResolveAlert)


def test_outside_when_the_window_ends_resolves_once_home_by_day() -> None:
    device = _device({**CIRCLE, "window": "22:00-06:00"})
    lat, lon = north_of(HOME, 500)
    assert device.send("location", local(23, 5, 50), lat=lat, lon=lon) != []
    assert device.send("location", local(23, 7), lat=lat, lon=lon) == []  # still out
    (back,) = device.send("location", local(23, 10), lat=HOME[0], lon=HOME[1])
    assert isinstance(back, ResolveAlert)
    # ...so the next night's walk is a new alert, not silence
    assert device.send("location", local(23, 23), lat=lat, lon=lon) != []


def test_outside_means_outside_every_active_zone() -> None:
    park = {"name": "park", "center": list(north_of(HOME, 600)), "radius_m": 150}
    device = _device(CIRCLE, park)
    assert _at(device, 600, 0) == []  # in the park
    assert _at(device, 430, 1) == []  # 230 m out of home, but only 20 m out of the park
    (alert,) = _at(device, 1000, 2)
    assert "home, park: 250 m outside" in alert.summary
    (back,) = _at(device, 650, 3)
    assert isinstance(back, ResolveAlert) and back.reason.endswith("park")


def _square(metres: float) -> list[list[float]]:
    """A square of side `metres` around HOME, as [lat, lon] points."""
    half_lat = math.degrees(metres / 2 / 6_371_008.8)
    half_lon = half_lat / math.cos(math.radians(HOME[0]))
    lat, lon = HOME
    return [
        [lat - half_lat, lon - half_lon],
        [lat - half_lat, lon + half_lon],
        [lat + half_lat, lon + half_lon],
        [lat + half_lat, lon - half_lon],
    ]


def test_polygon_zone() -> None:
    device = _device({"name": "block", "polygon": _square(400)})
    assert _at(device, 150, 0) == []  # 50 m inside the north edge
    assert _at(device, 220, 1) == []  # 20 m outside: within the hysteresis
    (alert,) = _at(device, 300, 2)
    assert "100 m outside" in alert.summary
    assert _at(device, 190, 3) == []  # 10 m inside: not yet
    assert isinstance(_at(device, 100, 4)[0], ResolveAlert)


def test_distances_are_metres_on_the_ground() -> None:
    beijing = (39.9042, 116.4074)
    assert distance_m(HOME, beijing) == pytest.approx(1_067_000, rel=0.01)
    polygon = Zone(name="p", polygon=[tuple(p) for p in _square(400)])
    circle = Zone(name="c", center=HOME, radius_m=200)
    for metres in (0, 150, 250, 1000):
        point = north_of(HOME, metres)
        assert outside_by_m(polygon, point) == pytest.approx(metres - 200, abs=0.5)
        assert outside_by_m(circle, point) == pytest.approx(metres - 200, abs=0.5)


def test_device_side_geofence_events_count() -> None:
    device = _device()
    (alert,) = device.send("geofence", T0, transition="leave", zone="home")
    assert alert.kind == "geofence_exit" and alert.lat is None
    assert device.send("geofence", T0 + timedelta(minutes=1), transition="leave", zone="x") == []
    assert _at(device, 0, 0.5) == []  # older than the leave event
    (back,) = device.send("geofence", T0 + timedelta(minutes=2), transition="enter", zone="home")
    assert isinstance(back, ResolveAlert)


def test_device_side_events_respect_the_configured_zones_window() -> None:
    device = _device({**CIRCLE, "window": "22:00-06:00"})
    assert device.send("geofence", local(23, 15), transition="leave", zone="home") == []
    assert device.send("geofence", local(23, 23), transition="leave", zone="home") != []


def test_device_side_events_can_be_turned_off() -> None:
    device = _device(device_zones=False)
    assert device.send("geofence", T0, transition="leave", zone="home") == []


def test_nothing_without_zones_or_when_disabled() -> None:
    assert Device(RULE).send("location", lat=0.0, lon=0.0) == []
    device = _device(enabled=False)
    assert _at(device, 5000, 0) == []
