"""Defence in depth: every stored SOS and fall is linked to an alert.

Alarm receiving centres check that every signal received was handled. Here: every
`sos` and `fall` event telemetry stored must have raised an alert (its event id is a
decision key in `alert_events`), unless it needs none: a fall the wearer cancelled raises
nothing by itself. A stored alarm without one means something upstream lost it (a bug, a
record set aside, a rules worker that never saw it). Each check looks at the alarms
received between `lookback` and `grace` ago (`grace`: the alert normally comes within
milliseconds, but a busy rules worker may be seconds behind telemetry), raises what is
missing at once, through the same idempotent store as the rules, and says so loudly.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter

from alerts.rules.alarms import raised_by
from alerts.rules.base import Decision
from alerts.rules_worker import log_change
from alerts.store import apply_decisions, unalerted_alarms
from devices.events import event_from_json

__all__ = ["RECONCILED", "reconcile"]

log = logging.getLogger(__name__)

RECONCILED = Counter(
    "carewatch_reconciled_alarms",
    "stored sos/fall events found without an alert and raised by the reconciliation",
    ["kind"],
)


async def reconcile(
    conn: asyncpg.Connection,
    *,
    now: datetime,
    grace: timedelta = timedelta(seconds=60),
    lookback: timedelta = timedelta(hours=24),
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Raise the alerts missing for alarms received in [now - lookback, now - grace);
    returns the alert changes made (none, normally)."""
    bodies = await unalerted_alarms(conn, since=now - lookback, until=now - grace, limit=limit)
    decisions: list[Decision] = []
    for body in bodies:
        event = event_from_json(body)
        decision = raised_by(event)
        if decision is None:
            continue
        RECONCILED.labels(event.kind).inc()
        log.critical(
            "alarm stored without an alert: raising it now",
            extra={"event_id": event.event_id, "device_id": event.device_id, "kind": event.kind},
        )
        decisions.append(decision)
    changes = await apply_decisions(conn, decisions)
    for change in changes:
        log_change(change)
    return changes
