"""The console map's tiles, and the datum they are drawn in.

Devices report WGS-84 and carewatch stores and judges WGS-84 only (positions, homes, safe
zones). Chinese tile providers (AMap/高德, Tencent/腾讯) draw their maps in GCJ-02, the
datum Chinese law requires of published maps: offset from WGS-84 by a few hundred metres
(about 500 m in Shanghai) by a published but deliberately irregular formula. A WGS-84
point drawn unconverted over their tiles lands streets away from where the person is, so
the console converts what it draws with `to_map` / `zone_to_map`, and what an operator
clicks on the map back with `from_map`. The conversion is for drawing only.

`CAREWATCH_MAP_TILES` chooses the tiles (`tile_source`): none at all suits a closed network
(zones and positions on a plain background); `osm`, `amap`, `tencent`, or any URL template.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import coordTransform

__all__ = [
    "PROVIDERS",
    "TileSource",
    "from_map",
    "polygon_to_map",
    "tile_source",
    "to_map",
    "zone_to_map",
]

Crs = Literal["wgs84", "gcj02"]


@dataclass(frozen=True)
class TileSource:
    """A tile layer as Leaflet takes it: `url` a template ({s} {x} {y} or {-y} {z}), None
    for no tiles; `crs` the datum its map is drawn in."""

    url: str | None
    attribution: str = ""
    subdomains: tuple[str, ...] = ()
    crs: Crs = "wgs84"
    max_zoom: int = 19


NO_TILES = TileSource(url=None)
PROVIDERS: Mapping[str, TileSource] = {
    "osm": TileSource(
        url="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        attribution="© OpenStreetMap contributors",
        max_zoom=19,
    ),
    # AMap's road map (style 8), the layer Leaflet's Chinese provider plugins use.
    "amap": TileSource(
        url="https://webrd0{s}.is.autonavi.com/appmaptile"
        "?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
        attribution="© 高德地图 AutoNavi",
        subdomains=("1", "2", "3", "4"),
        crs="gcj02",
        max_zoom=18,
    ),
    # Tencent numbers tile rows from the bottom (TMS): Leaflet's {-y}.
    "tencent": TileSource(
        url="https://rt{s}.map.gtimg.com/tile?z={z}&x={x}&y={-y}&type=vector&styleid=3",
        attribution="© 腾讯地图 Tencent",
        subdomains=("0", "1", "2", "3"),
        crs="gcj02",
        max_zoom=18,
    ),
}
_GCJ_PREFIX = "gcj02:"
# Leaflet's own default, for a template of the operator's with {s} in it.
_DEFAULT_SUBDOMAINS = ("a", "b", "c")


def tile_source(setting: str) -> TileSource:
    """The tiles `CAREWATCH_MAP_TILES` names: '' or none, osm, amap, tencent, or an
    http(s) URL template with {x}, {y} (or {-y}) and {z}, drawn in WGS-84 unless prefixed
    `gcj02:`. ValueError saying what would do for anything else."""
    text = setting.strip()
    name = text.lower()
    if name in ("", "none"):
        return NO_TILES
    if name in PROVIDERS:
        return PROVIDERS[name]
    crs: Crs = "wgs84"
    if name.startswith(_GCJ_PREFIX):
        crs, text = "gcj02", text[len(_GCJ_PREFIX) :].strip()
    problem = _template_problem(text)
    if problem:
        raise ValueError(
            f"CAREWATCH_MAP_TILES={setting!r}: {problem}. Want '' or none (no tiles), "
            f"{', '.join(PROVIDERS)}, or an http(s) URL template with {{x}}, {{y}} (or {{-y}}) "
            "and {z}, prefixed gcj02: if its map is drawn in GCJ-02"
        )
    subdomains = _DEFAULT_SUBDOMAINS if "{s}" in text else ()
    return TileSource(url=text, subdomains=subdomains, crs=crs)


def _template_problem(url: str) -> str | None:
    if not url.lower().startswith(("http://", "https://")):
        return "not a provider's name, nor an http(s) URL"
    if any(c.isspace() for c in url):
        return "a URL has no spaces"
    missing = [p for p in ("{x}", "{z}") if p not in url]
    if "{y}" not in url and "{-y}" not in url:
        missing.append("{y}")
    return f"the URL lacks {' '.join(missing)}" if missing else None


def to_map(lat: float, lon: float, source: TileSource) -> tuple[float, float]:
    """Where a WGS-84 point is drawn on `source`'s map: converted to GCJ-02 for a GCJ-02
    map (outside China the algorithm leaves points as they are), unchanged otherwise."""
    if source.crs != "gcj02":
        return lat, lon
    map_lon, map_lat = coordTransform.wgs84_to_gcj02(lon, lat)
    return float(map_lat), float(map_lon)


def from_map(lat: float, lon: float, source: TileSource) -> tuple[float, float]:
    """The WGS-84 point drawn at (lat, lon) on `source`'s map: what an operator clicked.

    GCJ-02 has no closed-form inverse (the library's one-step estimate is off by up to a
    few metres), so the estimate is refined by fixed-point iteration on the forward
    formula until it maps back to within ~1 mm."""
    if source.crs != "gcj02":
        return lat, lon
    guess = (lat, lon)
    for _ in range(10):
        drawn = to_map(*guess, source)
        error = (drawn[0] - lat, drawn[1] - lon)
        guess = (guess[0] - error[0], guess[1] - error[1])
        if math.hypot(*error) < 1e-8:  # degrees: about a millimetre
            break
    return guess


def polygon_to_map(
    points: Iterable[tuple[float, float] | list[float]], source: TileSource
) -> list[tuple[float, float]]:
    """A polygon's [lat, lon] vertices as drawn on `source`'s map."""
    return [to_map(float(lat), float(lon), source) for lat, lon in points]


def zone_to_map(zone: Mapping[str, Any], source: TileSource) -> dict[str, Any]:
    """A safe zone as the geofence rule stores it (`center` [lat, lon] + `radius_m`, or
    `polygon` of [lat, lon]) with its geometry moved onto `source`'s map; other keys kept.

    A circle keeps its radius: GCJ-02's offset changes by under 10 m per kilometre
    anywhere in China, so over a zone it is a shift, not a stretch."""
    drawn = dict(zone)
    center = zone.get("center")
    if center is not None:
        drawn["center"] = list(to_map(float(center[0]), float(center[1]), source))
    polygon = zone.get("polygon")
    if polygon is not None:
        drawn["polygon"] = [list(p) for p in polygon_to_map(polygon, source)]
    return drawn
