"""`/api/v1/audit`: the audit trail, newest first, for supervisors and admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from api import audit
from api.cursors import decode_cursor, encode_cursor
from api.deps import Conn, Supervisor
from api.models import AuditPage, Error
from api.routes import API_PREFIX

__all__ = ["router"]

router = APIRouter(
    prefix=API_PREFIX,
    tags=["audit"],
    responses={code: {"model": Error} for code in (401, 403, 422)},
)


@router.get("/audit", response_model=AuditPage, summary="who changed what, newest first")
async def list_audit(
    conn: Conn,
    _user: Supervisor,
    actor: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    since: Annotated[datetime | None, Query(description="at or after (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    if actor is not None and "\x00" in actor:
        raise HTTPException(422, "actor: control characters are not allowed")
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since: give the time zone too (e.g. 2026-01-02T03:04:05Z)")
    (before_id,) = decode_cursor(cursor, "audit", (int,)) if cursor else (None,)
    rows = await audit.list_audit(
        conn, actor=actor, since=since, before_id=before_id, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next": encode_cursor("audit", [rows[-1]["audit_id"]]) if more else None}
