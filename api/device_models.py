"""What the device and safe-zone routes take in and give out (pydantic).

Bodies refuse unknown fields, bound every string and refuse control characters, so hostile
input is a 422 naming the field. A device's broker secret leaves only in the answer that
issues it (`DeviceCreated`). Zones are shown as the API's shapes (`kind`, `lat`/`lon`,
`points`, a `window` object) and stored as the geofence rule reads them
(alerts/rules/config.py `Zone`): `to_rule` and `from_rule` translate, nothing more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from alerts.rules.config import parse_window
from api.models import clean_text
from devices.errors import RegistryError
from devices.registry import check_clock

__all__ = [
    "CircleZone",
    "DeviceCreate",
    "DeviceCreated",
    "DevicePage",
    "DevicePatch",
    "DevicePublic",
    "ImportResult",
    "PolygonZone",
    "ZoneIn",
    "ZonePage",
    "from_rule",
    "to_rule",
]

DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"  # devices/registry.py DEVICE_ID


def _clock_zone(value: str) -> str:
    try:
        return check_clock(value) or "UTC"
    except RegistryError as exc:
        raise ValueError(str(exc)) from None


DeviceId = Annotated[str, Field(pattern=DEVICE_ID, description="1-64 letters, digits, . _ : -")]
Format = Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$", description="a codec, e.g. native")]
Model = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(clean_text),
]
ResidentId = Annotated[int, Field(ge=1, le=2**63 - 1)]
ClockZone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=64),
    AfterValidator(_clock_zone),
    Field(description="IANA zone the device's clock runs on, e.g. Asia/Shanghai; UTC if left out"),
]


class _Body(BaseModel):
    # A misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class DeviceCreate(_Body):
    device_id: DeviceId
    format: Format
    model: Model | None = Field(None, description="e.g. ws101: picks a payload decoder")
    resident_id: ResidentId | None = None
    clock_tz: ClockZone | None = None


class DevicePatch(_Body):
    """Only the fields given change; null clears (`resident_id`: unassigned, `clock_tz`: UTC)."""

    resident_id: ResidentId | None = None
    model: Model | None = None
    clock_tz: ClockZone | None = None


class DevicePublic(BaseModel):
    device_id: str
    format: str
    model: str | None
    resident_id: int | None
    area: str = Field(description="the resident's area; '' (the top) without a resident")
    status: Literal["active", "disabled"]
    mqtt_username: str | None = Field(description="null: it reaches carewatch via a gateway")
    clock_tz: str | None = Field(description="null: UTC")
    last_seen: datetime | None = Field(description="when carewatch last stored an event of it")
    battery_pct: float | None = Field(description="the newest battery report, by device time")
    battery_at: datetime | None
    worn: bool | None = Field(description="the newest worn report; null: never said")
    worn_at: datetime | None


class DeviceCreated(DevicePublic):
    mqtt_secret: str | None = Field(
        description="its broker password, shown this once; null for a device without a "
        "broker account of its own (watches behind the gateway, LoRaWAN via a network server)"
    )


class DevicePage(BaseModel):
    items: list[DevicePublic]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class ImportProblem(BaseModel):
    line: int = Field(description="the CSV line (the header is line 1)")
    detail: str


class ImportResult(BaseModel):
    created: list[DeviceCreated]
    errors: list[ImportProblem]


# --- safe zones ------------------------------------------------------------------------------

_HHMM = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
ZoneName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(clean_text),
]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class WindowOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str


class Window(WindowOut):
    """Local time of the resident, every day (the rule has no weekdays); `to` before
    `from` crosses midnight."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", pattern=_HHMM, description="HH:MM")
    to: str = Field(pattern=_HHMM, description="HH:MM; 24:00 is midnight at the end")

    @model_validator(mode="after")
    def _checked(self) -> Window:
        parse_window(f"{self.from_}-{self.to}")  # the rule's own check: ValueError
        return self


class CircleZone(_Body):
    name: ZoneName
    kind: Literal["circle"]
    lat: Latitude
    lon: Longitude
    radius_m: float = Field(gt=0, le=100_000)
    window: Window | None = Field(None, description="active only then; always when left out")


class PolygonZone(_Body):
    name: ZoneName
    kind: Literal["polygon"]
    points: list[tuple[Latitude, Longitude]] = Field(
        min_length=3, max_length=1000, description="[lat, lon] corners, in order"
    )
    window: Window | None = None


ZoneIn = Annotated[CircleZone | PolygonZone, Field(discriminator="kind")]


class CircleZoneOut(BaseModel):
    name: str
    kind: Literal["circle"]
    lat: float
    lon: float
    radius_m: float
    window: WindowOut | None


class PolygonZoneOut(BaseModel):
    name: str
    kind: Literal["polygon"]
    points: list[tuple[float, float]]
    window: WindowOut | None


# Out: as the rule applies them (validated by the rules, not by the stricter bodies above).
ZoneOut = Annotated[CircleZoneOut | PolygonZoneOut, Field(discriminator="kind")]


class ZonePage(BaseModel):
    items: list[ZoneOut]
    next: str | None = Field(None, description="always null: every zone on one page")


def to_rule(zone: CircleZone | PolygonZone) -> dict[str, Any]:
    """The zone as `geofence.zones` in a resident's overrides holds it."""
    shape: dict[str, Any]
    if isinstance(zone, CircleZone):
        shape = {"center": [zone.lat, zone.lon], "radius_m": zone.radius_m}
    else:
        shape = {"polygon": [list(point) for point in zone.points]}
    window = {"window": f"{zone.window.from_}-{zone.window.to}"} if zone.window else {}
    return {"name": zone.name, **shape, **window}


def from_rule(zone: dict[str, Any]) -> dict[str, Any]:
    """A validated rule zone (alerts.rules.config.Zone, dumped) in the API's shape."""
    out: dict[str, Any] = {"name": zone["name"], "window": None}
    if zone.get("polygon") is not None:
        out |= {"kind": "polygon", "points": zone["polygon"]}
    else:
        lat, lon = zone["center"]
        out |= {"kind": "circle", "lat": lat, "lon": lon, "radius_m": zone["radius_m"]}
    if zone.get("window"):
        start, end = zone["window"].split("-")
        out["window"] = {"from": start.strip(), "to": end.strip()}
    return out
