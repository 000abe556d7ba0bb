"""The notifier's tables: `notification_chains` (where each alert's escalation stands) and
`notifications` (the outbox of deliveries and the log people read). Migration 0015.

A notification's id is made from what it is for (alert, cycle, round, step, contact,
channel), so deciding the same thing twice (a replayed alerts.v1 record, two notifiers on
one alert) inserts it once. Delivery claims due rows by pushing their `due_at` a lease
ahead: a notifier that dies mid-send leaves them to be sent again when the lease runs out
(at least once; receivers deduplicate on the id).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

__all__ = [
    "ANSWERED",
    "LIVE",
    "add_notifications",
    "alert_for_notice",
    "by_reply",
    "cancel_pending",
    "claim_due",
    "due_chains",
    "due_supervisors",
    "get_notification",
    "lock_chain",
    "log_of",
    "mark",
    "move_on",
    "notification_id",
    "notified",
    "out_of_step",
    "put_chain",
    "retry_later",
    "step_open",
    "supersede",
    "unanswered_calls",
    "update_chain",
]

# A notification that may still reach someone who answers; and one a person has seen.
LIVE = ("pending", "delivered", "calling", "accepted")
ANSWERED = ("delivered", "calling", "accepted", "declined", "no_answer")

_CHAIN = "alert_id, policy, state, cycle, round, step, due_at, supervisor_at, updated_at"

_NOTICE = """
SELECT a.alert_id, a.kind, a.device_id, a.severity, a.status, a.count, a.summary,
       a.opened_at, a.lat, a.lon, a.resident_id, a.acknowledged_at, a.acknowledged_by,
       a.resolved_at, a.resolved_by, a.resolution, a.held_until,
       coalesce(r.area, '') AS area, r.name AS resident_name, r.address AS resident_address,
       r.phone AS resident_phone
FROM alerts a LEFT JOIN residents r ON r.resident_id = a.resident_id
WHERE a.alert_id = $1
"""

_INSERT = """
INSERT INTO notifications (notification_id, alert_id, purpose, cycle, round, step,
    contact_id, contact_name, channel, position, address, language, message, due_at,
    reply_code, created_at)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::smallint[], $5::smallint[],
    $6::smallint[], $7::bigint[], $8::text[], $9::text[], $10::smallint[], $11::text[],
    $12::text[], $13::jsonb[], $14::timestamptz[], $15::text[], $16::timestamptz[])
ON CONFLICT (notification_id) DO NOTHING
"""
_INSERT_FIELDS = (
    "notification_id", "alert_id", "purpose", "cycle", "round", "step", "contact_id",
    "contact_name", "channel", "position", "address", "language", "message", "due_at",
    "reply_code", "created_at",
)  # fmt: skip

# The channel's secret is read when sending, never copied into the outbox.
_CLAIM = """
WITH due AS (
    SELECT notification_id FROM notifications
    WHERE status = 'pending' AND due_at <= $1
    ORDER BY due_at LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE notifications n SET due_at = $2, attempts = n.attempts + 1
FROM due WHERE n.notification_id = due.notification_id
RETURNING n.notification_id, n.alert_id, n.cycle, n.round, n.step, n.channel, n.address,
    n.language, n.message, n.attempts, n.reply_code, n.contact_id,
    (SELECT c.secret FROM contact_channels c
     WHERE c.contact_id = n.contact_id AND c.position = n.position
       AND c.type = n.channel AND c.address = n.address) AS secret
"""


def notification_id(
    alert_id: int, cycle: int, purpose: str, round: int, step: int, contact_id: int, position: int
) -> str:
    """Stable and readable; only [a-z0-9-], so it is safe in URLs and SMS."""
    stage = {"alert": f"r{round}-s{step}", "resolved": "done", "supervisor": "sup"}[purpose]
    return f"a{alert_id}-c{cycle}-{stage}-k{contact_id}-p{position}"


# Alerts whose chain does not match their status: the alerts.v1 record that would have
# said so was lost (the embedded Kafka forgets on restart) or not read yet.
_OUT_OF_STEP = """
(SELECT a.alert_id FROM alerts a LEFT JOIN notification_chains c USING (alert_id)
 WHERE a.status IN ('open', 'acknowledged') AND (c.alert_id IS NULL
    OR (a.status = 'open') <> (c.state IN ('running', 'exhausted')))
 LIMIT $1)
UNION
(SELECT c.alert_id FROM notification_chains c JOIN alerts a USING (alert_id)
 WHERE c.state <> 'stopped' AND a.status = 'resolved'
 LIMIT $1)
"""


async def out_of_step(conn: asyncpg.Connection, limit: int) -> list[int]:
    return [r["alert_id"] for r in await conn.fetch(_OUT_OF_STEP, limit)]


async def alert_for_notice(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any] | None:
    """The alert with what a notification says about its resident (name, address, phone,
    area)."""
    row = await conn.fetchrow(_NOTICE, alert_id)
    return dict(row) if row else None


async def lock_chain(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_CHAIN} FROM notification_chains WHERE alert_id = $1 FOR UPDATE", alert_id
    )
    return _chain(row) if row else None


async def put_chain(conn: asyncpg.Connection, chain: dict[str, Any]) -> None:
    """Insert or replace an alert's chain (call with the chain locked, or new)."""
    await conn.execute(
        "INSERT INTO notification_chains (alert_id, policy, state, cycle, round, step, due_at,"
        " supervisor_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (alert_id) DO UPDATE SET policy = $2, state = $3, cycle = $4,"
        " round = $5, step = $6, due_at = $7, supervisor_at = $8, updated_at = now()",
        chain["alert_id"], orjson.dumps(chain["policy"]).decode(), chain["state"],
        chain["cycle"], chain["round"], chain["step"], chain["due_at"], chain["supervisor_at"],
    )  # fmt: skip


async def update_chain(conn: asyncpg.Connection, alert_id: int, **fields: Any) -> None:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(
        f"UPDATE notification_chains SET {sets}, updated_at = now() WHERE alert_id = $1",
        alert_id,
        *fields.values(),
    )


async def due_chains(conn: asyncpg.Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Chains whose next step (or acknowledgement timeout) is due, locked for this round;
    call inside a transaction."""
    rows = await conn.fetch(
        f"SELECT {_CHAIN} FROM notification_chains WHERE due_at <= $1"
        " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [_chain(r) for r in rows]


async def due_supervisors(
    conn: asyncpg.Connection, now: datetime, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_CHAIN} FROM notification_chains WHERE supervisor_at <= $1"
        " ORDER BY supervisor_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [_chain(r) for r in rows]


async def move_on(
    conn: asyncpg.Connection,
    alert_id: int,
    now: datetime,
    *,
    step: tuple[int, int, int] | None = None,
) -> bool:
    """Make a running chain's next step due now (someone declined, nobody can answer);
    with `step` (cycle, round, step), only while the chain is still there: a late answer
    to an earlier step must not cut the current step's wait short."""
    done = await conn.execute(
        "UPDATE notification_chains SET due_at = $2, updated_at = now()"
        " WHERE alert_id = $1 AND state = 'running' AND (due_at IS NULL OR due_at > $2)"
        " AND ($3::smallint IS NULL OR (cycle, round, step) = ($3, $4, $5))",
        alert_id, now, *(step or (None, None, None)),
    )  # fmt: skip
    return bool(done != "UPDATE 0")


async def add_notifications(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the decided notifications; those decided before are left as they are.
    Returns how many are new."""
    if not rows:
        return 0
    columns = [
        [orjson.dumps(r[f]).decode() if f == "message" else r[f] for r in rows]
        for f in _INSERT_FIELDS
    ]
    done = await conn.execute(_INSERT, *columns)
    return int(done.rsplit(" ", 1)[-1])


async def cancel_pending(
    conn: asyncpg.Connection, alert_id: int, *, keep: str | None = None
) -> int:
    """Every notification of the alert not yet sent is cancelled (except `keep`)."""
    done = await conn.execute(
        "UPDATE notifications SET status = 'cancelled'"
        " WHERE alert_id = $1 AND status = 'pending' AND purpose <> 'resolved'"
        " AND notification_id IS DISTINCT FROM $2",
        alert_id,
        keep,
    )
    return int(done.rsplit(" ", 1)[-1])


async def supersede(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Cancel what still waits (quiet hours) for the contact channels of these new
    notifications of an alert: the newer replaces it, so nobody gets two at dawn."""
    if rows:
        await conn.execute(
            "UPDATE notifications SET status = 'cancelled' WHERE alert_id = $1"
            " AND status = 'pending' AND purpose = 'alert' AND (contact_id, position) IN"
            " (SELECT * FROM unnest($2::bigint[], $3::smallint[]))"
            " AND NOT notification_id = ANY($4::text[])",
            rows[0]["alert_id"], [r["contact_id"] for r in rows], [r["position"] for r in rows],
            [r["notification_id"] for r in rows],
        )  # fmt: skip


async def notified(conn: asyncpg.Connection, alert_id: int) -> list[dict[str, Any]]:
    """Each contact channel that an alert's notification reached (for its resolution)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (contact_id, position) contact_id, position, cycle"
        " FROM notifications WHERE alert_id = $1 AND purpose <> 'resolved'"
        " AND status = ANY($2::text[]) AND contact_id IS NOT NULL"
        " ORDER BY contact_id, position, cycle DESC",
        alert_id,
        list(ANSWERED),
    )
    return [dict(r) for r in rows]


async def step_open(
    conn: asyncpg.Connection, alert_id: int, cycle: int, round: int, step: int
) -> bool:
    """Whether a notification of that step may still be answered (sent or on its way)."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM notifications WHERE alert_id = $1 AND cycle = $2"
        " AND round = $3 AND step = $4 AND purpose = 'alert' AND status = ANY($5::text[]))",
        alert_id, cycle, round, step, list(LIVE),
    )  # fmt: skip
    return bool(found)


async def claim_due(
    conn: asyncpg.Connection, now: datetime, lease_s: float, limit: int
) -> list[dict[str, Any]]:
    """Take up to `limit` due notifications to send (with their channel's secret)."""
    rows = await conn.fetch(_CLAIM, now, now + timedelta(seconds=lease_s), limit)
    return [{**dict(r), "message": orjson.loads(r["message"])} for r in rows]


async def mark(
    conn: asyncpg.Connection,
    notification_id: str,
    status: str,
    now: datetime,
    *,
    error: str | None = None,
    only_from: Sequence[str] = ("pending",),
) -> dict[str, Any] | None:
    """Set a notification's outcome if it is still in one of `only_from`; returns the row
    as changed, or None when it was not (cancelled meanwhile, answered already)."""
    stamp = "sent_at" if status in ("delivered", "calling", "failed") else "answered_at"
    row = await conn.fetchrow(
        f"UPDATE notifications SET status = $2, {stamp} = $3, last_error = coalesce($4,"
        " last_error) WHERE notification_id = $1 AND status = ANY($5::text[])"
        " RETURNING notification_id, alert_id, purpose, cycle, round, step, status, contact_id,"
        " contact_name, channel",
        notification_id, status, now, error, list(only_from),
    )  # fmt: skip
    return dict(row) if row else None


async def retry_later(
    conn: asyncpg.Connection, notification_id: str, due_at: datetime, error: str
) -> None:
    await conn.execute(
        "UPDATE notifications SET due_at = $2, last_error = $3"
        " WHERE notification_id = $1 AND status = 'pending'",
        notification_id,
        due_at,
        error,
    )


async def unanswered_calls(conn: asyncpg.Connection, before: datetime) -> list[str]:
    """Voice calls placed before `before` whose outcome the gateway never reported."""
    rows = await conn.fetch(
        "SELECT notification_id FROM notifications WHERE status = 'calling' AND sent_at < $1"
        " ORDER BY sent_at LIMIT 100",
        before,
    )
    return [r["notification_id"] for r in rows]


async def get_notification(
    conn: asyncpg.Connection, notification_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT n.*, c.relationship FROM notifications n"
        " LEFT JOIN contacts c USING (contact_id) WHERE notification_id = $1"
        + (" FOR UPDATE OF n" if lock else ""),
        notification_id,
    )
    if row is None:
        return None
    return {**dict(row), "message": orjson.loads(row["message"])}


async def by_reply(conn: asyncpg.Connection, sender: str, code: str) -> str | None:
    """The newest SMS notification with reply code `code` sent to the number `sender`.

    Numbers are compared by their last 8 digits: a contact's is kept as people write it
    ("+86 139 0000 0000"), the gateway was sent it without separators, and replies may
    come back in national form ("13900000000")."""
    digits = "".join(c for c in sender if c.isdigit())
    if len(digits) < 3:
        return None
    found: str | None = await conn.fetchval(
        "SELECT notification_id FROM notifications WHERE reply_code = $1 AND channel = 'sms'"
        " AND right(regexp_replace(address, '[^0-9]', '', 'g'), 8) = right($2, 8)"
        " ORDER BY created_at DESC LIMIT 1",
        code,
        digits,
    )
    return found


async def log_of(conn: asyncpg.Connection, alert_id: int) -> list[dict[str, Any]]:
    """An alert's notifications, oldest first: who, which channel, when, what came of it."""
    rows = await conn.fetch(
        "SELECT notification_id, purpose, cycle, round, step, contact_id, contact_name,"
        " channel, address, status, attempts, last_error, created_at, sent_at, answered_at"
        " FROM notifications WHERE alert_id = $1 ORDER BY created_at, notification_id",
        alert_id,
    )
    return [{**dict(r), "address": _shown(r["address"])} for r in rows]


def _shown(address: str) -> str:
    """An address as people may see it: a webhook's or bot's URL carries its token in the
    path or query (a WeCom key, a DingTalk access_token), so only its host is shown."""
    if "://" not in address:
        return address
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def _chain(row: asyncpg.Record) -> dict[str, Any]:
    return {**dict(row), "policy": orjson.loads(row["policy"])}
