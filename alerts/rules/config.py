"""Rule configuration: the defaults, and each resident's overrides.

The defaults ship inside the package, `alerts/rules/defaults.toml` (`DEFAULTS_PATH`, read
through importlib.resources, so an installed wheel has them too); `deploy/rules.toml` is a
copy to read, kept byte for byte equal by a test.

A resident's overrides are a *partial* dict with the same shape as the file, merged over
the defaults (tables merge key by key; lists and values replace), e.g.

    {"resident": {"timezone": "Europe/Berlin"},
     "vitals": {"heart_rate": {"critical_low": 38}},
     "geofence": {"zones": [{"name": "home", "center": [31.2304, 121.4737], "radius_m": 200}]}}

The rules worker puts `effective(defaults, overrides).model_dump(mode="json")` into
`Context.config`; a rule reads it back with `rules_config(ctx)`. The model defaults equal
the shipped `defaults.toml` (a test keeps them equal), so an empty `Context.config`
means "the defaults".
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import tomllib
import zoneinfo
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import shapely
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from shapely.validation import explain_validity

__all__ = [
    "DEFAULTS_PATH",
    "AlarmsConfig",
    "BatteryConfig",
    "DeviceOfflineConfig",
    "GeofenceConfig",
    "InactivityConfig",
    "ResidentConfig",
    "RulesConfig",
    "Thresholds",
    "VitalsConfig",
    "WornConfig",
    "Zone",
    "check",
    "effective",
    "load_defaults",
    "parse_window",
    "rules_config",
]

# The shipped defaults: package data, so found wherever the package is installed. A
# Traversable: read it with `read_text()` or `load_defaults()`, not open().
DEFAULTS_PATH: Traversable = importlib.resources.files("alerts.rules") / "defaults.toml"


# --- value types ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def parse_window(text: str) -> tuple[int, int]:
    """'22:00-06:00' -> (start, end) in minutes after local midnight; end may be 1440.

    A window whose end is before its start crosses midnight. Raises ValueError.
    """
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"time window {text!r} should look like '08:00-21:00'")
    start, end = (_minutes(p.strip(), text) for p in parts)
    if start == end or start == 1440:
        raise ValueError(f"time window {text!r} is empty; use '00:00-24:00' for all day")
    return start, end


def _minutes(hhmm: str, window: str) -> int:
    hours, _, minutes = hhmm.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and len(hours) <= 2):
        raise ValueError(f"time window {window!r}: {hhmm!r} is not HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 1440:
        raise ValueError(f"time window {window!r}: {hhmm!r} is not a time of day")
    return value


def _check_window(text: str) -> str:
    parse_window(text)
    return text


def _check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {name!r} (an IANA name like 'Asia/Shanghai')"
        raise ValueError(msg) from None
    return name


Window = Annotated[str, AfterValidator(_check_window)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Severity = Literal["critical", "warning", "info"]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Minutes = Annotated[float, Field(ge=0, le=7 * 24 * 60)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sections --------------------------------------------------------------------------------


class ResidentConfig(_Section):
    timezone: TimeZoneName = "Asia/Shanghai"
    active_hours: Window = "08:00-21:00"


class AlarmsConfig(_Section):
    fall_cancel_window_s: Annotated[float, Field(ge=0, le=3600)] = 120


class Thresholds(_Section):
    """One vital's bands: lows alert at or below, highs at or above; None disables a band."""

    critical_low: float | None = None
    warning_low: float | None = None
    warning_high: float | None = None
    critical_high: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        order = [
            (name, value)
            for name in ("critical_low", "warning_low", "warning_high", "critical_high")
            if (value := getattr(self, name)) is not None
        ]
        for (low_name, low), (high_name, high) in itertools.pairwise(order):
            strict = low_name.endswith("_low") and high_name.endswith("_high")
            if low > high or (strict and low == high):
                raise ValueError(f"{low_name} ({low}) must be below {high_name} ({high})")
        return self


class VitalsConfig(_Section):
    enabled: bool = True
    min_readings: Annotated[int, Field(ge=1, le=100)] = 3
    min_duration_min: Minutes = 2
    resolve_after_min: Minutes = 10
    heart_rate: Thresholds = Thresholds(critical_low=40, warning_high=111, critical_high=131)
    spo2: Thresholds = Thresholds(critical_low=91, warning_low=93)
    body_temp: Thresholds = Thresholds(warning_high=38.1, critical_high=39.1)


class InactivityConfig(_Section):
    enabled: bool = True
    severity: Severity = "warning"
    period_min: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 180


class DeviceOfflineConfig(_Section):
    enabled: bool = True
    severity: Severity = "warning"
    heartbeat_interval_s: Annotated[float, Field(gt=0, le=86400)] = 300
    missed_heartbeats: Annotated[int, Field(ge=1, le=100)] = 3
    min_silence_min: Minutes = 10

    @property
    def silence_s(self) -> float:
        """How long a device may stay silent before it counts as offline."""
        return max(self.missed_heartbeats * self.heartbeat_interval_s, self.min_silence_min * 60)


class BatteryConfig(_Section):
    enabled: bool = True
    severity: Severity = "warning"
    low_pct: Annotated[float, Field(ge=0, le=100)] = 15
    resolve_pct: Annotated[float, Field(ge=0, le=100)] = 20
    charging_rise_pct: Annotated[float, Field(gt=0, le=100)] = 5

    @model_validator(mode="after")
    def _hysteresis(self) -> BatteryConfig:
        if self.resolve_pct <= self.low_pct:
            raise ValueError(
                f"resolve_pct ({self.resolve_pct}) must be above low_pct ({self.low_pct})"
            )
        return self


class WornConfig(_Section):
    enabled: bool = True
    severity: Severity = "warning"
    removed_min: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 15


class Zone(_Section):
    """A safe zone: a circle (center [lat, lon] + radius_m) or a polygon of [lat, lon]."""

    name: Annotated[str, Field(min_length=1, max_length=128)]
    center: tuple[Latitude, Longitude] | None = None
    radius_m: Annotated[float, Field(gt=0, le=100_000)] | None = None
    polygon: list[tuple[Latitude, Longitude]] | None = None
    window: Window | None = None  # resident's local time; None: always

    @model_validator(mode="after")
    def _one_shape(self) -> Zone:
        circle = self.center is not None or self.radius_m is not None
        if circle == (self.polygon is not None):
            raise ValueError(f"zone {self.name!r}: give either center + radius_m, or polygon")
        if circle and (self.center is None or self.radius_m is None):
            raise ValueError(f"zone {self.name!r}: a circle needs both center and radius_m")
        if self.polygon is not None:
            _check_polygon(self.name, self.polygon)
        return self


def _check_polygon(name: str, points: list[tuple[float, float]]) -> None:
    if len(points) < 3:
        raise ValueError(f"zone {name!r}: a polygon needs at least 3 [lat, lon] points")
    polygon = shapely.Polygon([(lon, lat) for lat, lon in points])
    if not polygon.is_valid:
        raise ValueError(f"zone {name!r}: invalid polygon ({explain_validity(polygon)})")
    if polygon.area == 0:
        raise ValueError(f"zone {name!r}: the polygon has no area")


class GeofenceConfig(_Section):
    enabled: bool = True
    severity: Severity = "critical"
    hysteresis_m: Annotated[float, Field(ge=0, le=10_000)] = 30
    device_zones: bool = True  # device-side geofence events (e.g. OwnTracks regions) count
    zones: list[Zone] = []

    @model_validator(mode="after")
    def _unique_names(self) -> GeofenceConfig:
        names = [zone.name for zone in self.zones]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"zone names must be unique: {', '.join(duplicates)}")
        return self


class RulesConfig(_Section):
    resident: ResidentConfig = ResidentConfig()
    alarms: AlarmsConfig = AlarmsConfig()
    vitals: VitalsConfig = VitalsConfig()
    inactivity: InactivityConfig = InactivityConfig()
    device_offline: DeviceOfflineConfig = DeviceOfflineConfig()
    battery: BatteryConfig = BatteryConfig()
    worn: WornConfig = WornConfig()
    geofence: GeofenceConfig = GeofenceConfig()


# --- loading and merging ---------------------------------------------------------------------


def load_defaults(path: Traversable | Path | str = DEFAULTS_PATH) -> RulesConfig:
    """Read a defaults file, the shipped one unless told otherwise (raises OSError,
    tomllib.TOMLDecodeError, ValidationError)."""
    source = Path(path) if isinstance(path, str) else path
    return RulesConfig.model_validate(tomllib.loads(source.read_text(encoding="utf-8")))


def effective(defaults: RulesConfig, overrides: dict[str, Any]) -> RulesConfig:
    """The defaults with one resident's partial overrides merged over them (raises
    ValidationError when the result is invalid)."""
    return RulesConfig.model_validate(_merge(defaults.model_dump(mode="json"), overrides))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def check(defaults_text: str, overrides_by_resident: dict[str, dict[str, Any]]) -> list[str]:
    """Everything wrong with a defaults file and the residents' overrides, as messages for
    `carewatch rules check`; an empty list means all is well."""
    messages: list[str] = []
    defaults = RulesConfig()
    try:
        defaults = RulesConfig.model_validate(tomllib.loads(defaults_text))
    except tomllib.TOMLDecodeError as exc:
        messages.append(f"rules.toml: not valid TOML: {exc}")
    except ValidationError as exc:
        messages += [f"rules.toml: {m}" for m in _messages(exc)]
    for resident, overrides in sorted(overrides_by_resident.items()):
        if not isinstance(overrides, dict):
            messages.append(f"resident {resident}: overrides must be a JSON object")
            continue
        try:
            effective(defaults, overrides)
        except ValidationError as exc:
            messages += [f"resident {resident}: {m}" for m in _messages(exc)]
    return messages


def _messages(exc: ValidationError) -> list[str]:
    out = []
    for error in exc.errors(include_url=False):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        path = path.lstrip(".") or "(top level)"
        if error["type"] == "extra_forbidden":
            out.append(f"{path}: unknown key")
            continue
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] != "value_error" and not isinstance(error["input"], dict | list):
            message += f" (got {error['input']!r})"
        out.append(f"{path}: {message}")
    return out


# --- for the rules ---------------------------------------------------------------------------


def rules_config(config: dict[str, Any]) -> RulesConfig:
    """`Context.config` back as the model (cached: the same configuration is validated once).

    The dict is taken as immutable: the rules of one event share one Context, so the last
    dict seen is recognised by identity, and others by content.
    """
    global _last
    if not config:
        return _DEFAULT
    last = _last
    if last is not None and last[0] is config:
        return last[1]
    model = _validated(orjson.dumps(config, option=orjson.OPT_SORT_KEYS))
    _last = (config, model)  # holding the dict keeps its id from being reused
    return model


@functools.lru_cache(maxsize=4096)
def _validated(raw: bytes) -> RulesConfig:
    return RulesConfig.model_validate_json(raw)


_DEFAULT = RulesConfig()
_last: tuple[dict[str, Any], RulesConfig] | None = None
