"""What people answer: accepted (the ack link, an SMS reply with the code, 1 pressed in a
voice call), declined ("can't go"), or no answer (a call nobody picked up).

Delivered is not accepted: only these answers count. An acceptance acknowledges the alert
through the alert lifecycle (alerts/store.py) with the contact as the actor, and cancels
every notification of the alert not sent yet, on every channel, in the same transaction.
A decline moves the chain on at once (if it is still at the declined step: a late "no" to
an earlier step does not cut the current one's wait short); a call not answered moves it
on once nothing else of its step can still be answered. A supervisor's "no" moves nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg

from alerts import store as alerts
from notifier import store
from notifier.delivery import settle_step
from notifier.metrics import ANSWERS

__all__ = ["Answer", "UnknownNotification", "answer", "contact_actor"]

Answer = Literal["accepted", "declined", "no_answer"]


class UnknownNotification(LookupError):
    pass


def contact_actor(notification: dict[str, Any]) -> str:
    """How a contact appears in an alert's history."""
    return f"{notification['contact_name']} (contact {notification['contact_id']})"


async def answer(
    conn: asyncpg.Connection, notification_id: str, said: Answer, now: datetime, *, via: str
) -> dict[str, Any]:
    """Record a person's answer to a notification; returns the notification and its alert
    afterwards (`{"notification", "alert", "changed"}`). Raises `UnknownNotification`."""
    async with conn.transaction():
        found = await store.get_notification(conn, notification_id)
        if found is None:
            raise UnknownNotification(notification_id)
        # The alert first, as every change of an alert does (no lock-order deadlocks).
        alert = await alerts.lock_alert(conn, found["alert_id"])
        found = await store.get_notification(conn, notification_id, lock=True)
        assert found is not None  # notifications go only with their alert
        changed = False
        if alert["status"] != "resolved":
            changed = await _apply(conn, found, alert, said, now, via)
            alert = await alerts.lock_alert(conn, found["alert_id"])
        notification = await store.get_notification(conn, notification_id)
    if changed:
        ANSWERS.labels(said, via).inc()
    return {"notification": notification, "alert": alert, "changed": changed}


async def _apply(
    conn: asyncpg.Connection,
    found: dict[str, Any],
    alert: dict[str, Any],
    said: Answer,
    now: datetime,
    via: str,
) -> bool:
    if said == "accepted":
        done = await store.mark(
            conn, found["notification_id"], "accepted", now,
            only_from=("pending", "delivered", "calling", "declined", "no_answer", "cancelled"),
        )  # fmt: skip
        if alert["status"] == "open":
            await alerts.acknowledge(
                conn, alert["alert_id"], by=contact_actor(found),
                note=f"accepted by {found['contact_name']} via {via} ({found['channel']})",
            )  # fmt: skip
        await store.cancel_pending(conn, alert["alert_id"])
        return done is not None
    done = await store.mark(
        conn, found["notification_id"], said, now, only_from=("pending", "delivered", "calling")
    )
    if done is None:
        return False
    if said == "declined" and done["purpose"] == "alert":
        at = (done["cycle"], done["round"], done["step"])
        await store.move_on(conn, alert["alert_id"], now, step=at)
    elif said == "no_answer":
        await settle_step(conn, done, now)
    return True
