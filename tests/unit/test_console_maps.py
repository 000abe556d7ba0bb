"""console/maps.py: what the console's maps are given to draw (moved onto the tiles'
datum on the server), the device health verdicts and the statistics' targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.rules.geofence import distance_m
from console.fleet import health
from console.geo import TileSource, to_map
from console.maps import alarm_map, resident_map, zone_shapes
from console.supervision import below_target

NONE = TileSource(url=None)
AMAP = TileSource(url="https://tiles.example/{z}/{x}/{y}.png", attribution="© 高德地图",
                  subdomains=("1", "2"), crs="gcj02", max_zoom=18)  # fmt: skip
CIRCLE = {"name": "家", "kind": "circle", "lat": 31.2, "lon": 121.44, "radius_m": 300.0,
          "window": None}  # fmt: skip
POLYGON = {"name": "公园", "kind": "polygon", "window": {"from": "08:00", "to": "18:00"},
           "points": [[31.205, 121.445], [31.205, 121.45], [31.209, 121.45]]}  # fmt: skip


def _context(**changes: Any) -> dict[str, Any]:
    alert = {"alert_id": 7, "device_id": "w-1", "severity": "critical", "resident_name": "王秀英",
             "lat": 31.21, "lon": 121.46}  # fmt: skip
    context: dict[str, Any] = {
        "alert": alert, "resident": {"name": "王秀英"}, "zones": [CIRCLE, POLYGON],
        "positions": [
            {"at": datetime(2026, 3, 1, 8, tzinfo=UTC), "lat": 31.2001, "lon": 121.4401},
            {"at": datetime(2026, 3, 1, 9, tzinfo=UTC), "lat": 31.2002, "lon": 121.4402},
        ],
    }  # fmt: skip
    return {**context, **changes}


def test_the_alarm_map_without_tiles_draws_the_last_position_and_the_zones() -> None:
    drawn = alarm_map(_context(), NONE)
    assert drawn == {
        "tiles": None,
        "points": [{"lat": 31.2002, "lon": 121.4402, "label": "王秀英", "severity": "critical"}],
        "zones": [
            {"name": "家", "center": [31.2, 121.44], "radius_m": 300.0},
            {"name": "公园", "polygon": [[31.205, 121.445], [31.205, 121.45], [31.209, 121.45]]},
        ],
    }


def test_without_a_position_the_alarm_map_shows_where_the_alert_was_raised() -> None:
    drawn = alarm_map(_context(positions=[], zones=[]), NONE)
    assert drawn is not None and drawn["points"][0] | {"label": ""} == {
        "lat": 31.21, "lon": 121.46, "label": "", "severity": "critical",
    }  # fmt: skip


def test_nothing_to_draw_is_no_map() -> None:
    alert = {"device_id": "w-1", "severity": "warning", "lat": None, "lon": None}
    assert alarm_map({"alert": alert, "resident": None, "zones": [], "positions": []}, NONE) is None
    assert resident_map("Sun Lan", [], [], NONE) is None


def test_a_device_without_resident_is_labelled_by_its_id() -> None:
    context = _context(resident=None)
    context["alert"] = {**context["alert"], "resident_name": None}
    drawn = alarm_map(context, NONE)
    assert drawn is not None and drawn["points"][0]["label"] == "w-1"


def test_on_gcj02_tiles_every_point_and_zone_is_moved_onto_the_map() -> None:
    drawn = alarm_map(_context(), AMAP)
    assert drawn is not None
    assert drawn["tiles"] == {"url": AMAP.url, "attribution": "© 高德地图",
                              "subdomains": ["1", "2"], "max_zoom": 18}  # fmt: skip
    point = drawn["points"][0]
    assert (point["lat"], point["lon"]) == to_map(31.2002, 121.4402, AMAP)
    assert 300 < distance_m((point["lat"], point["lon"]), (31.2002, 121.4402)) < 700
    circle, polygon = drawn["zones"]
    assert circle["center"] == list(to_map(31.2, 121.44, AMAP)) and circle["radius_m"] == 300.0
    assert polygon["polygon"][0] == list(to_map(31.205, 121.445, AMAP))


def test_zone_shapes_keep_only_what_the_map_draws() -> None:
    assert [set(z) for z in zone_shapes([CIRCLE, POLYGON], NONE)] == [
        {"name", "center", "radius_m"}, {"name", "polygon"},
    ]  # fmt: skip


NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
WELL = {"status": "active", "last_seen": NOW - timedelta(minutes=1), "battery_pct": 80.0,
        "worn": True}  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({}, []),
        ({"last_seen": None}, ["never_heard"]),
        ({"last_seen": NOW - timedelta(minutes=15)}, []),
        ({"last_seen": NOW - timedelta(minutes=16)}, ["offline"]),
        ({"battery_pct": 15.0}, ["battery_low"]),
        ({"battery_pct": 15.5}, []),
        ({"battery_pct": None, "worn": None}, []),
        ({"worn": False}, ["not_worn"]),
        ({"last_seen": NOW - timedelta(hours=2), "battery_pct": 3.0, "worn": False},
         ["offline", "battery_low", "not_worn"]),
        ({"status": "disabled", "last_seen": None}, ["disabled"]),
    ],
)  # fmt: skip
def test_device_health(changes: dict[str, Any], problems: list[str]) -> None:
    assert health({**WELL, **changes}, NOW) == problems


@pytest.mark.parametrize(
    ("within_60", "within_180", "below"),
    [(100.0, 100.0, []), (97.5, 99.0, []), (97.4, 99.0, [60]), (90.0, 98.9, [60, 180]),
     (None, None, [])],
)  # fmt: skip
def test_targets(within_60: float | None, within_180: float | None, below: list[int]) -> None:
    assert below_target({"within_60s_pct": within_60, "within_180s_pct": within_180}) == below


def test_a_bad_tile_setting_stops_the_console_at_start() -> None:
    from fastapi import FastAPI

    from console.app import ConsoleConfig, install
    from plumbing.settings import ConfigError

    with pytest.raises(ConfigError, match="CAREWATCH_MAP_TILES"):
        install(FastAPI(), ConsoleConfig(map_tiles="ftp://tiles.example/{z}"))
