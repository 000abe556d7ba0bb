"""Deciding who is told, and when: one chain per alert, kept in step with the alert.

Every alerts.v1 record is a prompt to look at its alert again (`sync`), never a command:
what to do follows from the alert's status now and where its chain stands, so a record
replayed, duplicated (the same `history_id` again: the consumer delivers at least once)
or read out of order changes nothing twice; a batch's records of one alert prompt one look.

    alert open, no chain (or the chain ended by an acknowledgement)  start a cycle: step 0 now
    alert acknowledged, chain running                  stop: cancel what is unsent, wait for
                                                       the acknowledgement's timeout
    alert resolved, chain not stopped                  stop, and tell everyone who was told

`tick()` moves the clock-driven part: a step whose wait ran out (or that nobody can answer
any more) gives way to the next, round after round up to the policy's `repeat`; an
acknowledgement left unresolved for `ack_timeout_s` re-opens the alert; an alert no
operator took within `operator_target_s` goes to the supervisor on duty. A repeat of an
acknowledged alert notifies nobody (its status does not change); an occurrence after
resolution is a new alert with a chain of its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from alerts import store as alerts
from notifier import answers, policy, render, store
from notifier.clock import Clock
from notifier.links import Links
from notifier.metrics import CHAINS, DECIDED
from plumbing.consumer import Batch

__all__ = ["NOTIFIER_ACTOR", "Escalation"]

log = logging.getLogger(__name__)

NOTIFIER_ACTOR = "notifier"
_BATCH = 100  # chains handled per transaction round in tick()
_PARALLEL = 8  # alerts decided at once (the process's pool has 16 connections)
_ONE_AT_A_TIME = (
    "SELECT pg_advisory_xact_lock(hashtextextended('carewatch-notifier:' || $1::bigint, 0))"
)
# A voice gateway reports a call's outcome within a minute or two (ringing ~60 s, then
# the keypress); silence longer than this is taken as no answer.
_CALL_TIMEOUT = timedelta(seconds=180)


class Escalation:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        clock: Clock,
        links: Links,
        ack_timeout_s: float,
        operator_target_s: float,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._links = links
        self._ack_timeout = timedelta(seconds=ack_timeout_s)
        self._operator_target = timedelta(seconds=operator_target_s)
        self._wake = wake  # the delivery stage: something is due now
        self._due_now = False  # a transaction in progress wrote something due now

    # -- prompts from carewatch.alerts.v1 ------------------------------------------

    async def handle(self, batch: Batch[dict[str, Any]]) -> None:
        """Bring each alert named in the batch up to date, once per alert: its records
        (however many, duplicated or replayed) all prompt the same look at the alert."""
        seen = dict.fromkeys(
            r["alert_id"] for r in batch.items if isinstance(r.get("alert_id"), int)
        )
        # Alerts are independent (a transaction each): a mass event's are decided side by
        # side, not one commit after the other.
        limit = asyncio.Semaphore(_PARALLEL)

        async def one(alert_id: int) -> None:
            async with limit:
                await self.sync(alert_id)

        await asyncio.gather(*(one(alert_id) for alert_id in seen))

    async def sync(self, alert_id: int) -> None:
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                # One decision per alert at a time (the consumer and the catch-up may both
                # be at it, and a chain not yet written has no row to lock).
                await conn.execute(_ONE_AT_A_TIME, alert_id)
                alert = await store.alert_for_notice(conn, alert_id)
                if alert is not None:
                    chain = await store.lock_chain(conn, alert_id)
                    await self._follow(conn, alert, chain, now)
            self._committed()

    def _committed(self) -> None:
        """Wake delivery for what the transaction just committed: woken before the commit,
        it would find nothing it can see yet and sleep its full interval."""
        if self._due_now:
            self._due_now = False
            self._wake()

    async def _follow(
        self,
        conn: asyncpg.Connection,
        alert: dict[str, Any],
        chain: dict[str, Any] | None,
        now: datetime,
    ) -> None:
        status, state = alert["status"], chain["state"] if chain else None
        if status == "open" and state in (None, "acknowledged", "stopped"):
            cycle = 0 if chain is None else chain["cycle"] + 1
            await self._start(conn, alert, cycle, now)
        elif status == "acknowledged" and state in (None, "running", "exhausted"):
            await store.cancel_pending(conn, alert["alert_id"])
            await store.put_chain(conn, {
                **(chain or _empty(alert["alert_id"])), "state": "acknowledged",
                "due_at": now + self._ack_timeout, "supervisor_at": None,
            })  # fmt: skip
            CHAINS.labels("acknowledged").inc()
        elif status == "resolved" and state != "stopped":
            await store.cancel_pending(conn, alert["alert_id"])
            base = chain or _empty(alert["alert_id"])
            await store.put_chain(
                conn, {**base, "state": "stopped", "due_at": None, "supervisor_at": None}
            )
            await self._announce_resolution(conn, alert, base["cycle"], now)
            CHAINS.labels("stopped").inc()

    async def _start(
        self, conn: asyncpg.Connection, alert: dict[str, Any], cycle: int, now: datetime
    ) -> None:
        chosen = await policy.policy_for(conn, alert)
        steps = chosen["steps"]
        opened = alert["opened_at"] if cycle == 0 else now
        chain = {
            "alert_id": alert["alert_id"], "policy": chosen, "cycle": cycle, "round": 0,
            "step": 0, "state": "running" if steps else "exhausted",
            "due_at": now + timedelta(seconds=steps[0]["wait_s"]) if steps else None,
            # Information (a device's note) is no operator's emergency: no supervisor.
            "supervisor_at": (
                max(opened + self._operator_target, now) if alert["severity"] != "info" else None
            ),
        }  # fmt: skip
        await store.put_chain(conn, chain)
        CHAINS.labels("started").inc()
        if steps:
            await self._notify_step(conn, alert, chain, now)

    # -- the clock -----------------------------------------------------------------

    async def tick(self) -> int:
        """Do what is due now; returns how many chains moved."""
        await self.catch_up()
        now = self._clock.now()
        await self._calls_unanswered(now)
        moved = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                due = await store.due_chains(conn, now, _BATCH)
                for chain in due:
                    await self._due(conn, chain, now)
                supervise = await store.due_supervisors(conn, now, _BATCH)
                for chain in supervise:
                    await self._tell_supervisor(conn, chain, now)
            self._committed()
            moved += len(due) + len(supervise)
            if len(due) < _BATCH and len(supervise) < _BATCH:
                return moved

    async def catch_up(self) -> int:
        """Sync the alerts whose chain is out of step with them (records lost or not read
        yet: alerts.v1 is the fast path, the alerts table the truth)."""
        async with self._pool.acquire() as conn:
            behind = await store.out_of_step(conn, _BATCH)
        for alert_id in behind:
            await self.sync(alert_id)
        return len(behind)

    async def _calls_unanswered(self, now: datetime) -> None:
        """A call the gateway never reported back on counts as not answered: it must not
        hold its step up for the whole wait (delivered is not accepted)."""
        async with self._pool.acquire() as conn:
            silent = await store.unanswered_calls(conn, now - _CALL_TIMEOUT)
            for notification_id in silent:
                await answers.answer(conn, notification_id, "no_answer", now, via="call timeout")

    async def _due(self, conn: asyncpg.Connection, chain: dict[str, Any], now: datetime) -> None:
        alert = await store.alert_for_notice(conn, chain["alert_id"])
        if alert is None:
            return
        if chain["state"] == "acknowledged":
            held = alert["held_until"]
            if alert["status"] == "acknowledged" and held is not None and held > now:
                # On hold (waiting for a call back, a visit): the acknowledgement stands
                # until the hold ends.
                await store.update_chain(conn, chain["alert_id"], due_at=held)
            elif alert["status"] == "acknowledged":
                await self._reopen(conn, alert, now)
            else:
                await store.update_chain(conn, chain["alert_id"], due_at=None)
            return
        if chain["state"] != "running" or alert["status"] != "open":
            # Acknowledged or resolved, and the record saying so not read yet.
            await self._follow(conn, alert, chain, now)
            return
        await self._next_step(conn, alert, chain, now)

    async def _next_step(
        self, conn: asyncpg.Connection, alert: dict[str, Any], chain: dict[str, Any], now: datetime
    ) -> None:
        steps, repeat = chain["policy"]["steps"], chain["policy"]["repeat"]
        step, round = chain["step"] + 1, chain["round"]
        if step >= len(steps):
            step, round = 0, round + 1
        if round > repeat:
            await store.update_chain(conn, alert["alert_id"], state="exhausted", due_at=None)
            CHAINS.labels("exhausted").inc()
            log.warning(
                "escalation exhausted: nobody accepted the alert",
                extra={"alert_id": alert["alert_id"], "rounds": round},
            )
            return
        chain = {**chain, "step": step, "round": round}
        chain["due_at"] = now + timedelta(seconds=steps[step]["wait_s"])
        await store.update_chain(
            conn, alert["alert_id"], step=step, round=round, due_at=chain["due_at"]
        )
        await self._notify_step(conn, alert, chain, now)

    async def _reopen(self, conn: asyncpg.Connection, alert: dict[str, Any], now: datetime) -> None:
        """The acknowledgement timed out: the alert is open again and escalates anew."""
        minutes = round(self._ack_timeout.total_seconds() / 60)
        await alerts.reopen(
            conn, alert["alert_id"], by=NOTIFIER_ACTOR,
            note=f"acknowledged by {alert['acknowledged_by']} and not resolved within"
            f" {minutes} min: open again",
        )  # fmt: skip
        reopened = await store.alert_for_notice(conn, alert["alert_id"])
        assert reopened is not None
        chain = await store.lock_chain(conn, alert["alert_id"])
        await self._follow(conn, reopened, chain, now)

    async def _tell_supervisor(
        self, conn: asyncpg.Connection, chain: dict[str, Any], now: datetime
    ) -> None:
        await store.update_chain(conn, chain["alert_id"], supervisor_at=None)
        alert = await store.alert_for_notice(conn, chain["alert_id"])
        if alert is None or alert["status"] != "open":
            return
        targets = await policy.supervisors(conn, alert, now)
        if not targets:
            log.warning("no supervisor on duty", extra={"alert_id": alert["alert_id"]})
        await self._add(conn, alert, chain, targets, "supervisor", now)

    # -- writing notifications -----------------------------------------------------

    async def _notify_step(
        self, conn: asyncpg.Connection, alert: dict[str, Any], chain: dict[str, Any], now: datetime
    ) -> None:
        step = chain["policy"]["steps"][chain["step"]]
        targets = await policy.reach(conn, step, alert, now)
        if not targets:
            log.warning(
                "an escalation step reaches nobody (no contacts with channels)",
                extra={"alert_id": alert["alert_id"], "step": chain["step"]},
            )
            await store.move_on(conn, alert["alert_id"], now)
        await self._add(conn, alert, chain, targets, "alert", now)

    async def _announce_resolution(
        self, conn: asyncpg.Connection, alert: dict[str, Any], cycle: int, now: datetime
    ) -> None:
        told = await store.notified(conn, alert["alert_id"])
        if not told:
            return
        wanted = {(t["contact_id"], t["position"]) for t in told}
        targets = await policy.channels_of(conn, sorted({c for c, _ in wanted}))
        targets = [t for t in targets if (t["contact_id"], t["position"]) in wanted]
        chain = {"cycle": cycle, "round": 0, "step": 0}
        await self._add(conn, alert, chain, targets, "resolved", now)

    async def _add(
        self,
        conn: asyncpg.Connection,
        alert: dict[str, Any],
        chain: dict[str, Any],
        targets: list[dict[str, Any]],
        purpose: str,
        now: datetime,
    ) -> None:
        rows = [self._row(alert, chain, t, purpose, now) for t in targets]
        if purpose == "alert":
            await store.supersede(conn, rows)
        added = await store.add_notifications(conn, rows)
        DECIDED.labels(purpose).inc(added)
        if any(r["due_at"] <= now for r in rows):
            self._due_now = True

    def _row(
        self,
        alert: dict[str, Any],
        chain: dict[str, Any],
        target: dict[str, Any],
        purpose: str,
        now: datetime,
    ) -> dict[str, Any]:
        cycle, round, step = chain["cycle"], chain["round"], chain["step"]
        nid = store.notification_id(
            alert["alert_id"], cycle, purpose, round, step, target["contact_id"], target["position"]
        )
        language = _language(target["language"])
        ack_url = self._links.url(nid, now.timestamp())
        body = render.body_for(
            notification_id=nid, purpose=purpose, alert=alert, contact=target, ack_url=ack_url,
            language=language, cycle=cycle, round=round, step=step,
        )  # fmt: skip
        code = f"{secrets.randbelow(10**6):06d}" if target["channel"] == "sms" else ""
        subject, text, short = render.texts(body, reply_code=code, time_zone=target["time_zone"])
        quiet_end = None
        if alert["severity"] != "critical" and purpose != "resolved":
            quiet_end = policy.in_quiet_hours(target, now)
        return {
            "notification_id": nid, "alert_id": alert["alert_id"], "purpose": purpose,
            "cycle": cycle, "round": round, "step": step, "contact_id": target["contact_id"],
            "contact_name": target["name"], "channel": target["channel"],
            "position": target["position"], "address": target["address"],
            "language": language, "due_at": quiet_end or now, "reply_code": code or None,
            "created_at": now,
            "message": {"body": body, "subject": subject, "text": text, "short": short},
        }  # fmt: skip


def _language(tag: str) -> str:
    """The language of ours nearest a contact's BCP 47 tag ('en-GB' reads English);
    Chinese for any we do not write."""
    primary = tag.split("-")[0].lower()
    return next((known for known in render.LANGUAGES if known.split("-")[0] == primary), "zh-CN")


def _empty(alert_id: int) -> dict[str, Any]:
    """A chain for an alert first seen already acknowledged or resolved: nobody was told."""
    return {
        "alert_id": alert_id, "policy": {"steps": [], "repeat": 0}, "state": "stopped",
        "cycle": 0, "round": 0, "step": 0, "due_at": None, "supervisor_at": None,
    }  # fmt: skip
