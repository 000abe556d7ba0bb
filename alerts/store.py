"""Alerts in PostgreSQL: rule decisions and operator actions applied, and read back.

Lifecycle: open -> acknowledged -> resolved, or open -> resolved; an acknowledgement
that times out unresolved re-opens the alert (the notifier's `reopen`). A resolved alert is
final: a later alarm of the same subject and kind opens a new alert.

Subject: one unresolved alert per subject and kind. For the alarms (`PER_RESIDENT`) the
subject is the device's resident, so an SOS from a pendant and one from a watch of the same
person are one alert; for every other kind, and for devices without a resident, it is the
device, because those conditions clear per device.

Besides the status, an operator can assign an unresolved alert to a user, put it on hold
until a time, and attach notes and the calls made about it (`alert_notes`,
`alert_calls`); none of these changes the status, and each is a change in the history too.

Every change writes its `alert_history` row in the same transaction as the change. That
table is also the outbox of carewatch.alerts.v1 (alerts/outbox.py), so a change is
published if and only if it was committed, whatever crashes in between.

Idempotency: `alert_events` has one row per (decision key, alert kind), for raises and
resolutions alike. A key seen before (a Kafka redelivery, a device resending the same
message, a timer firing twice) changes nothing, so counts stay true and a replay after a
crash neither raises nor resolves anything twice. A resolution that found nothing to
resolve is remembered too (without an alert), so its replay cannot close a newer alert.
Keys are claimed (inserted) before anything is applied, so two transactions deciding the
same key at once (the alarm lane and the rules worker) apply it once: the second waits for
the first and then finds the key taken.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from alerts.errors import AlertNotFound, AlertStateError
from alerts.rules import Decision, RaiseAlert, ResolveAlert

__all__ = [
    "ALERT_COLUMNS",
    "CALL_OUTCOMES",
    "LIFECYCLE_COLUMNS",
    "PER_RESIDENT",
    "RESOLUTION_CODES",
    "RULES_ACTOR",
    "acknowledge",
    "add_call",
    "add_note",
    "alerts_of_device",
    "alerts_of_resident",
    "apply_decisions",
    "assign",
    "count_alerts",
    "get_alert",
    "hold",
    "list_alerts",
    "lock_alert",
    "record_change",
    "reopen",
    "resolve",
    "sos_opened_at",
    "unalerted_alarms",
]

# What `alerts list` shows (its JSON lines are documented; keep them stable).
ALERT_COLUMNS = (
    "alert_id, kind, device_id, severity, status, count, first_ts, last_ts, "
    "opened_at, updated_at, lat, lon, summary, resident_id"
)
LIFECYCLE_COLUMNS = (
    "acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution, resolution_code, "
    "assigned_to, held_until, hold_reason"
)
_FULL = f"{ALERT_COLUMNS}, {LIFECYCLE_COLUMNS}"

# The actor of automatic changes in the history.
RULES_ACTOR = "rules"

# Why an operator resolved an alert (docs/api.md explains each; migration 0009 checks them).
RESOLUTION_CODES = (
    "false_alarm",
    "assisted_at_home",
    "ambulance",
    "police",
    "no_answer_visited",
    "device_fault",
    "test",
    "other",
)
# What came of a call-back.
CALL_OUTCOMES = ("answered", "no_answer", "busy", "wrong_number", "voicemail")

# Kinds with one alert per person rather than per device.
PER_RESIDENT = frozenset({"sos", "fall"})

_RESIDENT = "SELECT resident_id FROM devices WHERE device_id = $1"

# Claims every key of a batch at once, in a fixed order: a key another transaction is
# applying (the alarm lane and the rules worker decide the same alarm raises) makes this one
# wait for it and then skip the key; the fixed order keeps two claimers from deadlocking.
_CLAIM = """
INSERT INTO alert_events (event_id, kind, ts)
SELECT key, kind, ts FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS d(key, kind, ts)
ORDER BY key, kind
ON CONFLICT DO NOTHING
RETURNING event_id, kind
"""

_UPSERT = f"""
INSERT INTO alerts AS a (kind, device_id, severity, first_ts, last_ts, lat, lon, summary,
                         resident_id, subject)
VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)
ON CONFLICT (subject, kind) WHERE status <> 'resolved' DO UPDATE SET
    count = a.count + 1,
    -- a repeat may escalate (vitals: warning band, then critical), never de-escalate
    severity = CASE WHEN 'critical' IN (a.severity, EXCLUDED.severity) THEN 'critical'
                    WHEN 'warning' IN (a.severity, EXCLUDED.severity) THEN 'warning'
                    ELSE 'info' END,
    summary = CASE WHEN EXCLUDED.severity <> a.severity AND EXCLUDED.severity = 'critical'
                   THEN EXCLUDED.summary ELSE a.summary END,
    first_ts = least(a.first_ts, EXCLUDED.first_ts),
    last_ts = greatest(a.last_ts, EXCLUDED.last_ts),
    -- the newest known position wins; an event without one keeps the old one
    lat = CASE WHEN EXCLUDED.lat IS NOT NULL AND EXCLUDED.last_ts >= a.last_ts
               THEN EXCLUDED.lat ELSE coalesce(a.lat, EXCLUDED.lat) END,
    lon = CASE WHEN EXCLUDED.lon IS NOT NULL AND EXCLUDED.last_ts >= a.last_ts
               THEN EXCLUDED.lon ELSE coalesce(a.lon, EXCLUDED.lon) END,
    updated_at = now()
RETURNING {_FULL}, (xmax = 0) AS inserted
"""

# The partial unique index allows one unresolved alert per (subject, kind): at most one row.
_AUTO_RESOLVE = f"""
UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = '{RULES_ACTOR}',
    resolution = $3, updated_at = now()
WHERE subject = $1 AND kind = $2 AND status <> 'resolved'
RETURNING {_FULL}
"""

_LINK = "UPDATE alert_events SET alert_id = $3 WHERE event_id = $1 AND kind = $2"

_HISTORY = """
INSERT INTO alert_history (alert_id, change, actor, note, status, count)
VALUES ($1, $2, $3, $4, $5, $6)
"""

_LOCK = f"SELECT {_FULL} FROM alerts WHERE alert_id = $1 FOR UPDATE"

_REOPEN = f"""
UPDATE alerts SET status = 'open', acknowledged_at = NULL, acknowledged_by = NULL,
    updated_at = now()
WHERE alert_id = $1
RETURNING {_FULL}
"""

_ACKNOWLEDGE = f"""
UPDATE alerts SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = $2,
    updated_at = now()
WHERE alert_id = $1
RETURNING {_FULL}
"""

_RESOLVE = f"""
UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = $2, resolution = $3,
    resolution_code = $4, updated_at = now()
WHERE alert_id = $1
RETURNING {_FULL}
"""

_ASSIGN = f"""
UPDATE alerts SET assigned_to = $2, updated_at = now() WHERE alert_id = $1 RETURNING {_FULL}
"""

_HOLD = f"""
UPDATE alerts SET held_until = $2, hold_reason = $3, updated_at = now() WHERE alert_id = $1
RETURNING {_FULL}
"""

_NOTE = """
INSERT INTO alert_notes (alert_id, author, text) VALUES ($1, $2, $3)
RETURNING note_id, alert_id, at, author, text
"""

_CALL = """
INSERT INTO alert_calls (alert_id, caller, callee, number, outcome) VALUES ($1, $2, $3, $4, $5)
RETURNING call_id, alert_id, at, caller, callee, number, outcome
"""


async def apply_decisions(
    conn: asyncpg.Connection, decisions: list[Decision]
) -> list[dict[str, Any]]:
    """Apply in one transaction, in order; returns the alerts that changed, each with its
    `change` ('opened', 'repeated', 'resolved') and the decision's key as `event_id`."""
    if not decisions:
        return []
    changes = []
    async with conn.transaction():
        claimed = await conn.fetch(
            _CLAIM,
            [d.key for d in decisions], [d.kind for d in decisions], [d.ts for d in decisions],
        )  # fmt: skip
        new = {(r["event_id"], r["kind"]) for r in claimed}
        for decision in decisions:
            if (decision.key, decision.kind) not in new:
                continue  # seen before
            new.discard((decision.key, decision.kind))  # the same key twice in one batch
            if isinstance(decision, ResolveAlert):
                change = await _auto_resolve(conn, decision)
            else:
                change = await _raise(conn, decision)
            if change is not None:
                changes.append(change)
    return changes


async def _raise(conn: asyncpg.Connection, d: RaiseAlert) -> dict[str, Any]:
    resident, subject = await _subject(conn, d.kind, d.device_id)
    row = await conn.fetchrow(
        _UPSERT, d.kind, d.device_id, d.severity, d.ts, d.lat, d.lon, d.summary, resident,
        subject,
    )  # fmt: skip
    await conn.execute(_LINK, d.key, d.kind, row["alert_id"])
    alert = dict(row)
    alert["change"] = "opened" if alert.pop("inserted") else "repeated"
    await record_change(conn, alert, alert["change"], RULES_ACTOR, d.summary)
    alert["event_id"] = d.key
    return alert


async def _auto_resolve(conn: asyncpg.Connection, d: ResolveAlert) -> dict[str, Any] | None:
    _, subject = await _subject(conn, d.kind, d.device_id)
    row = await conn.fetchrow(_AUTO_RESOLVE, subject, d.kind, d.reason)
    if row is None:
        return None  # nothing open: the key is remembered (claimed), nothing else happens
    await conn.execute(_LINK, d.key, d.kind, row["alert_id"])
    alert = dict(row)
    await record_change(conn, alert, "resolved", RULES_ACTOR, d.reason)
    alert["change"] = "resolved"
    alert["event_id"] = d.key
    return alert


async def _subject(conn: asyncpg.Connection, kind: str, device_id: str) -> tuple[int | None, str]:
    """The device's resident (None if it has none) and whom the alert is about."""
    resident = await conn.fetchval(_RESIDENT, device_id)
    if kind in PER_RESIDENT and resident is not None:
        return resident, f"resident:{resident}"
    return resident, f"device:{device_id}"


async def record_change(
    conn: asyncpg.Connection, alert: dict[str, Any], change: str, actor: str, note: str | None
) -> None:
    """The history row of a change (and so its message on carewatch.alerts.v1); call it in
    the transaction that made the change, with the alert as the change left it."""
    await conn.execute(
        _HISTORY, alert["alert_id"], change, actor, note, alert["status"], alert["count"]
    )


async def acknowledge(
    conn: asyncpg.Connection, alert_id: int, *, by: str, note: str | None = None
) -> dict[str, Any]:
    """An operator takes an open alert on. Acknowledging an acknowledged alert changes
    nothing and returns it as it is; a resolved one raises `AlertStateError`."""
    by = _required(by, "who acknowledges it (by)")
    async with conn.transaction():
        alert = await lock_alert(conn, alert_id)
        if alert["status"] == "acknowledged":
            return alert
        if alert["status"] == "resolved":
            raise AlertStateError(f"alert {alert_id} cannot be acknowledged: {_resolved(alert)}")
        row = dict(await conn.fetchrow(_ACKNOWLEDGE, alert_id, by))
        await record_change(conn, row, "acknowledged", by, note)
    return row


async def resolve(
    conn: asyncpg.Connection, alert_id: int, *, by: str, note: str, code: str | None = None
) -> dict[str, Any]:
    """An operator closes an open or acknowledged alert, saying why (`note`, and one of
    `RESOLUTION_CODES` as `code`). A resolved alert raises `AlertStateError`: it stays as
    it was closed."""
    by = _required(by, "who resolves it (by)")
    note = _required(note, "a resolution note")
    if code is not None and code not in RESOLUTION_CODES:
        raise AlertStateError(f"unknown resolution {code!r}: one of {', '.join(RESOLUTION_CODES)}")
    async with conn.transaction():
        alert = await lock_alert(conn, alert_id)
        if alert["status"] == "resolved":
            raise AlertStateError(f"alert {alert_id} is already resolved: {_resolved(alert)}")
        row = dict(await conn.fetchrow(_RESOLVE, alert_id, by, note, code))
        await record_change(conn, row, "resolved", by, note)
    return row


async def reopen(
    conn: asyncpg.Connection, alert_id: int, *, by: str, note: str
) -> dict[str, Any] | None:
    """An acknowledged alert is open again (its acknowledgement timed out without a
    resolution: the notifier escalates it anew). Any other status: nothing changes and
    None is returned."""
    async with conn.transaction():
        alert = await lock_alert(conn, alert_id)
        if alert["status"] != "acknowledged":
            return None
        row = dict(await conn.fetchrow(_REOPEN, alert_id))
        await record_change(conn, row, "reopened", by, note)
    return row


async def assign(conn: asyncpg.Connection, alert_id: int, *, by: str, user: str) -> dict[str, Any]:
    """Give an unresolved alert to `user` (a user's name); assigning it to whom it is
    assigned already changes nothing. A resolved alert raises `AlertStateError`."""
    by = _required(by, "who assigns it (by)")
    user = _required(user, "whom it is assigned to")
    async with conn.transaction():
        alert = await lock_alert(conn, alert_id)
        _unresolved(alert, "assigned")
        if alert["assigned_to"] == user:
            return alert
        row = dict(await conn.fetchrow(_ASSIGN, alert_id, user))
        await record_change(conn, row, "assigned", by, f"assigned to {user}")
    return row


async def hold(
    conn: asyncpg.Connection, alert_id: int, *, by: str, reason: str, until: datetime
) -> dict[str, Any]:
    """Put an unresolved alert on hold until `until` (waiting for a call back, a visit):
    it stays open or acknowledged. A resolved alert raises `AlertStateError`."""
    by = _required(by, "who holds it (by)")
    reason = _required(reason, "a reason for the hold")
    async with conn.transaction():
        alert = await lock_alert(conn, alert_id)
        _unresolved(alert, "put on hold")
        row = dict(await conn.fetchrow(_HOLD, alert_id, until, reason))
        note = f"on hold until {until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC: {reason}"
        await record_change(conn, row, "held", by, note)
    return row


async def add_note(
    conn: asyncpg.Connection, alert_id: int, *, by: str, text: str
) -> dict[str, Any]:
    """Attach an operator's note to an alert (of any status: follow-ups come after it is
    resolved too); returns the note."""
    by = _required(by, "who writes it (by)")
    text = _required(text, "the note's text")
    async with conn.transaction():
        alert = await lock_alert(conn, alert_id)
        note = dict(await conn.fetchrow(_NOTE, alert_id, by, text))
        await record_change(conn, alert, "noted", by, text)
    return note


async def add_call(
    conn: asyncpg.Connection,
    alert_id: int,
    *,
    by: str,
    callee: str,
    number: str,
    outcome: str,
) -> dict[str, Any]:
    """Record a call made about an alert (whom, which number, `CALL_OUTCOMES`); returns it."""
    by = _required(by, "who called (by)")
    callee = _required(callee, "whom was called")
    number = _required(number, "the number called")
    if outcome not in CALL_OUTCOMES:
        raise AlertStateError(f"unknown outcome {outcome!r}: one of {', '.join(CALL_OUTCOMES)}")
    async with conn.transaction():
        alert = await lock_alert(conn, alert_id)
        call = dict(await conn.fetchrow(_CALL, alert_id, by, callee, number, outcome))
        await record_change(conn, alert, "called", by, f"called {callee} ({number}): {outcome}")
    return call


async def get_alert(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any]:
    """One alert with its lifecycle columns, `events` (how many events and timer keys are
    linked to it) and `history` (its changes, oldest first). Raises `AlertNotFound`."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            f"SELECT {_FULL}, (SELECT count(*) FROM alert_events e"
            " WHERE e.alert_id = a.alert_id) AS events FROM alerts a WHERE alert_id = $1",
            alert_id,
        )
        if row is None:
            raise AlertNotFound(alert_id)
        history = await conn.fetch(
            "SELECT history_id, at, change, actor, note, status, count, published_at"
            " FROM alert_history WHERE alert_id = $1 ORDER BY history_id",
            alert_id,
        )
    return {**dict(row), "history": [dict(h) for h in history]}


async def list_alerts(
    conn: asyncpg.Connection, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first; `status` filters (open / acknowledged / resolved)."""
    rows = await conn.fetch(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE ($1::text IS NULL OR status = $1) "
        "ORDER BY opened_at DESC, alert_id DESC LIMIT $2",
        status,
        limit,
    )
    return [dict(r) for r in rows]


async def lock_alert(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any]:
    """The alert with its lifecycle columns, locked until the transaction ends (changes to
    one alert queue up, so its history is in the order they happened). AlertNotFound."""
    row = await conn.fetchrow(_LOCK, alert_id)
    if row is None:
        raise AlertNotFound(alert_id)
    return dict(row)


def _required(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise AlertStateError(f"{what} must not be empty")
    return value.strip()


def _unresolved(alert: dict[str, Any], change: str) -> None:
    if alert["status"] == "resolved":
        raise AlertStateError(f"alert {alert['alert_id']} cannot be {change}: {_resolved(alert)}")


def _resolved(alert: dict[str, Any]) -> str:
    at = alert["resolved_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"resolved by {alert['resolved_by']} at {at} ({alert['resolution']})"


# Stored alarms that no decision key links to an alert; a cancel (a `fall` with
# `cancelled`) raises nothing by itself. Uses the partial index events_alarms_received.
_UNALERTED = """
SELECT e.body::text AS body FROM events e
WHERE e.kind IN ('sos', 'fall') AND e.received_at >= $1 AND e.received_at < $2
  AND NOT coalesce((e.body ->> 'cancelled')::boolean, false)
  AND NOT EXISTS (SELECT 1 FROM alert_events a WHERE a.event_id = e.event_id AND a.kind = e.kind)
ORDER BY e.received_at
LIMIT $3
"""


async def unalerted_alarms(
    conn: asyncpg.Connection, *, since: datetime, until: datetime, limit: int
) -> list[str]:
    """The canonical JSON of stored sos/fall events received in [since, until) that raised
    no alert (alerts/reconcile.py), oldest first."""
    return [r["body"] for r in await conn.fetch(_UNALERTED, since, until, limit)]


async def alerts_of_device(conn: asyncpg.Connection, device_id: str) -> list[dict[str, Any]]:
    """Every alert raised for a device, oldest first, with its lifecycle columns."""
    rows = await conn.fetch(
        f"SELECT {_FULL} FROM alerts WHERE device_id = $1 ORDER BY alert_id", device_id
    )
    return [dict(r) for r in rows]


async def alerts_of_resident(conn: asyncpg.Connection, resident_id: int) -> list[dict[str, Any]]:
    """Every alert raised for a resident's devices, oldest first, with its lifecycle columns."""
    rows = await conn.fetch(
        f"SELECT {_FULL} FROM alerts WHERE resident_id = $1 ORDER BY alert_id", resident_id
    )
    return [dict(r) for r in rows]


async def count_alerts(conn: asyncpg.Connection, status: str) -> int:
    """How many alerts have this status (open / acknowledged / resolved)."""
    count: int = await conn.fetchval("SELECT count(*) FROM alerts WHERE status = $1", status)
    return count


async def sos_alert_counts(
    conn: asyncpg.Connection, device_ids: list[str]
) -> dict[str, tuple[int, datetime]]:
    """Per device with any: how many SOS alerts it raised, and when the first opened."""
    rows = await conn.fetch(
        "SELECT device_id, count(*) AS n, min(opened_at) AS opened_at FROM alerts"
        " WHERE kind = 'sos' AND device_id = ANY($1) GROUP BY device_id",
        device_ids,
    )
    return {r["device_id"]: (r["n"], r["opened_at"]) for r in rows}


async def sos_opened_at(conn: asyncpg.Connection, device_ids: list[str]) -> dict[str, Any]:
    """When each device's (first) SOS alert was opened: {device_id: opened_at}."""
    rows = await conn.fetch(
        "SELECT device_id, min(opened_at) AS opened_at FROM alerts"
        " WHERE kind = 'sos' AND device_id = ANY($1) GROUP BY device_id",
        device_ids,
    )
    return {r["device_id"]: r["opened_at"] for r in rows}
