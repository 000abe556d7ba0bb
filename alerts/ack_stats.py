"""How fast alerts are taken on: time-to-acknowledge statistics for supervisors.

An alert's time to acknowledge is its first 'acknowledged' history row's time minus its
`opened_at`. The alerts counted are those opened in a window (in an area, of a kind). For
each target (`TARGETS_S`), the share acknowledged within it is taken over the alerts whose
answer is known: those acknowledged, and those not (yet) acknowledged that are older than
the target already, which count against it; an unacknowledged alert still younger than the
target counts in `alerts` only. p50 and p95 are over the acknowledged ones.

The same figures come overall, per operator (who acknowledged; unacknowledged alerts have
nobody) and per shift of the monitoring centre (by when the alert opened). Shifts start at
local times of the centre's time zone, so they follow its clock through daylight saving.
Everything is computed in one statement, so the three views agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

__all__ = ["TARGETS_S", "Shift", "acknowledgement", "parse_shift_starts", "shifts_between"]

# The centre's targets: acknowledged within a minute, and within three.
TARGETS_S = (60, 180)


@dataclass(frozen=True)
class Shift:
    """One shift, [start, end), in the centre's time zone."""

    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M}"


def parse_shift_starts(text: str) -> tuple[time, ...]:
    """'08:00,16:00,00:00' as the local times shifts start at, in order; ValueError."""
    try:
        starts = {time.fromisoformat(part.strip()) for part in text.split(",")}
    except ValueError:
        raise ValueError(f"shift starts {text!r}: local times HH:MM, comma-separated") from None
    if any(t.tzinfo is not None for t in starts):
        raise ValueError(f"shift starts {text!r}: local times, without a zone")
    return tuple(sorted(starts))


def shifts_between(
    since: datetime, until: datetime, zone: ZoneInfo, starts: Sequence[time]
) -> list[Shift]:
    """The shifts that overlap [since, until), in order; each lasts until the next one
    starts. OverflowError for times at the ends of the calendar."""
    first = since.astimezone(zone).date() - timedelta(days=1)
    days = (until.astimezone(zone).date() - first).days + 2
    # Compared as instants: aware datetimes of one zone compare by their wall time.
    instants = sorted(
        {
            datetime.combine(first + timedelta(days=d), t, tzinfo=zone).astimezone(UTC)
            for d in range(days)
            for t in starts
        }
    )
    return [
        Shift(a.astimezone(zone), b.astimezone(zone))
        for a, b in pairwise(instants)
        if a < until and b > since
    ]


def _in_area(mark: str) -> str:
    # alerts/views.py's rule: an alert lies in its resident's area ('' without one).
    area = "coalesce(r.area, '')"
    return f"({mark} = '' OR {area} = {mark} OR starts_with({area}, {mark} || '/'))"


def _summary() -> str:
    parts = ["count(c.alert_id) AS alerts", "count(c.ack_s) AS acknowledged"]
    for t in TARGETS_S:
        parts.append(f"count(*) FILTER (WHERE c.ack_s <= {t}) AS within_{t}")
        parts.append(f"count(*) FILTER (WHERE c.ack_s IS NOT NULL OR c.age_s > {t}) AS known_{t}")
    parts.append("percentile_cont(0.5) WITHIN GROUP (ORDER BY c.ack_s) AS p50_s")
    parts.append("percentile_cont(0.95) WITHIN GROUP (ORDER BY c.ack_s) AS p95_s")
    return ", ".join(parts)


_STATS = f"""
WITH counted AS (
    SELECT a.alert_id, a.opened_at, f.actor AS operator,
           extract(epoch FROM f.at - a.opened_at)::float8 AS ack_s,
           extract(epoch FROM now() - a.opened_at)::float8 AS age_s
    FROM alerts a
    LEFT JOIN residents r ON r.resident_id = a.resident_id
    LEFT JOIN LATERAL (
        SELECT h.at, h.actor FROM alert_history h
        WHERE h.alert_id = a.alert_id AND h.change = 'acknowledged'
        ORDER BY h.history_id LIMIT 1
    ) f ON true
    WHERE a.opened_at >= $1 AND a.opened_at < $2 AND {_in_area("$3")}
      AND ($4::text IS NULL OR {_in_area("$4")}) AND ($5::text IS NULL OR a.kind = $5)
), shifts AS (
    SELECT * FROM unnest($6::timestamptz[], $7::timestamptz[]) WITH ORDINALITY
        AS s(start, stop, i)
)
SELECT 'overall' AS grp, NULL::text AS operator, NULL::bigint AS shift, {_summary()}
FROM counted c
UNION ALL
SELECT 'operator', c.operator, NULL, {_summary()}
FROM counted c WHERE c.operator IS NOT NULL GROUP BY c.operator
UNION ALL
SELECT 'shift', NULL, s.i, {_summary()}
FROM shifts s LEFT JOIN counted c ON c.opened_at >= s.start AND c.opened_at < s.stop
GROUP BY s.i
"""


async def acknowledgement(
    conn: asyncpg.Connection,
    *,
    scope: str,
    since: datetime,
    until: datetime,
    shifts: Sequence[Shift],
    area: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """The statistics of the alerts opened in [since, until) in `scope` (a user's area),
    and in `area` and of `kind` when given: {"overall", "by_operator", "by_shift"}."""
    rows = await conn.fetch(
        _STATS, since, until, scope, area, kind,
        [s.start for s in shifts], [s.end for s in shifts],
    )  # fmt: skip
    by_operator = sorted(
        ({"operator": r["operator"], **_figures(r)} for r in rows if r["grp"] == "operator"),
        key=lambda s: str(s["operator"]),
    )
    by_shift = {r["shift"]: _figures(r) for r in rows if r["grp"] == "shift"}
    return {
        "overall": next(_figures(r) for r in rows if r["grp"] == "overall"),
        "by_operator": by_operator,
        "by_shift": [
            {"shift_start": s.start, "shift_end": s.end, "label": s.label, **by_shift[i]}
            for i, s in enumerate(shifts, start=1)
        ],
    }


def _figures(row: asyncpg.Record) -> dict[str, Any]:
    figures: dict[str, Any] = {"alerts": row["alerts"], "acknowledged": row["acknowledged"]}
    for t in TARGETS_S:
        known = row[f"known_{t}"]
        figures[f"within_{t}s_pct"] = round(100 * row[f"within_{t}"] / known, 1) if known else None
    for p in ("p50_s", "p95_s"):
        figures[p] = None if row[p] is None else round(row[p], 1)
    return figures
