"""`carewatch faults`: the fault table, measured on real processes under load.

It starts the embedded stack and the services exactly as `carewatch up` does (each
service its own process, restarted by the same supervisor), and for each fault:

- offers steady load (simulators/load.py: devices with their own accounts and MQTT
  connections) and presses an SOS every `sos_every_s` seconds, each from a device of its
  own, the way a device does: on its alarm topic (which ingest and the alarm fast path
  both read), resent with the same `msg_id` until the broker acknowledges it (a 4G watch:
  its AL frame until the gateway replies);
- injects the fault `before_s` seconds in: `kill -9` of a service (the supervisor restarts
  it), PostgreSQL or mosquitto restarted, or the Kafka broker frozen (SIGSTOP) for
  `outage_s` seconds, so that every connection to it hangs as across a dead network;
- keeps the load on for `after_s` more seconds, then waits (at most `settle_s`) until
  everything acknowledged is stored and every SOS is alerted;
- counts, from the database: events offered, acknowledged, stored, lost (acknowledged,
  never stored), duplicated (stored beyond what was sent); SOS pressed, acknowledged,
  alerted once, alerted more than once, not alerted; the worst press-to-alert time; and
  the recovery time: from the fault's start to the last moment the system was not
  whole (a service unhealthy, or an SOS pressed more than a second earlier not alerted).

All faults run on one stack, one after the other, each with devices of its own.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from alerts import event_store, store
from carewatch.bench import in_a_fresh_directory, write_report
from carewatch.extras import needs_extra
from carewatch.simulate import raise_fd_limit, register_fleet
from devices.codecs.native import alarm_topic_for
from plumbing.db import connect_pool
from plumbing.mqtt import MqttClient, MqttError, with_login
from plumbing.settings import Settings
from simulators.load import LoadGenerator
from simulators.watch import WatchEncoder
from simulators.watch_link import WatchLink

with needs_extra("embedded", "carewatch faults"):
    from carewatch.embedded.process import ChildProcess
    from carewatch.embedded.stack import EmbeddedStack
    from carewatch.supervisor import Supervisor
    from carewatch.up import start_all

__all__ = ["FAULTS", "FaultPlan", "run_faults"]

# What each fault does to what, in the order the table lists them.
FAULTS: dict[str, str] = {
    "ingest": "kill -9 of ingest",
    "alarms": "kill -9 of the alarm fast path",
    "rules": "kill -9 of the rules process",
    "telemetry": "kill -9 of telemetry",
    "watch-gateway": "kill -9 of the watch gateway",
    "postgres": "PostgreSQL restarted",
    "mosquitto": "mosquitto restarted",
    "kafka": "Kafka unreachable (frozen)",
}
_KILLED = ("ingest", "alarms", "rules", "telemetry", "watch-gateway")
_SEND_TIMEOUT_S = 10.0  # one try of an SOS; then the device tries again
_RETRY_S = 1.0


@dataclass(frozen=True)
class FaultPlan:
    faults: tuple[str, ...] = tuple(FAULTS)
    rate: int = 500  # events/s offered throughout
    devices: int = 40  # load devices per fault
    before_s: float = 5.0
    after_s: float = 25.0
    outage_s: float = 30.0  # how long Kafka stays unreachable
    sos_every_s: float = 1.0
    settle_s: float = 120.0

    @property
    def presses(self) -> int:
        return int((self.before_s + self.after_s) / self.sos_every_s)


@dataclass
class Press:
    """One SOS press, resent until acknowledged."""

    device_id: str
    pressed: float  # wall clock
    acked: float | None = None
    tries: int = 0


@dataclass
class _Run:
    """What every fault needs: the stack, its services, the database."""

    settings: Settings
    stack: EmbeddedStack
    children: dict[str, tuple[ChildProcess, int]]
    pool: asyncpg.Pool
    gateway_port: int
    tag: str
    presses: list[Press] = field(default_factory=list)


def run_faults(settings: Settings, plan: FaultPlan, *, report: Path | None) -> int:
    unknown = sorted(set(plan.faults) - set(FAULTS))
    if unknown:
        known = ", ".join(FAULTS)
        print(f"carewatch faults: unknown {', '.join(unknown)} (known: {known})", file=sys.stderr)
        return 2
    raise_fd_limit(plan.devices * len(plan.faults) + 1024)
    result = in_a_fresh_directory(
        "carewatch-faults-", lambda d: _faults(settings.model_copy(update={"data_dir": d}), plan)
    )
    write_report(result, report)
    return 0 if all(_passed(row) for row in result["faults"]) else 1


async def _faults(settings: Settings, plan: FaultPlan) -> dict[str, Any]:
    async with AsyncExitStack() as exits:
        print("starting the embedded stack and the services…", flush=True)
        started = await start_all(exits, settings, gateway_port=0)
        stack, env, children = started.stack, started.env, started.children
        processes = {name: child for name, (child, _) in children.items()}
        await exits.enter_async_context(Supervisor(children=processes))
        pool = await connect_pool(stack.database_url, min_size=1, max_size=4)
        exits.push_async_callback(pool.close)
        gateway = int(env["CAREWATCH_GATEWAY_PORT"])
        run = _Run(settings, stack, children, pool, gateway, uuid.uuid4().hex[:6])
        print(_HEADER, flush=True)
        rows = []
        for name in plan.faults:
            rows.append(await _one_fault(run, name, plan))
            _print_row(rows[-1])
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "plan": {k: v for k, v in plan.__dict__.items()},
        "faults": rows,
    }


async def _one_fault(run: _Run, name: str, plan: FaultPlan) -> dict[str, Any]:
    load_ids = [f"faults-{run.tag}-{name}-{n:03d}" for n in range(plan.devices)]
    sos_ids = _sos_devices(run.tag, name, plan.presses)
    watches = name == "watch-gateway"  # its SOS presses come from 4G watches
    formats = dict.fromkeys(sos_ids, "watch" if watches else "native")
    secrets = await register_fleet(run.settings, load_ids + sos_ids, run.stack.mqtt_url, formats)
    load = LoadGenerator(
        url=run.stack.mqtt_url,
        protocol=run.stack.mqtt_protocol,
        devices={d: secrets[d] for d in load_ids},
    )
    await load.connect()
    try:
        press = _watch_press(run) if watches else _mqtt_press(run, secrets)
        presses: list[Press] = []
        driving = asyncio.create_task(load.drive(plan.rate, plan.before_s + plan.after_s))
        pressing = asyncio.create_task(_press_all(sos_ids, plan, press, presses))
        await asyncio.sleep(plan.before_s)
        started = time.monotonic()
        watching = asyncio.create_task(_last_unwell(run, presses, started))
        await _inject(run, name, plan)
        offered = await driving
        await pressing
        await _settle(run, load, presses, plan.settle_s)
        watching.cancel()
        recovered = await watching
    finally:
        await load.close()
    return await _row(run, name, load, presses, offered.events_sent, recovered)


def _sos_devices(tag: str, fault: str, count: int) -> list[str]:
    if fault == "watch-gateway":
        # Watch ids are digits: the run's tag, as a number, keeps them apart between runs.
        base = int(tag, 16) % 10**5 * 10**5
        return [f"{base + n:010d}" for n in range(count)]
    return [f"faults-{tag}-{fault}-sos-{n:03d}" for n in range(count)]


# -- the faults -----------------------------------------------------------------------


async def _inject(run: _Run, name: str, plan: FaultPlan) -> None:
    """Do the fault; return when it is over (the process killed, the server back)."""
    if name in _KILLED:
        child, _ = run.children[name]
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)  # the supervisor restarts it
    elif name == "postgres":
        await _restart(run.stack.processes()["postgres"], run.stack.database_url)
    elif name == "mosquitto":
        await _restart(run.stack.processes()["mqtt"], run.stack.mqtt_url)
    elif name == "kafka":
        await _freeze(run.stack.processes()["kafka"], plan.outage_s)


async def _restart(process: ChildProcess, url: str) -> None:
    """Stop the server the way its operator's restart does, start it on the same port."""
    await process.restart()
    port = urlsplit(url).port
    assert port is not None
    await process.wait_port(port, within=60)


async def _freeze(process: ChildProcess, seconds: float) -> None:
    """SIGSTOP for `seconds`: the broker's sockets stay open and nothing answers."""
    assert process.pid is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        os.kill(process.pid, signal.SIGCONT)


# -- SOS presses ----------------------------------------------------------------------

_Sender = Callable[[Press], Awaitable[None]]


async def _press_all(devices: list[str], plan: FaultPlan, send: _Sender, out: list[Press]) -> None:
    """One press per device, `sos_every_s` apart; each is resent until acknowledged."""
    tasks = []
    for device_id in devices:
        press = Press(device_id, pressed=time.time())
        out.append(press)
        tasks.append(asyncio.create_task(_until_acked(press, send, plan.settle_s)))
        await asyncio.sleep(plan.sos_every_s)
    await asyncio.gather(*tasks)


async def _until_acked(press: Press, send: _Sender, within: float) -> None:
    deadline = time.monotonic() + within
    while press.acked is None and time.monotonic() < deadline:
        press.tries += 1
        try:
            await asyncio.wait_for(send(press), _SEND_TIMEOUT_S)
        except (MqttError, OSError, TimeoutError, asyncio.IncompleteReadError):
            await asyncio.sleep(_RETRY_S)
        else:
            press.acked = time.time()


def _mqtt_press(run: _Run, secrets: dict[str, str]) -> _Sender:
    async def send(press: Press) -> None:
        device = press.device_id
        client = MqttClient(
            url=with_login(run.stack.mqtt_url, device, secrets[device]),
            client_id=device,
            protocol=run.stack.mqtt_protocol,
        )
        # The same message on every try: the device's time and message id.
        ts = datetime.fromtimestamp(press.pressed, UTC).isoformat()
        body = orjson.dumps({"kind": "sos", "ts": ts, "msg_id": f"{device}-sos"})
        try:
            await client.start()
            await client.publish(alarm_topic_for(device), body)
        finally:
            await client.stop()

    return send


def _watch_press(run: _Run) -> _Sender:
    async def send(press: Press) -> None:
        frame = WatchEncoder(press.device_id).alarm(
            datetime.fromtimestamp(press.pressed, UTC), sos=True
        )
        link = WatchLink(host="127.0.0.1", port=run.gateway_port, device_id=press.device_id)
        try:
            await link.start()
            await link.publish("", frame)  # returns once the gateway replied
        finally:
            await link.stop()

    return send


# -- measuring ------------------------------------------------------------------------


async def _last_unwell(run: _Run, presses: list[Press], since: float) -> float:
    """Poll until cancelled; returns the seconds from `since` to the last poll at which the
    system was not whole (a service unhealthy, or an SOS pressed more than a second ago not
    alerted, acknowledged or not), 0.0 if it never was: the recovery time."""
    last = since
    try:
        while True:
            await asyncio.sleep(0.5)
            if not await _whole(run, presses):
                last = time.monotonic()
    except asyncio.CancelledError:
        return last - since


async def _whole(run: _Run, presses: list[Press]) -> bool:
    if not all(await asyncio.gather(*(_healthy(p) for _, p in run.children.values()))):
        return False
    due = [p.device_id for p in presses if p.pressed < time.time() - 1]
    try:
        async with run.pool.acquire() as conn:
            alerted = await store.sos_alert_counts(conn, due)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False  # the database is away (the PostgreSQL fault): not whole
    return len(alerted) == len(due)


async def _settle(run: _Run, load: LoadGenerator, presses: list[Press], within: float) -> None:
    """Until everything acknowledged is stored and every acknowledged SOS alerted."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        lost, _ = await _events(run, load)
        acked = [p.device_id for p in presses if p.acked is not None]
        async with run.pool.acquire() as conn:
            alerted = await store.sos_alert_counts(conn, acked)
        if lost == 0 and len(alerted) == len(acked):
            return
        await asyncio.sleep(0.5)


async def _events(run: _Run, load: LoadGenerator) -> tuple[int, int]:
    """(lost, duplicated) events of the load devices."""
    async with run.pool.acquire() as conn:
        stored = await event_store.count_by_device(conn, list(load.sent))
    lost = sum(max(0, acked - stored.get(d, 0)) for d, acked in load.acked.items())
    duplicated = sum(max(0, stored.get(d, 0) - sent) for d, sent in load.sent.items())
    return lost, duplicated


async def _row(
    run: _Run,
    name: str,
    load: LoadGenerator,
    presses: list[Press],
    offered: int,
    recovery_s: float,
) -> dict[str, Any]:
    lost, duplicated = await _events(run, load)
    devices = [p.device_id for p in presses]
    async with run.pool.acquire() as conn:
        stored = await event_store.count_by_device(conn, list(load.sent))
        sos_stored = await event_store.count_by_device(conn, devices, "sos")
        alerts = await store.sos_alert_counts(conn, devices)
    acked = [p for p in presses if p.acked is not None]
    sos_lost = sum(1 for p in acked if sos_stored.get(p.device_id, 0) == 0)
    latencies = [
        alerts[p.device_id][1].timestamp() - p.pressed for p in presses if p.device_id in alerts
    ]
    return {
        "fault": name,
        "what": FAULTS[name],
        "events_offered": offered + len(presses),
        "events_acked": sum(load.acked.values()) + len(acked),
        "events_stored": sum(stored.values()) + sum(min(1, n) for n in sos_stored.values()),
        "events_lost": lost + sos_lost,
        "events_duplicated": duplicated + sum(max(0, n - 1) for n in sos_stored.values()),
        "sos_pressed": len(presses),
        "sos_acked": len(acked),
        "sos_resent": sum(p.tries - 1 for p in presses),
        "sos_alerted_once": sum(1 for n, _ in alerts.values() if n == 1),
        "sos_alerted_twice": sum(1 for n, _ in alerts.values() if n > 1),
        "sos_not_alerted": len(presses) - len(alerts),
        "sos_worst_alert_s": round(max(latencies), 2) if latencies else None,
        "recovery_s": round(recovery_s, 1),
    }


def _passed(row: dict[str, Any]) -> bool:
    return (
        row["events_lost"] == 0
        and row["events_duplicated"] == 0
        and row["sos_alerted_once"] == row["sos_pressed"]
    )


async def _healthy(port: int) -> bool:
    def get() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    return await asyncio.to_thread(get)


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


_HEADER = (
    f"{'fault':<14}{'offered':>9}{'acked':>9}{'stored':>9}{'lost':>6}{'dup':>5}"
    f"{'SOS':>5}{'once':>6}{'twice':>6}{'none':>6}{'worst s':>9}{'recovery s':>12}"
)


def _print_row(row: dict[str, Any]) -> None:
    worst = row["sos_worst_alert_s"]
    print(
        f"{row['fault']:<14}{row['events_offered']:>9}{row['events_acked']:>9}"
        f"{row['events_stored']:>9}{row['events_lost']:>6}{row['events_duplicated']:>5}"
        f"{row['sos_pressed']:>5}{row['sos_alerted_once']:>6}{row['sos_alerted_twice']:>6}"
        f"{row['sos_not_alerted']:>6}{worst if worst is not None else '-':>9}"
        f"{row['recovery_s']:>12}",
        flush=True,
    )
