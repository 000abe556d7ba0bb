"""What the API takes in and gives out for the operator console's work: work orders, the
acknowledgement statistics and a user's console preferences (pydantic; the text rules of
api/models.py: trimmed, bounded, no control characters). A work order as it goes out,
and the preferences inside a user, are in api/models.py, which the alert and the user
answers use too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api.models import (
    ConsoleLanguage,
    Note,
    OrderOutcome,
    Short,
    WorkOrderOut,
    clean_text,
)
from api.people_models import Phone

__all__ = [
    "AcceptBody",
    "AckFigures",
    "AckStats",
    "DispatchBody",
    "FollowUpBody",
    "OperatorFigures",
    "PreferencesBody",
    "ReportBody",
    "ShiftFigures",
    "WorkOrderItem",
    "WorkOrderPage",
]


class _Body(BaseModel):
    # A misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


ZoneName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(clean_text),
]  # fmt: skip


class DispatchBody(_Body):
    assignee: Short = Field(description="who goes: a person or a team, e.g. '社区网格员 王芳'")
    phone: Phone | None = Field(None, description="how to reach them")
    due_min: int = Field(30, ge=1, le=1440, description="minutes until they should be on site")
    note: Note | None = None


class AcceptBody(_Body):
    note: Note | None = None


class ReportBody(_Body):
    outcome: OrderOutcome = Field(description="what the visit found (docs/api.md)")
    note: Note | None = None


class FollowUpBody(_Body):
    note: Note = Field(description="what the call back to the resident found")


class WorkOrderItem(WorkOrderOut):
    """An order in a list, with whom and what it is about."""

    alert_kind: str
    resident_name: str | None
    area: str


class WorkOrderPage(BaseModel):
    items: list[WorkOrderItem]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class AckFigures(BaseModel):
    alerts: int = Field(description="alerts opened in the window")
    acknowledged: int
    within_60s_pct: float | None = Field(
        description="of the alerts acknowledged, or unacknowledged and older than 60 s: the"
        " share acknowledged within 60 s; null when there are none"
    )
    within_180s_pct: float | None = Field(description="the same for 180 s")
    p50_s: float | None = Field(description="median time to acknowledge, acknowledged alerts")
    p95_s: float | None


class OperatorFigures(AckFigures):
    operator: str = Field(description="who acknowledged")


class ShiftFigures(AckFigures):
    shift_start: datetime = Field(description="in the centre's time zone")
    shift_end: datetime
    label: str = Field(description="e.g. '2026-03-01 08:00-16:00', local time")


class AckStats(BaseModel):
    since: datetime
    until: datetime
    targets_s: list[int]
    overall: AckFigures
    by_operator: list[OperatorFigures]
    by_shift: list[ShiftFigures]


class PreferencesBody(_Body):
    language: ConsoleLanguage | None = Field(description="null: the browser's")
    time_zone: ZoneName | None = Field(description="an IANA zone; null: the centre's")
    large_text: bool
