"""What the API takes in and gives out (pydantic): bodies are never what goes out, and
secrets leave only in the one answer that issues them (`UserCreated`, `TokenOut`).

Every string that comes in is checked for characters PostgreSQL cannot store (NUL) and
for length, so hostile input gets a 422 naming the field, never a server error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "AckBody",
    "AlertDetail",
    "AlertItem",
    "AlertPage",
    "AssignBody",
    "AuditEntry",
    "AuditPage",
    "CallBody",
    "CallOut",
    "Error",
    "FieldError",
    "HistoryEntry",
    "HoldBody",
    "LoginBody",
    "NoteBody",
    "NoteOut",
    "Preferences",
    "ResolveBody",
    "TokenOut",
    "UserCreate",
    "UserCreated",
    "UserPage",
    "UserPublic",
    "WorkOrderOut",
    "clean_text",
]

Role = Literal["operator", "supervisor", "admin"]
Status = Literal["open", "acknowledged", "resolved"]
Severity = Literal["critical", "warning", "info"]
Resolution = Literal[
    "false_alarm",
    "assisted_at_home",
    "ambulance",
    "police",
    "no_answer_visited",
    "device_fault",
    "test",
    "other",
]
Outcome = Literal["answered", "no_answer", "busy", "wrong_number", "voicemail"]
OrderStatus = Literal["dispatched", "accepted", "reported", "followed_up"]
OrderOutcome = Literal["visited_ok", "assisted", "hospital", "not_home", "false_alarm", "other"]
ConsoleLanguage = Literal["zh-CN", "en"]


def clean_text(value: str) -> str:
    """No control characters but tab and line breaks: NUL cannot be stored at all, and
    the others only hide what a text says."""
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise ValueError("control characters are not allowed")
    return value


Note = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
    AfterValidator(clean_text),
]
Short = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(clean_text),
]
AreaPath = Annotated[str, StringConstraints(max_length=200), AfterValidator(clean_text)]
UserName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]


class _Body(BaseModel):
    # A misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: e.g. ['body', 'note'] or ['query', 'limit']")
    msg: str
    type: str


class Error(BaseModel):
    detail: str | list[FieldError] = Field(
        description="what was refused and why; for a request that does not match its schema "
        "(422), one entry per field"
    )


class AckBody(_Body):
    note: Note | None = Field(None, description="kept in the alert's history")


class ResolveBody(_Body):
    resolution: Resolution = Field(description="why it is resolved (docs/api.md)")
    note: Note | None = Field(None, description="what was done; the resolution code when left out")


class AssignBody(_Body):
    user: UserName = Field(description="the user who takes it on")


class HoldBody(_Body):
    reason: Short = Field(description="what the alert waits for")
    until: AwareDatetime = Field(description="when it needs attention again (at most 7 days)")


class NoteBody(_Body):
    text: Note


class CallBody(_Body):
    to: Short = Field(description="who was called: 'resident', 'daughter', '120'…")
    number: str = Field(pattern=r"^[0-9+()#*. -]{2,32}$", description="the number dialled")
    outcome: Outcome


class HistoryEntry(BaseModel):
    history_id: int
    at: datetime
    change: str
    actor: str
    note: str | None
    status: Status
    count: int
    published_at: datetime | None


class NoteOut(BaseModel):
    note_id: int
    at: datetime
    author: str
    text: str


class CallOut(BaseModel):
    call_id: int
    at: datetime
    caller: str
    callee: str
    number: str
    outcome: Outcome


class WorkOrderOut(BaseModel):
    """A visit dispatched about an alert (alerts/work_orders.py), with each step's time,
    who recorded it and its note."""

    order_id: int
    alert_id: int
    assignee: str = Field(description="who goes: a person or a team")
    phone: str | None
    status: OrderStatus
    due_at: datetime = Field(description="when they should be on site")
    overdue: bool = Field(description="not reported on, and due_at has passed")
    outcome: OrderOutcome | None
    created_by: str
    created_at: datetime
    dispatch_note: str | None
    accepted_at: datetime | None
    accepted_by: str | None
    accept_note: str | None
    reported_at: datetime | None
    reported_by: str | None
    report_note: str | None
    followed_up_at: datetime | None
    followed_up_by: str | None
    follow_up_note: str | None


class AlertItem(BaseModel):
    """The fields of `carewatch alerts list --json`, the resident's name and area, and
    who has it and until when it is on hold."""

    alert_id: int
    kind: str
    device_id: str
    severity: Severity
    status: Status
    count: int
    first_ts: datetime
    last_ts: datetime
    opened_at: datetime
    updated_at: datetime
    lat: float | None
    lon: float | None
    summary: str
    resident_id: int | None
    resident_name: str | None
    area: str
    assigned_to: str | None
    held_until: datetime | None


class AlertPage(BaseModel):
    items: list[AlertItem]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class NotificationOut(BaseModel):
    """One notification of an alert (docs/notifications.md): `status` is pending, delivered
    (handed over: not yet an answer), calling (a voice call under way), accepted, declined,
    no_answer, failed (after retries), or cancelled (someone accepted first)."""

    notification_id: str
    purpose: Literal["alert", "resolved", "supervisor"]
    cycle: int
    round: int
    step: int
    contact_id: int | None
    contact_name: str
    channel: str
    address: str
    status: Literal[
        "pending", "delivered", "calling", "accepted", "declined", "no_answer", "failed",
        "cancelled",
    ]  # fmt: skip
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    answered_at: datetime | None


class AlertDetail(AlertItem):
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None = Field(description="the resolving note, or the rule's reason")
    resolution_code: Resolution | None
    hold_reason: str | None
    events: int = Field(description="events and timer keys linked to the alert")
    history: list[HistoryEntry]
    notes: list[NoteOut]
    calls: list[CallOut]
    work_orders: list[WorkOrderOut] = Field(description="visits dispatched, oldest first")
    notifications: list[NotificationOut] = Field(
        [], description="who was told, on which channel, when, and what came of it"
    )


class Preferences(BaseModel):
    """How the user wants the console; null: the console's default."""

    language: ConsoleLanguage | None
    time_zone: str | None = Field(description="an IANA time zone, e.g. Asia/Shanghai")
    large_text: bool


class UserPublic(BaseModel):
    name: str
    role: Role
    area: str = Field(description="'' is the top: every area")
    created_at: datetime
    disabled: bool
    preferences: Preferences


class UserPage(BaseModel):
    items: list[UserPublic]
    next: str | None


class UserCreate(_Body):
    name: UserName
    role: Role
    area: AreaPath | None = Field(None, description="'' for every area; yours when left out")
    password: str | None = Field(
        None, min_length=12, max_length=256, description="a new one is made when left out"
    )


class UserCreated(UserPublic):
    password: str = Field(description="shown this once")
    token: str = Field(description="a bearer token, shown this once")


class LoginBody(_Body):
    name: UserName
    password: Annotated[str, Field(min_length=1, max_length=256)]


class TokenOut(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`")
    user: UserPublic


class AuditEntry(BaseModel):
    audit_id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next: str | None
