"""Work orders: dispatching someone to a resident about an alert, and following it through
(`POST /api/v1/alerts/{id}/dispatch`, `/api/v1/work-orders/...`).

Each step goes through alerts/work_orders.py (the alert's history, so carewatch.alerts.v1
and the live stream show it) with the user as the one who recorded it, and writes an audit
row with the order before and after, in the same transaction. An order lies in its alert's
area: outside the user's area it is 403, an unknown id 404; a step out of order is 409.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from alerts import store, views, work_orders
from api import audit
from api.console_models import (
    AcceptBody,
    DispatchBody,
    FollowUpBody,
    ReportBody,
    WorkOrderPage,
)
from api.cursors import decode_cursor, encode_cursor
from api.deps import Conn, CurrentUser, forbid_outside
from api.models import Error, OrderStatus, WorkOrderOut
from api.routes import API_PREFIX
from api.users import User

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (401, 403, 404, 409, 422)
}
router = APIRouter(prefix=API_PREFIX, tags=["work orders"], responses=_ERRORS)

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post(
    "/alerts/{alert_id}/dispatch",
    response_model=WorkOrderOut,
    status_code=201,
    summary="send someone to the resident (派单)",
)
async def dispatch(conn: Conn, user: CurrentUser, alert_id: Id, body: DispatchBody) -> Any:
    async with conn.transaction():
        await _lock_alert(conn, user, alert_id, f"alert {alert_id}")
        order = await work_orders.dispatch(
            conn, alert_id, by=user.name, assignee=body.assignee, phone=body.phone,
            due_in=timedelta(minutes=body.due_min), note=body.note,
        )  # fmt: skip
        await _audit(conn, user, "dispatch", None, order)
    return order


@router.post(
    "/work-orders/{order_id}/accept", response_model=WorkOrderOut, summary="taken on (接单)"
)
async def accept(
    conn: Conn, user: CurrentUser, order_id: Id, body: AcceptBody | None = None
) -> Any:
    note = body.note if body is not None else None
    return await _step(
        conn, user, order_id, "accept",
        lambda: work_orders.accept(conn, order_id, by=user.name, note=note),
    )  # fmt: skip


@router.post(
    "/work-orders/{order_id}/report",
    response_model=WorkOrderOut,
    summary="what the visit found (回单)",
)
async def report(conn: Conn, user: CurrentUser, order_id: Id, body: ReportBody) -> Any:
    return await _step(
        conn, user, order_id, "report",
        lambda: work_orders.report(
            conn, order_id, by=user.name, outcome=body.outcome, note=body.note
        ),
    )  # fmt: skip


@router.post(
    "/work-orders/{order_id}/follow-up",
    response_model=WorkOrderOut,
    summary="the call back after the visit (回访)",
)
async def follow_up(conn: Conn, user: CurrentUser, order_id: Id, body: FollowUpBody) -> Any:
    return await _step(
        conn, user, order_id, "follow_up",
        lambda: work_orders.follow_up(conn, order_id, by=user.name, note=body.note),
    )  # fmt: skip


@router.get("/work-orders", response_model=WorkOrderPage, summary="the work orders in your area")
async def list_orders(
    conn: Conn,
    user: CurrentUser,
    status: OrderStatus | None = None,
    overdue: Annotated[bool | None, Query(description="true: only overdue; false: none")] = None,
    order: Literal["newest", "due"] = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    list_name = f"work_orders:{order}"
    after = decode_cursor(cursor, list_name, work_orders.ORDERS[order][1]) if cursor else None
    items, last = await work_orders.search_orders(
        conn, scope=user.area, status=status, overdue=overdue, order=order, after=after,
        limit=limit,
    )  # fmt: skip
    return {"items": items, "next": encode_cursor(list_name, last) if last else None}


Step = Callable[[], Awaitable[dict[str, Any]]]


async def _step(conn: Conn, user: User, order_id: int, action: str, step: Step) -> Any:
    """One step of an order, audited with the order before and after, in one transaction."""
    async with conn.transaction():
        alert_id = await work_orders.alert_of(conn, order_id)
        await _lock_alert(conn, user, alert_id, f"work order {order_id}")
        before = await work_orders.get_order(conn, order_id)
        after = await step()
        await _audit(conn, user, action, before, after)
    return after


async def _lock_alert(conn: Conn, user: User, alert_id: int, what: str) -> None:
    # Locked first: the area checked is the one the change applies to.
    await store.lock_alert(conn, alert_id)
    forbid_outside(user, await views.area_of(conn, alert_id), what)


async def _audit(
    conn: Conn, user: User, action: str, before: dict[str, Any] | None, after: dict[str, Any]
) -> None:
    await audit.record(
        conn, actor=user.name, action=f"work_order.{action}",
        target=f"work_order:{after['order_id']}", before=before, after=after,
    )  # fmt: skip
