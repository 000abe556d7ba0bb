"""What the API takes in and gives out about people: residents, their contacts and the
contact ladder (pydantic; the text rules of api/models.py: trimmed, bounded, no control
characters). Channel secrets come in and never go out: answers say `has_secret`.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from api.models import AreaPath, Note, Short, clean_text

__all__ = [
    "ChannelIn",
    "ContactCreate",
    "ContactPage",
    "ContactPatch",
    "ContactPublic",
    "Escalation",
    "EscalationOut",
    "Positions",
    "ResidentContact",
    "ResidentContactPage",
    "ResidentCreate",
    "ResidentDetail",
    "ResidentPage",
    "ResidentPatch",
    "ResidentPublic",
    "Rules",
    "Timeline",
    "Vitals",
]

Sex = Literal["female", "male", "other"]
Relationship = Literal["family", "neighbour", "community_worker", "doctor", "other"]
ChannelType = Literal["sms", "voice", "email", "wecom", "dingtalk", "feishu", "webhook"]

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")


def _phone(value: str) -> str:
    """E.164-ish: an optional leading +, then digits with spaces, dashes, dots or brackets
    as people write them; 3 (110, 120) to 15 digits (E.164's maximum)."""
    if not re.fullmatch(r"\+?[0-9][0-9 ().-]*", value):
        raise ValueError("a phone number: an optional +, digits, spaces, - . ( )")
    if not 3 <= sum(c.isdigit() for c in value) <= 15:
        raise ValueError("a phone number has 3 to 15 digits")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("an IANA time zone such as Asia/Shanghai") from None
    return value


def _url(value: str) -> str:
    if not _URL.fullmatch(value):
        raise ValueError("an http(s) URL")
    return value


Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=32), AfterValidator(_phone)
]
Language = Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")]
Timezone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_timezone)
]
Url = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(_url)
]
Address = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(clean_text),
]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(clean_text)]
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class _Body(BaseModel):
    # A misspelt field is an error; NaN and infinities are no positions.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Home(_Body):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class GP(_Body):
    name: Short
    phone: Phone | None = None


class _ResidentFields(_Body):
    sex: Sex | None = None
    birth_year: int | None = Field(None, ge=1880, le=2100)
    address: Address | None = None
    home: Home | None = Field(None, description="where they live, WGS-84 degrees")
    phone: Phone | None = None
    area: AreaPath | None = Field(None, description="yours when left out; within yours")
    languages: list[Language] = Field(
        [], max_length=10, description="BCP 47 tags, the best understood first: zh-CN, yue"
    )
    dialect: Short | None = None
    living_alone: bool | None = None
    medical_notes: Note | None = None
    allergies: Note | None = None
    gp: GP | None = Field(None, description="their general practitioner")
    photo_url: Url | None = None
    timezone: Timezone = "Asia/Shanghai"


class ResidentCreate(_ResidentFields):
    name: Short


class ResidentPatch(_ResidentFields):
    """Only the fields sent change; null clears one (name, area, languages and timezone
    cannot be cleared)."""

    name: Short | None = None

    @model_validator(mode="after")
    def _no_null_required(self) -> ResidentPatch:
        for name in ("name", "area", "timezone", "languages"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class Device(BaseModel):
    device_id: str
    format: str
    model: str | None
    status: str
    last_seen: datetime | None
    battery_pct: float | None = Field(description="the latest report of the last 30 days")


class ResidentPublic(BaseModel):
    resident_id: int
    name: str
    sex: Sex | None
    birth_year: int | None
    address: str | None
    home: Home | None
    phone: str | None
    area: str
    languages: list[str]
    dialect: str | None
    living_alone: bool | None
    medical_notes: str | None
    allergies: str | None
    gp: GP | None
    photo_url: str | None
    timezone: str
    created_at: datetime
    updated_at: datetime


class ResidentDetail(ResidentPublic):
    devices: list[Device]
    rules: dict[str, Any] = Field(description="rule overrides (PUT …/rules to change)")


class ResidentPage(BaseModel):
    items: list[ResidentPublic]
    next: str | None


class Rules(BaseModel):
    """Rule overrides: any part of rules.toml, validated as `carewatch residents configure`
    validates it."""

    model_config = ConfigDict(extra="allow")


class ChannelIn(_Body):
    type: ChannelType
    address: Address = Field(
        description="sms/voice: a phone number; email: an address; webhook: an http(s) URL; "
        "wecom/dingtalk/feishu: the group bot's webhook URL (or its apprise URL)"
    )
    secret: Secret | None = Field(
        None, description="webhook: the HMAC key (required); others: what the channel needs. "
        "Never shown again; re-sending a channel without it keeps the stored one",
    )  # fmt: skip

    @model_validator(mode="after")
    def _address_fits(self) -> ChannelIn:
        address: str = self.address
        if self.type in ("sms", "voice"):
            _phone(address)
        elif self.type == "email" and not _EMAIL.fullmatch(address):
            raise ValueError("address: an e-mail address")
        elif self.type == "webhook":
            _url(address)
        return self


class QuietHours(_Body):
    """Local times (the contact's `time_zone`) when only critical alerts may wake them;
    start after end spans midnight (22:00 to 07:00)."""

    start: time
    end: time

    @model_validator(mode="after")
    def _two_times(self) -> QuietHours:
        if self.start.tzinfo or self.end.tzinfo:
            raise ValueError("local times without an offset, e.g. 22:00")
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class _ContactFields(_Body):
    relationship: Relationship | None = None
    language: Language = Field("zh-CN", description="what notifications are written in")
    time_zone: Timezone = Field("Asia/Shanghai", description="where the contact lives (IANA)")
    quiet_hours: QuietHours | None = Field(
        None, description="when non-critical notifications wait (null: any time)"
    )
    phones: list[Phone] = Field([], max_length=5)
    area: AreaPath | None = Field(None, description="yours when left out; within yours")
    notes: Note | None = None
    channels: list[ChannelIn] = Field([], max_length=10)


class ContactCreate(_ContactFields):
    name: Short
    relationship: Relationship


class ContactPatch(_ContactFields):
    """Only the fields sent change; `channels` replaces them all (secrets kept, see
    ChannelIn)."""

    name: Short | None = None
    language: Language | None = None  # type: ignore[assignment]
    time_zone: Timezone | None = None  # type: ignore[assignment]
    channels: list[ChannelIn] | None = Field(None, max_length=10)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _no_null_required(self) -> ContactPatch:
        for name in ("name", "relationship", "language", "area", "phones", "channels", "time_zone"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ChannelOut(BaseModel):
    type: ChannelType
    address: str
    has_secret: bool


class ContactPublic(BaseModel):
    contact_id: int
    name: str
    relationship: Relationship
    language: str
    time_zone: str
    quiet_hours: QuietHours | None

    @model_validator(mode="before")
    @classmethod
    def _quiet_hours(cls, data: Any) -> Any:
        # Stored as two columns (devices/contacts.py); answered as one object.
        if isinstance(data, dict) and "quiet_hours" not in data:
            start, end = data.get("quiet_from"), data.get("quiet_to")
            quiet = {"start": start, "end": end} if start and end else None
            return {**data, "quiet_hours": quiet}
        return data

    phones: list[str]
    area: str
    notes: str | None
    channels: list[ChannelOut]
    created_at: datetime
    updated_at: datetime


class ResidentContact(ContactPublic):
    on_ladder: bool


class ContactPage(BaseModel):
    items: list[ContactPublic]
    next: str | None


class ResidentContactPage(BaseModel):
    items: list[ResidentContact]
    next: str | None = Field(description="always null: one page")


class Step(_Body):
    contacts: list[Id] = Field([], max_length=20, description="notified at once")
    schedules: list[Id] = Field(
        [], max_length=10, description="whoever is on call in these schedules, notified at once"
    )
    wait_s: int = Field(
        ge=1, le=86400, description="for an acceptance before the next step (seconds)"
    )

    @model_validator(mode="after")
    def _someone(self) -> Step:
        if not self.contacts and not self.schedules:
            raise ValueError("a step needs contacts or schedules")
        return self


class Escalation(_Body):
    steps: list[Step] = Field(min_length=1, max_length=20)
    repeat: int = Field(ge=0, le=20, description="how many more times the ladder runs (0: once)")


class EscalationOut(BaseModel):
    resident_id: int
    steps: list[Step]
    repeat: int
    updated_at: datetime | None = Field(description="null: no ladder set")


class DefaultStep(Step):
    resident_contacts: bool = Field(False, description="also every contact of the alert's resident")

    @model_validator(mode="after")
    def _someone(self) -> DefaultStep:
        if not (self.contacts or self.schedules or self.resident_contacts):
            raise ValueError("a step needs contacts, schedules or resident_contacts")
        return self


class DefaultEscalation(_Body):
    """The policy of alerts whose resident has no ladder (or that have no resident)."""

    steps: list[DefaultStep] = Field(max_length=20, description="[]: notify nobody")
    repeat: int = Field(ge=0, le=20)


class DefaultEscalationOut(BaseModel):
    severity: Literal["critical", "warning", "info"]
    steps: list[DefaultStep]
    repeat: int
    source: Literal["set", "built-in"]
    updated_at: datetime | None


class TimelineItem(BaseModel):
    """An event (`type: event`: `event_id`, `received_at`, `data` = its kind's fields) or
    an alert (`type: alert`: `alert_id`, `severity`, `status`, `summary`, `lat`, `lon`)."""

    type: Literal["event", "alert"]
    at: datetime = Field(description="an event's device time; an alert's opening")
    kind: str
    device_id: str
    event_id: str | None = None
    received_at: datetime | None = None
    data: dict[str, Any] | None = None
    alert_id: int | None = None
    severity: str | None = None
    status: str | None = None
    summary: str | None = None
    lat: float | None = None
    lon: float | None = None


class Timeline(BaseModel):
    since: datetime
    until: datetime
    items: list[TimelineItem]
    next: str | None


class Position(BaseModel):
    bucket: datetime = Field(description="the start of its time bucket")
    at: datetime = Field(description="the position's device time")
    device_id: str
    lat: float
    lon: float
    accuracy_m: float | None
    fix: bool = Field(description="false: a last-known position, not a current fix")


class Positions(BaseModel):
    since: datetime
    until: datetime
    bucket_s: int
    items: list[Position]


class VitalPoint(BaseModel):
    at: datetime = Field(description="the start of its time bucket")
    avg: float
    min: float
    max: float
    n: int = Field(description="readings in the bucket")


class Vitals(BaseModel):
    since: datetime
    until: datetime
    bucket_s: int
    series: dict[str, list[VitalPoint]] = Field(description="by metric, e.g. heart_rate_bpm")
