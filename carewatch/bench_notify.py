"""`carewatch bench-notify`: the notifier, measured at a webhook receiver.

It starts the embedded stack and the services as `up` does (the notifier among them),
serves a webhook receiver in this process (it checks each signature, notes when the POST's
body was in and answers 200), and makes the default policy for critical alerts one step:
one contact whose webhook is that receiver, with a wait longer than the run (the devices
here have no resident, so they follow the default). Then it measures:

- **SOS press -> first webhook**: devices press SOS one a second, each press a new alert
  (a device of its own, on its alarm topic as devices are asked to), while `rate`
  events/s of ordinary traffic flow from other devices. The press time is taken just
  before the publish; both clocks are this machine's. Each press is split where the
  alert was opened (`opened_at`, PostgreSQL's clock) and where the notifier decided to
  notify (the notification's `created_at`).
- **a mass event**: `mass` devices press SOS at once. How long from the first press until
  the last alert's first webhook, whether every alert was notified, and how many POSTs
  came against how many distinct `notification_id`s (a receiver deduplicating by id would
  see the difference twice).

It prints the numbers and writes a JSON report (docs/notifications-benchmark.md reads one).
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from carewatch.bench import in_a_fresh_directory, percentiles, write_report
from carewatch.extras import needs_extra
from carewatch.simulate import raise_fd_limit, register_fleet
from devices import contacts
from devices.codecs.native import alarm_topic_for
from notifier import store
from notifier.channels.signing import verify
from notifier.delivery import LEASE_S
from plumbing.db import connect_pool
from plumbing.http import HealthServer
from plumbing.mqtt import MqttClient, with_login
from plumbing.settings import Settings
from simulators.load import LoadGenerator

with needs_extra("embedded", "carewatch bench-notify"):
    from carewatch.supervisor import Supervisor
    from carewatch.up import Services, start_all, start_api

__all__ = ["STAGES", "TARGETS", "NotifyBenchPlan", "run_bench_notify"]


_CONNECT_CONCURRENCY = 64  # devices opening their connections at once
# Where a press's time goes (`_stages`): the alarm fast path (or ingest, Kafka, rules,
# whichever is first); the outbox, alerts.v1, the notifier's consumer and escalation;
# delivery's pick-up; the POST.
STAGES = ("press_to_alert", "alert_to_decided", "decided_to_claimed", "claimed_to_webhook")
TARGETS = {"press_to_webhook_p99_ms": 1_000, "mass_all_notified_s": 30}


def _sos(device: str) -> bytes:
    """A press as devices are asked to send it: with a `msg_id`, so ingest and the alarm
    fast path make the same event id of it."""
    return orjson.dumps({"kind": "sos", "msg_id": f"{device}-sos"})


@dataclass(frozen=True)
class NotifyBenchPlan:
    rate: int = 1_000  # background events/s while the presses are made
    load_devices: int = 40
    presses: int = 60  # one a second, each a new alert
    mass: int = 1_000  # devices pressing SOS at once
    wait_s: float = 120.0  # for the last notification, at most
    settle_s: float = 10.0  # listening on after it: anything sent twice comes now

    @classmethod
    def small(cls) -> NotifyBenchPlan:
        return cls(rate=200, load_devices=10, presses=5, mass=50, wait_s=60.0, settle_s=2.0)


def run_bench_notify(settings: Settings, plan: NotifyBenchPlan, *, report: Path | None) -> int:
    """Run the benchmark on a stack of its own; 1 if some alert was never notified."""
    raise_fd_limit(plan.load_devices + plan.presses + plan.mass + 1024)
    result = in_a_fresh_directory(
        "carewatch-bench-notify-",
        lambda d: _bench(settings.model_copy(update={"data_dir": d}), plan),
    )
    _print(result)
    write_report(result, report)
    press, mass = result["press_to_webhook_ms"], result["mass_event"]
    return 0 if press["notified"] == press["presses"] and mass["every_alert_notified"] else 1


async def _bench(settings: Settings, plan: NotifyBenchPlan) -> dict[str, Any]:
    load_before = os.getloadavg()
    async with AsyncExitStack() as exits:
        print("starting the embedded stack and the services…", flush=True)
        started = await start_all(exits, settings, gateway_port=0)
        await start_api(exits, settings.model_copy(update={"api_port": 0}), started)
        await exits.enter_async_context(
            Supervisor(children={name: child for name, (child, _) in started.children.items()})
        )
        pool = await connect_pool(started.stack.database_url, min_size=1, max_size=4)
        exits.push_async_callback(pool.close)
        receiver = _Receiver(secrets.token_hex(16))
        server = await exits.enter_async_context(
            HealthServer(host="127.0.0.1", port=0, health=lambda: {"ok": True},
                         app=receiver.app, name="webhook-receiver")
        )  # fmt: skip
        await _default_policy(pool, f"http://127.0.0.1:{server.port}/hook", receiver.secret)
        presses = await _press_under_load(started, pool, receiver, plan)
        mass = await _mass_event(started, pool, receiver, plan)
        refused = receiver.refused
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "system": platform.platform(), "load_avg_before": load_before,
                    "load_avg_after": os.getloadavg()},
        "plan": asdict(plan),
        "targets": TARGETS,
        "met": _met(presses, mass),
        "press_to_webhook_ms": presses,
        "mass_event": mass,
        "bad_signatures": refused,
    }  # fmt: skip


def _met(presses: dict[str, Any], mass: dict[str, Any]) -> dict[str, bool]:
    p99, last = presses["p99"], mass["last_notified_s"]
    return {
        "press_to_webhook_p99": p99 is not None and p99 <= TARGETS["press_to_webhook_p99_ms"],
        "mass_all_notified": mass["every_alert_notified"]
        and last <= TARGETS["mass_all_notified_s"],
        "mass_none_twice": mass["duplicates"] == 0,
    }


@dataclass(frozen=True)
class _Arrival:
    at: float  # this machine's clock when the POST's body was in
    notification_id: str
    type: str  # alert, resolved, supervisor
    alert_id: int
    device_id: str
    opened_at: float  # the alert's, as the body says


class _Receiver:
    """A contact's webhook endpoint as its owner would run one: each POST's signature is
    checked (a wrong one is answered 401 and counted), each signed one noted, in order."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.arrivals: list[_Arrival] = []
        self.refused = 0

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        at = time.time()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        signed = verify(
            self.secret, headers.get("x-carewatch-timestamp", ""),
            headers.get("x-carewatch-signature", ""), body, now=at,
        )  # fmt: skip
        if signed:
            self.arrivals.append(_arrival(at, orjson.loads(body)))
        else:
            self.refused += 1
        await send({"type": "http.response.start", "status": 200 if signed else 401,
                    "headers": [(b"content-length", b"0")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})

    def first_alerts(self, devices: Collection[str]) -> dict[str, _Arrival]:
        """Per device, the first alert notification about it that arrived."""
        first: dict[str, _Arrival] = {}
        for arrival in self.arrivals:
            if arrival.type == "alert" and arrival.device_id in devices:
                first.setdefault(arrival.device_id, arrival)
        return first


def _arrival(at: float, doc: dict[str, Any]) -> _Arrival:
    alert = doc["alert"]
    opened = datetime.fromisoformat(alert["opened_at"]).timestamp()
    return _Arrival(
        at, doc["notification_id"], doc["type"], alert["alert_id"], alert["device_id"], opened
    )


async def _default_policy(pool: asyncpg.Pool, url: str, secret: str) -> None:
    """Critical alerts of devices without a resident: one step, the receiver, a wait
    longer than the run, no repeat; so each alert is notified once."""
    channel = {"type": "webhook", "address": url, "secret": secret}
    async with pool.acquire() as conn, conn.transaction():
        contact = await contacts.create_contact(
            conn, {"name": "bench receiver", "relationship": "other"}, [channel]
        )
        steps = [{"contacts": [contact["contact_id"]], "wait_s": 86_400}]
        await contacts.set_default(conn, "critical", steps, 0)


async def _press_under_load(
    started: Services, pool: asyncpg.Pool, receiver: _Receiver, plan: NotifyBenchPlan
) -> dict[str, Any]:
    stack, tag = started.stack, uuid.uuid4().hex[:6]
    load_ids = [f"bench-notify-{tag}-load-{n:03d}" for n in range(plan.load_devices)]
    sos_ids = [f"bench-notify-{tag}-sos-{n:03d}" for n in range(plan.presses)]
    print(f"{plan.presses} SOS presses, one a second, under {plan.rate} events/s…", flush=True)
    keys = await register_fleet(stack.settings, load_ids + sos_ids, stack.mqtt_url)
    load = LoadGenerator(url=stack.mqtt_url, protocol=stack.mqtt_protocol,
                         devices={d: keys[d] for d in load_ids})  # fmt: skip
    buttons = _buttons(started, keys, sos_ids)
    pressed: dict[str, float] = {}
    try:
        await _connect(buttons.values())
        await load.connect()
        driving = asyncio.create_task(load.drive(plan.rate, plan.presses + 5.0))
        await asyncio.sleep(2.0)  # the load is flowing
        for device, button in buttons.items():
            pressed[device] = time.time()
            await button.publish(alarm_topic_for(device), _sos(device))
            await asyncio.sleep(1.0)
        offered = await driving
        await _until(lambda: len(receiver.first_alerts(sos_ids)) >= len(sos_ids), plan.wait_s)
    finally:
        await asyncio.gather(*(b.stop() for b in buttons.values()), return_exceptions=True)
        await load.close()
    first = receiver.first_alerts(pressed)
    delays = [(arrival.at - pressed[device]) * 1000 for device, arrival in first.items()]
    return {"presses": len(pressed), "notified": len(first), "background_rate": plan.rate,
            "offered_events_per_s": round(offered.offered_events_per_s, 1),
            **_percentiles(delays), "stages_ms": await _stages(pool, first, pressed)}  # fmt: skip


async def _stages(
    pool: asyncpg.Pool, first: dict[str, _Arrival], pressed: dict[str, float]
) -> dict[str, Any]:
    """Where each press's time went (`STAGES`); PostgreSQL's, the notifier's and this
    process's clocks are this machine's."""
    decided = await _decided(pool, first.values())
    parts: dict[str, list[float]] = {name: [] for name in STAGES}
    for device, arrival in first.items():
        row = decided[arrival.notification_id]
        made, claimed = row["created_at"].timestamp(), _claimed_at(row)
        parts["press_to_alert"].append((arrival.opened_at - pressed[device]) * 1000)
        parts["alert_to_decided"].append((made - arrival.opened_at) * 1000)
        parts["decided_to_claimed"].append((claimed - made) * 1000)
        parts["claimed_to_webhook"].append((arrival.at - claimed) * 1000)
    return {name: _percentiles(values) for name, values in parts.items()}


def _claimed_at(notification: dict[str, Any]) -> float:
    """When delivery claimed the notification (its last claim): a claim moves `due_at` a
    lease ahead, and a delivered notification's `due_at` is not moved again."""
    return float(notification["due_at"].timestamp() - LEASE_S)


async def _decided(pool: asyncpg.Pool, arrivals: Iterable[_Arrival]) -> dict[str, dict[str, Any]]:
    """The notifications behind `arrivals` as the notifier stored them, by id."""
    found: dict[str, dict[str, Any]] = {}
    async with pool.acquire() as conn:
        for nid in sorted({a.notification_id for a in arrivals}):
            row = await store.get_notification(conn, nid)
            if row is not None:
                found[nid] = row
    return found


async def _mass_event(
    started: Services, pool: asyncpg.Pool, receiver: _Receiver, plan: NotifyBenchPlan
) -> dict[str, Any]:
    stack, tag = started.stack, uuid.uuid4().hex[:6]
    ids = [f"bench-notify-{tag}-mass-{n:04d}" for n in range(plan.mass)]
    print(f"mass event: registering and connecting {plan.mass} devices…", flush=True)
    buttons = _buttons(started, await register_fleet(stack.settings, ids, stack.mqtt_url), ids)
    try:
        await _connect(buttons.values())
        print(f"mass event: {plan.mass} devices press SOS at once…", flush=True)
        first_press = time.time()
        await asyncio.gather(*(b.publish(alarm_topic_for(d), _sos(d)) for d, b in buttons.items()))
        published = time.time()
        await _until(lambda: len(receiver.first_alerts(ids)) >= len(ids), plan.wait_s)
        await asyncio.sleep(plan.settle_s)  # listening on: a notification sent twice
    finally:
        await asyncio.gather(*(b.stop() for b in buttons.values()), return_exceptions=True)
    wanted = set(ids)
    posts = [a for a in receiver.arrivals if a.device_id in wanted]
    first = receiver.first_alerts(wanted)
    decided = await _decided(pool, posts)
    return {"devices": plan.mass, "publish_s": round(published - first_press, 3),
            **_mass_counts(posts, decided, plan.mass),
            **_mass_times(first, decided, first_press)}  # fmt: skip


def _mass_counts(
    posts: list[_Arrival], decided: dict[str, dict[str, Any]], mass: int
) -> dict[str, Any]:
    notified = {a.alert_id for a in posts if a.type == "alert"}
    distinct = {a.notification_id for a in posts}
    return {
        "alerts_notified": len(notified), "every_alert_notified": len(notified) == mass,
        "posts": len(posts), "distinct_notifications": len(distinct),
        "duplicates": len(posts) - len(distinct),
        "tried_more_than_once": sum(1 for n in decided.values() if n["attempts"] > 1),
        "not_delivered": sum(1 for n in decided.values() if n["status"] != "delivered"),
    }  # fmt: skip


def _mass_times(
    first: dict[str, _Arrival], decided: dict[str, dict[str, Any]], first_press: float
) -> dict[str, Any]:
    """From the first press: when the last alert was opened, the last notification
    decided, the last alert's first webhook arrived (seconds); each alert's arrival (ms)."""
    if not first:
        return {"last_alert_opened_s": None, "last_decided_s": None,
                "last_notified_s": None, "press_to_webhook_ms": _percentiles([])}  # fmt: skip
    made = [decided[a.notification_id]["created_at"].timestamp() for a in first.values()]
    return {
        "last_alert_opened_s": round(max(a.opened_at for a in first.values()) - first_press, 3),
        "last_decided_s": round(max(made) - first_press, 3),
        "last_notified_s": round(max(a.at for a in first.values()) - first_press, 3),
        "press_to_webhook_ms": _percentiles((a.at - first_press) * 1000 for a in first.values()),
    }


def _percentiles(values: Iterable[float]) -> dict[str, float | None]:
    """`percentiles`, to a tenth of a millisecond (what the clocks are good for)."""
    return {k: None if v is None else round(v, 1) for k, v in percentiles(values).items()}


def _buttons(started: Services, keys: dict[str, str], devices: list[str]) -> dict[str, MqttClient]:
    """Each device on a connection of its own, logged in as itself, as a real one is."""
    stack = started.stack
    return {
        d: MqttClient(
            url=with_login(stack.mqtt_url, d, keys[d]), client_id=d, protocol=stack.mqtt_protocol
        )
        for d in devices
    }


async def _connect(clients: Iterable[MqttClient]) -> None:
    gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)

    async def start(client: MqttClient) -> None:
        async with gate:
            await client.start()

    await asyncio.gather(*(start(c) for c in clients))


async def _until(done: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def _print(result: dict[str, Any]) -> None:
    press, mass = result["press_to_webhook_ms"], result["mass_event"]
    stages = press["stages_ms"]
    print(
        f"SOS press -> first webhook ({press['background_rate']} events/s of background load,"
        f" {press['notified']}/{press['presses']} notified): p50 {_ms(press['p50'])}"
        f"  p95 {_ms(press['p95'])}  p99 {_ms(press['p99'])}  max {_ms(press['max'])}"
    )
    print(
        "  press -> alert opened p50 {} / p99 {}; -> notification decided p50 {} / p99 {};"
        " -> claimed by delivery p50 {} / p99 {}; -> webhook p50 {} / p99 {}".format(
            *(_ms(stages[s][p]) for s in stages for p in ("p50", "p99"))
        )
    )
    print(
        f"mass event, {mass['devices']} devices at once: {mass['alerts_notified']} alerts"
        f" notified, the last {_s(mass['last_notified_s'])} after the first press (alerts"
        f" opened by {_s(mass['last_alert_opened_s'])}, decided by {_s(mass['last_decided_s'])});"
        f" {mass['posts']} POSTs, {mass['distinct_notifications']} distinct notification ids,"
        f" {mass['duplicates']} sent twice"
    )
    if result["bad_signatures"]:
        print(f"{result['bad_signatures']} webhooks with a wrong signature (answered 401)")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
