"""console/geo.py: WGS-84 -> GCJ-02 for Chinese map tiles, and CAREWATCH_MAP_TILES."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.rules.geofence import distance_m
from console.geo import PROVIDERS, TileSource, from_map, tile_source, to_map, zone_to_map

GCJ = TileSource(url="https://tiles.example/{z}/{x}/{y}.png", crs="gcj02")
WGS = TileSource(url="https://tiles.example/{z}/{x}/{y}.png", crs="wgs84")

# (WGS-84 lat, lon), (GCJ-02 lat, lon). The first three are eviltransform's published test
# pairs (googollee/eviltransform, every language's test suite); the last is the example in
# AMap's own coordinate-conversion web service documentation (GPS 116.481499,39.990475 ->
# 116.487585177952,39.991754014757): AMap's servers, not a re-implementation.
PAIRS = [
    ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),  # Shanghai
    ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),  # Shenzhen
    ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),  # Beijing
    ((39.990475, 116.481499), (39.991754014757, 116.487585177952)),  # Beijing, AMap's API
]


@pytest.mark.parametrize(("wgs", "gcj"), PAIRS)
def test_wgs84_points_land_where_gcj02_maps_draw_them(
    wgs: tuple[float, float], gcj: tuple[float, float]
) -> None:
    assert distance_m(to_map(*wgs, GCJ), gcj) < 1.0


@pytest.mark.parametrize(("wgs", "gcj"), PAIRS)
def test_a_click_on_a_gcj02_map_is_the_wgs84_point_drawn_there(
    wgs: tuple[float, float], gcj: tuple[float, float]
) -> None:
    assert distance_m(from_map(*gcj, GCJ), wgs) < 1.0


@pytest.mark.parametrize(
    "point", [(31.2304, 121.4737), (45.75, 126.63), (18.25, 109.5), (43.8, 87.6)]
)
def test_round_trip_within_a_centimetre(point: tuple[float, float]) -> None:
    assert distance_m(from_map(*to_map(*point, GCJ), GCJ), point) < 0.01


def test_the_shift_in_shanghai_is_hundreds_of_metres() -> None:
    # What goes wrong without the conversion: a resident at home drawn streets away.
    assert 300 < distance_m(to_map(31.2304, 121.4737, GCJ), (31.2304, 121.4737)) < 700


@pytest.mark.parametrize(
    "point", [(51.5074, -0.1278), (35.6762, 139.6503), (-33.8688, 151.2093), (1.29, 103.85)]
)
def test_points_outside_china_stay_where_they_are(point: tuple[float, float]) -> None:
    assert to_map(*point, GCJ) == point
    assert from_map(*point, GCJ) == point


def test_a_wgs84_map_draws_points_unconverted() -> None:
    assert to_map(31.2304, 121.4737, WGS) == (31.2304, 121.4737)
    assert from_map(31.2304, 121.4737, WGS) == (31.2304, 121.4737)


def test_zones_move_with_the_map_and_keep_their_radius() -> None:
    circle = {"name": "家", "center": [31.2304, 121.4737], "radius_m": 500, "window": None}
    drawn = zone_to_map(circle, GCJ)
    assert drawn["center"] == list(to_map(31.2304, 121.4737, GCJ))
    assert drawn["radius_m"] == 500 and drawn["name"] == "家" and drawn["window"] is None
    polygon: dict[str, Any] = {
        "name": "night",
        "polygon": [[31.23, 121.47], [31.24, 121.47], [31.24, 121.48]],
    }
    moved = zone_to_map(polygon, GCJ)["polygon"]
    assert moved == [list(to_map(lat, lon, GCJ)) for lat, lon in polygon["polygon"]]
    assert circle["center"] == [31.2304, 121.4737]  # the stored zone is not touched
    assert zone_to_map(polygon, WGS) == polygon


@pytest.mark.parametrize("setting", ["", "none", " NONE "])
def test_no_tiles(setting: str) -> None:
    assert tile_source(setting).url is None


def test_the_named_providers() -> None:
    assert tile_source("osm").crs == "wgs84"
    assert "openstreetmap.org/{z}/{x}/{y}" in str(tile_source("OSM").url)
    amap, tencent = tile_source("amap"), tile_source("tencent")
    assert amap.crs == tencent.crs == "gcj02"
    assert "autonavi.com" in str(amap.url) and amap.subdomains == ("1", "2", "3", "4")
    assert "{-y}" in str(tencent.url)  # Tencent numbers rows from the bottom
    assert all(source.attribution for source in PROVIDERS.values())


def test_a_url_template_of_ones_own() -> None:
    own = tile_source("http://tiles.centre.local/{z}/{x}/{y}.png")
    assert own == TileSource(url="http://tiles.centre.local/{z}/{x}/{y}.png", crs="wgs84")
    gcj = tile_source("gcj02:https://{s}.tiles.local/{z}/{x}/{-y}.png")
    assert gcj.url == "https://{s}.tiles.local/{z}/{x}/{-y}.png" and gcj.crs == "gcj02"
    assert gcj.subdomains == ("a", "b", "c")


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("baidu", "not a provider's name"),
        ("ftp://tiles/{z}/{x}/{y}", "http"),
        ("https://tiles.local/{z}/{x}.png", "lacks {y}"),
        ("https://tiles.local/tile.png", "lacks {x} {z} {y}"),
        ("gcj02:", "not a provider's name"),
        ("https://tiles.local/{z}/{x}/{y} .png", "no spaces"),
    ],
)
def test_bad_settings_say_what_would_do(setting: str, says: str) -> None:
    with pytest.raises(ValueError, match="CAREWATCH_MAP_TILES") as caught:
        tile_source(setting)
    assert says in str(caught.value) and "amap" in str(caught.value)
