"""geofence_exit: the resident left their safe zones.

A resident's zones (`geofence.zones`) are circles or polygons, each optionally active only
in a local-time window. A fix is *outside* when it is outside every zone active at its
device time by more than max(accuracy_m, hysteresis_m), and *back inside* when inside an
active zone by more than that margin (when no zone is active, inside any zone: the resident
came back somewhere safe). Fixes in the band between change nothing, so a noisy fix at the
boundary does not flap. Device-side `geofence` events (OwnTracks regions and the like)
count too: `leave` is outside, `enter` is back inside, within the window of a configured
zone of the same name.

Device time drives the state: a fix or geofence event no newer than the newest one
processed is history and changes nothing (a late fix does not move a resident back out).
A `location` with `fix: false` is a device's last known position, not where the resident
is: it decides nothing and is not even counted as the newest position.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import shapely

from alerts.rules._support import config, in_window, iso, parse_ts
from alerts.rules.base import Context, Decision, RaiseAlert, ResolveAlert, Rule
from alerts.rules.config import GeofenceConfig, RulesConfig, Zone
from devices.events import Event, GeofenceEvent, LocationEvent

__all__ = ["RULE", "distance_m", "evaluate", "outside_by_m"]

_EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)


def evaluate(event: Event, state: dict[str, Any], ctx: Context) -> list[Decision]:
    if not isinstance(event, LocationEvent | GeofenceEvent):
        return []
    if isinstance(event, LocationEvent) and event.fix is False:
        return []  # a stale position: it would raise (or resolve) on where they were
    cfg = config(ctx)
    if not cfg.geofence.enabled:
        return []
    if "last_ts" in state and event.ts <= parse_ts(state["last_ts"]):
        return []  # late or repeated: the newest position decides
    state["last_ts"] = iso(event.ts)
    if isinstance(event, LocationEvent):
        return _fix(event, state, cfg)
    return _device_transition(event, state, cfg)


def _fix(event: LocationEvent, state: dict[str, Any], cfg: RulesConfig) -> list[Decision]:
    zones = cfg.geofence.zones
    active = [z for z in zones if _active(z, event, cfg)]
    margin = max(event.accuracy_m or 0.0, cfg.geofence.hysteresis_m)
    point = (event.lat, event.lon)
    if active and not state.get("outside"):
        distances = [outside_by_m(zone, point) for zone in active]
        if min(distances) > margin:
            state["outside"] = True
            names = ", ".join(z.name for z in active)
            accuracy = f" (±{event.accuracy_m:.0f} m)" if event.accuracy_m is not None else ""
            summary = f"left safe zone {names}: {min(distances):.0f} m outside{accuracy}"
            return [_raise(event, cfg.geofence, summary, event.lat, event.lon)]
    elif state.get("outside"):
        back = next((z for z in active or zones if outside_by_m(z, point) < -margin), None)
        if back is not None:
            state["outside"] = False
            return [_resolve(event, f"back inside safe zone {back.name}")]
    return []


def _device_transition(
    event: GeofenceEvent, state: dict[str, Any], cfg: RulesConfig
) -> list[Decision]:
    if not cfg.geofence.device_zones:
        return []
    zone = next((z for z in cfg.geofence.zones if z.name == event.zone), None)
    if zone is not None and not _active(zone, event, cfg):
        return []
    if event.transition == "leave" and not state.get("outside"):
        state["outside"] = True
        summary = f"device reports leaving zone {event.zone}"
        return [_raise(event, cfg.geofence, summary, None, None)]
    if event.transition == "enter" and state.get("outside"):
        state["outside"] = False
        return [_resolve(event, f"device reports entering zone {event.zone}")]
    return []


def _active(zone: Zone, event: Event, cfg: RulesConfig) -> bool:
    return zone.window is None or in_window(event.ts, zone.window, cfg.resident.timezone)


def _raise(
    event: Event, cfg: GeofenceConfig, summary: str, lat: float | None, lon: float | None
) -> RaiseAlert:
    return RaiseAlert.for_event(event, "geofence_exit", cfg.severity, summary, lat, lon)


def _resolve(event: Event, reason: str) -> ResolveAlert:
    return ResolveAlert("geofence_exit", event.device_id, event.ts, event.event_id, reason)


# --- geometry --------------------------------------------------------------------------------


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance in metres between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def outside_by_m(zone: Zone, point: tuple[float, float]) -> float:
    """How far `point` (lat, lon) is outside the zone's boundary in metres; negative inside."""
    if zone.center is not None and zone.radius_m is not None:
        return distance_m(point, zone.center) - zone.radius_m
    assert zone.polygon is not None  # a zone is a circle or a polygon (validated)
    polygon, origin = _projected(tuple(zone.polygon))
    x, y = _project(point, origin)
    at = shapely.Point(x, y)
    distance = float(polygon.exterior.distance(at))
    return -distance if polygon.covers(at) else distance


@functools.lru_cache(maxsize=1024)
def _projected(
    points: tuple[tuple[float, float], ...],
) -> tuple[shapely.Polygon, tuple[float, float]]:
    """The polygon in metres on a plane tangent at its vertices' mean: exact enough for
    zones up to tens of kilometres (not across the antimeridian or a pole)."""
    origin = (
        sum(lat for lat, _ in points) / len(points),
        sum(lon for _, lon in points) / len(points),
    )
    polygon = shapely.Polygon([_project(p, origin) for p in points])
    shapely.prepare(polygon)
    return polygon, origin


def _project(point: tuple[float, float], origin: tuple[float, float]) -> tuple[float, float]:
    lat, lon = point
    x = math.radians(lon - origin[1]) * math.cos(math.radians(origin[0])) * _EARTH_RADIUS_M
    y = math.radians(lat - origin[0]) * _EARTH_RADIUS_M
    return x, y


RULE = Rule(name="geofence", evaluate=evaluate)
