"""What a map on a console page draws: the `data-map` JSON that static/map.js's
`cwDrawMap` reads, built on the server with every point and zone already moved onto the
tiles' datum (console/geo.py), so the browser draws what it is given and converts nothing.

The shape: {"tiles": {"url", "attribution", "subdomains", "max_zoom"} or null (no tiles: a
plain background), "points": [{"lat", "lon", "label", "severity"?, "href"?}], "zones":
[{"name", "center": [lat, lon], "radius_m"} or {"name", "polygon": [[lat, lon], ...]}]}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request

from console.geo import TileSource, to_map, zone_to_map

__all__ = [
    "alarm_map",
    "map_data",
    "point",
    "resident_map",
    "tiles_of",
    "zone_shapes",
]


def tiles_of(request: Request) -> TileSource:
    """The tiles the console is configured with (ConsoleConfig.map_tiles, checked when
    the console was installed)."""
    source: TileSource = request.app.state.map_tiles
    return source


def _tiles(source: TileSource) -> dict[str, Any] | None:
    if source.url is None:
        return None
    return {
        "url": source.url,
        "attribution": source.attribution,
        "subdomains": list(source.subdomains),
        "max_zoom": source.max_zoom,
    }


def point(
    lat: float,
    lon: float,
    label: str,
    source: TileSource,
    *,
    severity: str | None = None,
    href: str | None = None,
) -> dict[str, Any]:
    """A labelled point (WGS-84 in), where `source`'s map draws it."""
    map_lat, map_lon = to_map(float(lat), float(lon), source)
    drawn: dict[str, Any] = {"lat": map_lat, "lon": map_lon, "label": label}
    if severity is not None:
        drawn["severity"] = severity
    if href is not None:
        drawn["href"] = href
    return drawn


def zone_shapes(items: Iterable[Mapping[str, Any]], source: TileSource) -> list[dict[str, Any]]:
    """Safe zones as the API answers them (api/device_models.py: `kind` circle with
    lat/lon/radius_m, or polygon with points) as the map draws them."""
    shapes: list[dict[str, Any]] = []
    for zone in items:
        if zone.get("kind") == "polygon":
            rule: dict[str, Any] = {"name": zone["name"], "polygon": zone["points"]}
        else:
            rule = {"name": zone["name"], "center": [zone["lat"], zone["lon"]],
                    "radius_m": zone["radius_m"]}  # fmt: skip
        shapes.append(zone_to_map(rule, source))
    return shapes


def map_data(
    source: TileSource, points: list[dict[str, Any]], zones: list[dict[str, Any]]
) -> dict[str, Any]:
    """The `data-map` JSON of points and zones already on `source`'s datum."""
    return {"tiles": _tiles(source), "points": points, "zones": zones}


def resident_map(
    label: str,
    positions: list[Mapping[str, Any]],
    zones: Iterable[Mapping[str, Any]],
    source: TileSource,
    *,
    fallback: Mapping[str, Any] | None = None,
    severity: str | None = None,
) -> dict[str, Any] | None:
    """One person's map: the last of `positions` (the API's, oldest first), else the
    lat/lon of `fallback`, labelled, and their safe zones; None when there is nothing to
    draw."""
    where = positions[-1] if positions else (fallback or {})
    points: list[dict[str, Any]] = []
    if where.get("lat") is not None and where.get("lon") is not None:
        points.append(point(where["lat"], where["lon"], label, source, severity=severity))
    shapes = zone_shapes(zones, source)
    if not points and not shapes:
        return None
    return map_data(source, points, shapes)


def alarm_map(context: Mapping[str, Any], source: TileSource) -> dict[str, Any] | None:
    """The alarm pop-up's small map from its context (console/queue.py `alarm_context`):
    the resident's last position of the last 24 hours, else where the alert itself was
    raised, and their safe zones; None when there is nothing to draw."""
    alert = context["alert"]
    resident = context.get("resident") or {}
    label = resident.get("name") or alert.get("resident_name") or alert["device_id"]
    return resident_map(
        label, context.get("positions") or [], context.get("zones") or [], source,
        fallback=alert, severity=alert["severity"],
    )  # fmt: skip
