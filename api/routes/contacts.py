"""`/api/v1/contacts`, `/api/v1/residents/{id}/contacts` and `/…/escalation`: the people
to call about a resident, how to reach them, and the order to call them in.

Contacts belong to an area (the creator's unless given): a user sees and changes those in
their area or below it. A resident's contact list and ladder are read through the
resident (whose area decides); putting a contact on a ladder or the list needs the contact
to be visible too. Supervisors and admins write. Channel secrets are stored for the
notifier and never answered (`has_secret`). Every change writes an audit row (secrets
left out) in the same transaction.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query, Response

from api import audit
from api.cursors import decode_cursor, encode_cursor
from api.deps import (
    Admin,
    Conn,
    CurrentUser,
    Supervisor,
    area_filter,
    area_param,
    forbid_outside,
)
from api.models import Error
from api.people_models import (
    ContactCreate,
    ContactPage,
    ContactPatch,
    ContactPublic,
    DefaultEscalation,
    DefaultEscalationOut,
    Escalation,
    EscalationOut,
    Relationship,
    ResidentContactPage,
)
from api.routes import API_PREFIX
from api.routes.residents import ResidentId, load_resident
from api.users import User
from devices import contacts
from notifier import schedule_store
from notifier.policy import BUILT_IN

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (401, 403, 404, 409, 422)
}
router = APIRouter(prefix=API_PREFIX, tags=["contacts"], responses=_ERRORS)

ContactId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Severity = Literal["critical", "warning", "info"]


@router.post("/contacts", response_model=ContactPublic, status_code=201, summary="add a contact")
async def create_contact(conn: Conn, user: Supervisor, body: ContactCreate) -> dict[str, Any]:
    fields = _columns(body.model_dump(exclude={"channels"}))
    fields["area"] = area_param(body.area if body.area is not None else user.area)
    forbid_outside(user, fields["area"], f"area {fields['area']!r}")
    channels = _checked([c.model_dump() for c in body.channels])
    async with conn.transaction():
        contact = await contacts.create_contact(conn, fields, channels)
        await _audit(conn, user, "contact.create", contact["contact_id"], None, contact)
    return contact


@router.get("/contacts", response_model=ContactPage, summary="the contacts in your area")
async def list_contacts(
    conn: Conn,
    user: CurrentUser,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="in the name")] = None,
    area: Annotated[str | None, Query(max_length=200)] = None,
    relationship: Relationship | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    wanted = area_filter(user, area)
    if q is not None and "\x00" in q:
        raise HTTPException(422, "q: no NUL characters")
    after = decode_cursor(cursor, "contacts", (str, int)) if cursor else None
    items, last = await contacts.list_contacts(
        conn, scope=user.area, area=wanted, q=q, relationship=relationship,
        after=after, limit=limit,
    )  # fmt: skip
    return {"items": items, "next": encode_cursor("contacts", last) if last else None}


@router.get("/contacts/{contact_id}", response_model=ContactPublic, summary="one contact")
async def get_contact(conn: Conn, user: CurrentUser, contact_id: ContactId) -> dict[str, Any]:
    return await _load(conn, user, contact_id)


@router.patch("/contacts/{contact_id}", response_model=ContactPublic, summary="change a contact")
async def update_contact(
    conn: Conn, user: Supervisor, contact_id: ContactId, body: ContactPatch
) -> dict[str, Any]:
    fields = _columns(body.model_dump(exclude_unset=True, exclude={"channels"}))
    if "area" in fields:
        fields["area"] = area_param(fields["area"])
        forbid_outside(user, fields["area"], f"area {fields['area']!r}")
    async with conn.transaction():
        before = await _load(conn, user, contact_id, lock=True)
        channels = None
        if body.channels is not None:
            stored = await contacts.channel_secrets(conn, contact_id)
            channels = _checked(
                contacts.keep_secrets(stored, [c.model_dump() for c in body.channels])
            )
        after = await contacts.update_contact(conn, contact_id, fields, channels)
        assert after is not None  # locked: it exists
        await _audit(conn, user, "contact.update", contact_id, before, after)
    return after


@router.delete("/contacts/{contact_id}", status_code=204, summary="delete a contact")
async def delete_contact(conn: Conn, user: Supervisor, contact_id: ContactId) -> Response:
    async with conn.transaction():
        before = await _load(conn, user, contact_id, lock=True)
        on = await contacts.ladders_naming(conn, contact_id)
        if on:
            raise HTTPException(
                409, f"contact {contact_id} is on the escalation ladder of resident(s)"
                f" {', '.join(map(str, on))}: change those first",
            )  # fmt: skip
        rota = await schedule_store.schedules_naming(conn, contact_id)
        if rota:
            raise HTTPException(
                409, f"contact {contact_id} is on schedule(s) {', '.join(map(str, rota))}"
                " (a rotation or an override): change those first",
            )  # fmt: skip
        await _racing(contacts.delete_contact(conn, contact_id))
        await _audit(conn, user, "contact.delete", contact_id, before, None)
    return Response(status_code=204)


@router.get(
    "/residents/{resident_id}/contacts",
    response_model=ResidentContactPage,
    tags=["residents"],
    summary="a resident's contacts, each saying whether it is on the ladder",
)
async def resident_contacts(
    conn: Conn, user: CurrentUser, resident_id: ResidentId
) -> dict[str, Any]:
    await load_resident(conn, user, resident_id)
    return {"items": await contacts.contacts_of_resident(conn, resident_id), "next": None}


@router.put(
    "/residents/{resident_id}/contacts/{contact_id}",
    status_code=204,
    tags=["residents"],
    summary="make a contact the resident's",
)
async def link_contact(
    conn: Conn, user: Supervisor, resident_id: ResidentId, contact_id: ContactId
) -> Response:
    async with conn.transaction():
        await load_resident(conn, user, resident_id, lock=True)
        await _load(conn, user, contact_id)
        if await contacts.link(conn, resident_id, [contact_id]):
            await _link_audit(conn, user, "resident.contact_link", resident_id, contact_id)
    return Response(status_code=204)


@router.delete(
    "/residents/{resident_id}/contacts/{contact_id}",
    status_code=204,
    tags=["residents"],
    summary="the contact is no longer the resident's (not while on the ladder)",
)
async def unlink_contact(
    conn: Conn, user: Supervisor, resident_id: ResidentId, contact_id: ContactId
) -> Response:
    async with conn.transaction():
        await load_resident(conn, user, resident_id, lock=True)
        if resident_id in await contacts.ladders_naming(conn, contact_id):
            raise HTTPException(409, f"contact {contact_id} is on the resident's ladder")
        if not await contacts.unlink(conn, resident_id, contact_id):
            raise HTTPException(404, f"contact {contact_id} is not resident {resident_id}'s")
        await _link_audit(conn, user, "resident.contact_unlink", resident_id, contact_id)
    return Response(status_code=204)


@router.get(
    "/residents/{resident_id}/escalation",
    response_model=EscalationOut,
    tags=["residents"],
    summary="the contact ladder (no steps: none set)",
)
async def get_escalation(conn: Conn, user: CurrentUser, resident_id: ResidentId) -> dict[str, Any]:
    await load_resident(conn, user, resident_id)
    return {"resident_id": resident_id, **await contacts.get_ladder(conn, resident_id)}


@router.put(
    "/residents/{resident_id}/escalation",
    response_model=EscalationOut,
    tags=["residents"],
    summary="set the contact ladder the notifier walks",
)
async def set_escalation(
    conn: Conn, user: Supervisor, resident_id: ResidentId, body: Escalation
) -> dict[str, Any]:
    steps = [step.model_dump() for step in body.steps]
    problems = contacts.check_ladder(steps, body.repeat)  # what the model cannot say
    if problems:
        raise HTTPException(422, "; ".join(problems))
    async with conn.transaction():
        await load_resident(conn, user, resident_id, lock=True)
        await _targets_visible(conn, user, steps)
        before = await contacts.get_ladder(conn, resident_id)
        after = await _racing(contacts.set_ladder(conn, resident_id, steps, body.repeat))
        await audit.record(
            conn, actor=user.name, action="resident.escalation",
            target=f"resident:{resident_id}", before=before, after=after,
        )  # fmt: skip
    return {"resident_id": resident_id, **after}


@router.delete(
    "/residents/{resident_id}/escalation",
    status_code=204,
    tags=["residents"],
    summary="remove the ladder: the resident's alerts follow the defaults again",
)
async def delete_escalation(conn: Conn, user: Supervisor, resident_id: ResidentId) -> Response:
    async with conn.transaction():
        await load_resident(conn, user, resident_id, lock=True)
        before = await contacts.get_ladder(conn, resident_id)
        if not await contacts.delete_ladder(conn, resident_id):
            raise HTTPException(404, f"resident {resident_id} has no ladder")
        await audit.record(
            conn, actor=user.name, action="resident.escalation_delete",
            target=f"resident:{resident_id}", before=before, after=None,
        )  # fmt: skip
    return Response(status_code=204)


@router.get(
    "/escalation-defaults/{severity}",
    response_model=DefaultEscalationOut,
    tags=["escalation"],
    summary="the policy of alerts whose resident has no ladder",
)
async def get_default(conn: Conn, user: CurrentUser, severity: Severity) -> dict[str, Any]:
    return await _default(conn, severity)


@router.put(
    "/escalation-defaults/{severity}",
    response_model=DefaultEscalationOut,
    tags=["escalation"],
    summary="set the policy of alerts whose resident has no ladder (admins)",
)
async def set_default(
    conn: Conn, user: Admin, severity: Severity, body: DefaultEscalation
) -> dict[str, Any]:
    if user.area:  # every area's alerts follow it
        raise HTTPException(403, "only an admin of the top area sets the defaults")
    steps = [step.model_dump() for step in body.steps]
    async with conn.transaction():
        await _targets_visible(conn, user, steps)
        before = await _default(conn, severity)
        await contacts.set_default(conn, severity, steps, body.repeat)
        after = await _default(conn, severity)
        await audit.record(
            conn, actor=user.name, action="escalation.default", target=f"severity:{severity}",
            before=before, after=after,
        )  # fmt: skip
    return after


async def _default(conn: Conn, severity: str) -> dict[str, Any]:
    found = await contacts.get_default(conn, severity)
    if found is None:
        return {"severity": severity, **BUILT_IN[severity], "source": "built-in",
                "updated_at": None}  # fmt: skip
    return {"severity": severity, **found, "source": "set"}


async def _targets_visible(conn: Conn, user: User, steps: list[dict[str, Any]]) -> None:
    """422 naming the contacts or schedules of `steps` the user cannot see."""
    for what, visible in (("contact", contacts.visible), ("schedule", schedule_store.visible)):
        wanted = sorted({t for step in steps for t in step.get(f"{what}s", [])})
        missing = sorted(set(wanted) - await visible(conn, user.area, wanted))
        if missing:
            raise HTTPException(
                422, f"steps: no {what} {', '.join(map(str, missing))} in your area"
            )


async def _load(conn: Conn, user: User, contact_id: int, *, lock: bool = False) -> dict[str, Any]:
    contact = await contacts.get_contact(conn, contact_id, lock=lock)
    if contact is None:
        raise HTTPException(404, f"no contact {contact_id}")
    forbid_outside(user, contact["area"], f"contact {contact_id}")
    return contact


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """The body's fields as the store's columns: quiet hours are two."""
    if "quiet_hours" in fields:
        quiet = fields.pop("quiet_hours") or {"start": None, "end": None}
        fields["quiet_from"], fields["quiet_to"] = quiet["start"], quiet["end"]
    return fields


def _checked(channels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A webhook is signed with its secret (DESIGN.md): one without could not be verified.
    for i, channel in enumerate(channels):
        if channel["type"] == "webhook" and not channel.get("secret"):
            raise HTTPException(422, f"channels[{i}]: a webhook needs its secret (HMAC key)")
    return channels


async def _racing(pending: Any) -> Any:
    # A contact deleted while a ladder naming it is being set (or the other way round):
    # the foreign key refuses one of the two.
    try:
        return await pending
    except asyncpg.ForeignKeyViolationError:
        raise HTTPException(
            409, "a contact changed meanwhile (deleted, or put on a ladder)"
        ) from None


async def _audit(
    conn: Conn,
    user: User,
    action: str,
    contact_id: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    # The contacts as answered: channels with `has_secret`, never the secret itself.
    await audit.record(
        conn, actor=user.name, action=action, target=f"contact:{contact_id}",
        before=before, after=after,
    )  # fmt: skip


async def _link_audit(
    conn: Conn, user: User, action: str, resident_id: int, contact_id: int
) -> None:
    await audit.record(
        conn, actor=user.name, action=action, target=f"resident:{resident_id}",
        before=None, after={"contact_id": contact_id},
    )  # fmt: skip
