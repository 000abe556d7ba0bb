"""What the API takes in and gives out about on-call schedules (pydantic; the text rules
of api/models.py). Instants come in with their offset (RFC 3339): a naive one is a 422,
since "08:00" means a different instant in every zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.models import AreaPath, Short
from api.people_models import Id, Timezone

__all__ = [
    "OnCall",
    "OnCallContact",
    "OverrideIn",
    "OverrideOut",
    "RotationIn",
    "RotationOut",
    "ScheduleCreate",
    "SchedulePage",
    "SchedulePublic",
    "ScheduleReplace",
    "check_instant",
]

ScheduleRole = Literal["oncall", "supervisors"]
WEEK_S = 7 * 86400
# Far enough for any schedule, near enough that every instant converts and stores safely.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def check_instant(value: datetime) -> datetime:
    """`value` if it lies in [EARLIEST, LATEST); ValueError otherwise (naive too)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("give the time zone too (e.g. 2026-01-05T08:00:00+08:00)")
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"an instant from {EARLIEST.year} to {LATEST.year - 1}")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(check_instant)]


class _Body(BaseModel):
    # A misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class RotationIn(_Body):
    contacts: list[Id] = Field(
        min_length=1, max_length=50, description="in turn order; one may take several turns"
    )
    start: Instant = Field(description="when the first contact's first turn begins (RFC 3339)")
    shift_s: int = Field(
        WEEK_S, ge=3600, le=31 * 86400,
        description="one turn, in seconds (a week by default); fixed, so where clocks change "
        "for daylight saving the local hand-off time moves by an hour",
    )  # fmt: skip


class OverrideIn(_Body):
    contact_id: Id
    starts_at: Instant
    ends_at: Instant = Field(description="exclusive; after starts_at")

    @model_validator(mode="after")
    def _ends_after_start(self) -> OverrideIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ScheduleCreate(_Body):
    name: Short
    area: AreaPath | None = Field(None, description="yours when left out; within yours")
    role: ScheduleRole = Field(
        "oncall", description="supervisors: who is reached when nobody acknowledges in time"
    )
    time_zone: Timezone = Field("Asia/Shanghai", description="IANA; for reading hand-offs")
    rotations: list[RotationIn] = Field(
        min_length=1, max_length=10, description="layers: whoever is on turn in any is on call"
    )
    overrides: list[OverrideIn] | None = Field(
        None, max_length=100, description="someone else on call for a while: replaces the "
        "rotations' people in its interval",
    )  # fmt: skip


class ScheduleReplace(ScheduleCreate):
    """Everything replaced; `overrides` too when given (they get new ids), kept when left
    out."""


class RotationOut(BaseModel):
    contacts: list[int]
    start: datetime
    shift_s: int


class OverrideOut(BaseModel):
    override_id: int
    contact_id: int
    starts_at: datetime
    ends_at: datetime


class SchedulePublic(BaseModel):
    schedule_id: int
    name: str
    area: str
    role: ScheduleRole
    time_zone: str
    rotations: list[RotationOut]
    overrides: list[OverrideOut] = Field(description="by start, ended ones too")
    created_at: datetime
    updated_at: datetime


class SchedulePage(BaseModel):
    items: list[SchedulePublic]
    next: str | None


class OnCallContact(BaseModel):
    contact_id: int
    name: str


class OnCall(BaseModel):
    schedule_id: int
    at: datetime
    contacts: list[OnCallContact]
