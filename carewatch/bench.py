"""`carewatch bench`: the whole pipeline under stepped load, measured end to end.

It starts the embedded stack and the services exactly as `carewatch up` does (each service
its own process), registers a fleet of load devices (each with its own broker account and
MQTT connection) and, per step of offered load:

- offers the rate for `step_s` seconds (simulators/load.py) and injects SOS presses, each
  from a device of its own, spread over the step, on the alarm topic
  (`carewatch/v1/devices/{id}/alarm`, which ingest reads on a session of its own);
- then waits until telemetry has stored everything acknowledged (or `drain_s` passes);
- measures: the offered and acknowledged rate, the sustained rate (events stored by
  telemetry during the step, from its counter, over the step's duration), the consumers'
  Kafka lag at the end of the step, dead-letter records, SOS -> alert latency (publish to
  the alert row's `opened_at`), and CPU and peak RSS of every process.

At the end it waits until the backlog a step past the sustainable rate left in the broker
is stored (`settle`: late is not lost), then counts, per device, events stored against
events sent and acknowledged: `lost` (acknowledged, not stored) and `duplicated` (stored
beyond what was sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil

from alerts import event_store, store
from alerts.rule_state import stored_positions
from carewatch.extras import needs_extra
from carewatch.simulate import raise_fd_limit, register_fleet
from devices.codecs.native import alarm_topic_for
from plumbing.db import connect_pool
from plumbing.kafka import EVENTS_TOPIC, group_progress
from plumbing.mqtt import MqttClient, with_login
from plumbing.settings import Settings
from simulators.load import LoadGenerator, StepLoad

# The stack it measures, and matplotlib for the plot (imported when it draws: it is slow).
with needs_extra("bench", "carewatch bench"):
    from carewatch.embedded.process import ChildProcess
    from carewatch.embedded.stack import EmbeddedStack
    from carewatch.up import scrape_service, start_all

__all__ = ["BenchPlan", "percentiles", "run_bench"]

SHORT_RATES = (1000, 2000, 4000)
# Messages/s a load device sends at most: well under ingest's per-device limit (10/s by
# default), so the load is never rate-limited; a plan adds devices to stay under it.
_DEVICE_RATE = 6.0
FULL_RATES = (2000, 4000, 6000, 8000, 10000, 12000)
_WARMUP_SOS = 5
_STUCK_S = 20.0  # no event stored for this long after the load: the pipeline has stopped


@dataclass(frozen=True)
class BenchPlan:
    rates: tuple[int, ...]
    step_s: float
    devices: int
    batch: int = 5
    sos_per_step: int = 60
    drain_s: float = 30.0
    # After the last step: how long the backlog it left in the broker may take to be stored
    # before what is missing counts as lost (the wait also ends once nothing moves for 20 s).
    settle_s: float = 600.0
    warmup_s: float = 10.0  # one unreported step first: connections, caches, first alerts
    ingests: int = 1  # ingest processes (`--ingest N`, docs/scale-out.md)
    workers: int = 1  # rules and telemetry processes each (`--workers N`)

    @property
    def load_devices(self) -> int:
        """`devices`, or more where the highest rate would take a device past _DEVICE_RATE."""
        return max(self.devices, math.ceil(max(self.rates) / self.batch / _DEVICE_RATE))

    @classmethod
    def short(cls) -> BenchPlan:
        return cls(
            rates=SHORT_RATES, step_s=15, devices=500, sos_per_step=30, drain_s=15, settle_s=60
        )

    @classmethod
    def full(cls) -> BenchPlan:
        return cls(rates=FULL_RATES, step_s=45, devices=1000, sos_per_step=90)


def percentiles(values: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99/max by the nearest-rank method (None without values)."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)]

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": ordered[-1]}


def in_a_fresh_directory(
    prefix: str, measure: Callable[[Path], Coroutine[Any, Any, dict[str, Any]]]
) -> dict[str, Any]:
    """Run `measure(workdir)` in a directory of its own, removed afterwards: the stack it
    starts there has a clean database and does not clash with `up`."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return asyncio.run(measure(workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_report(result: dict[str, Any], report: Path | None) -> None:
    """The JSON report the docs' tables are read from, if asked for."""
    if report is not None:
        report.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        print(f"report: {report}")


def run_bench(
    settings: Settings, plan: BenchPlan, *, report: Path | None, plot: Path | None
) -> int:
    raise_fd_limit(plan.load_devices + plan.sos_per_step * len(plan.rates) + 1024)
    result = in_a_fresh_directory(
        "carewatch-bench-", lambda d: _bench(settings.model_copy(update={"data_dir": d}), plan)
    )
    _print_table(result)
    write_report(result, report)
    if plot is not None:
        _plot(result, plot)
        print(f"plot: {plot}")
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


async def _bench(settings: Settings, plan: BenchPlan) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    async with AsyncExitStack() as exits:
        print("starting the embedded stack and the services…", flush=True)
        started = await start_all(
            exits, settings, gateway_port=0, ingests=plan.ingests, workers=plan.workers
        )
        stack, children = started.stack, started.children
        load_ids = [f"bench-{run}-{n:05d}" for n in range(plan.load_devices)]
        sos_count = plan.sos_per_step * len(plan.rates) + _WARMUP_SOS
        sos_ids = [f"bench-{run}-sos-{n:04d}" for n in range(sos_count)]
        print(f"registering {len(load_ids) + len(sos_ids)} devices…", flush=True)
        secrets = await register_fleet(settings, load_ids + sos_ids, stack.mqtt_url)
        load = LoadGenerator(
            url=stack.mqtt_url,
            protocol=stack.mqtt_protocol,
            devices={d: secrets[d] for d in load_ids},
            batch=plan.batch,
        )
        print(f"connecting {len(load_ids)} devices…", flush=True)
        await load.connect()
        exits.push_async_callback(load.close)
        pool = await connect_pool(stack.database_url, min_size=1, max_size=2)
        exits.push_async_callback(pool.close)
        meter = Meter(children)
        print(f"warming up for {plan.warmup_s:.0f} s…", flush=True)
        warmup = replace(plan, step_s=plan.warmup_s)
        await _step(
            plan.rates[0], warmup, load, sos_ids[-_WARMUP_SOS:], secrets, stack, pool, meter
        )
        print(_HEADER, flush=True)
        steps = []
        for n, rate in enumerate(plan.rates):
            sos = sos_ids[n * plan.sos_per_step : (n + 1) * plan.sos_per_step]
            steps.append(await _step(rate, plan, load, sos, secrets, stack, pool, meter))
            _print_row(steps[-1])
        pressed = plan.sos_per_step * len(plan.rates) + _WARMUP_SOS
        settle = await _settle(meter, sum(load.acked.values()) + pressed, plan.settle_s)
        lost, duplicated = await _accounting(pool, load)
        connected = load.connected
    result = _result(plan, steps, lost, duplicated, connected, meter)
    return {**result, "settle": settle}


async def _step(
    rate: int,
    plan: BenchPlan,
    load: LoadGenerator,
    sos_ids: list[str],
    secrets: dict[str, str],
    stack: EmbeddedStack,
    pool: asyncpg.Pool,
    meter: Meter,
) -> dict[str, Any]:
    stored_before = meter.counter("telemetry", "carewatch_telemetry_rows")
    rejects_before = meter.counter("ingest", "carewatch_ingest_rejects")
    meter.start()
    sampler = asyncio.create_task(meter.sample_until_cancelled())
    presses = asyncio.create_task(_press_sos(sos_ids, plan.step_s, stack, secrets))
    offered: StepLoad = await load.drive(rate, plan.step_s)
    meter.stop()  # CPU over the offered load only, not over the drain after it
    pressed = await presses
    stored_in_step = meter.counter("telemetry", "carewatch_telemetry_rows") - stored_before
    lag = await _lag(stack, pool)
    await _drain(meter, stored_before, offered.events_acked + len(sos_ids), plan.drain_s)
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    latencies = await _sos_latencies(pool, pressed, plan.drain_s)
    received = await _sos_received(pool, pressed)
    return {
        "target_events_per_s": rate,
        "offered_events_per_s": round(offered.offered_events_per_s, 1),
        "acked_events": offered.events_acked,
        "publish_errors": offered.errors,
        "sustained_events_per_s": round(stored_in_step / offered.seconds, 1),
        "offered_messages_per_s": round(offered.offered_messages_per_s, 1),
        "sustained_messages_per_s": round(stored_in_step / plan.batch / offered.seconds, 1),
        "kafka_lag_at_end": lag,
        "dlq": meter.counter("ingest", "carewatch_ingest_rejects") - rejects_before,
        "sos_sent": len(pressed),
        "sos_alerted": len(latencies),
        "sos_latency_ms": percentiles(latencies),
        "sos_to_ingest_ms": percentiles(received),
        "processes": meter.usage(),
    }


async def _press_sos(
    devices: list[str], seconds: float, stack: EmbeddedStack, secrets: dict[str, str]
) -> dict[str, float]:
    """One SOS per device, spread over the step; returns each press's wall-clock time."""
    pressed: dict[str, float] = {}
    gap = seconds / (len(devices) + 1)
    for device in devices:
        await asyncio.sleep(gap)
        client = MqttClient(
            url=with_login(stack.mqtt_url, device, secrets[device]),
            client_id=device,
            protocol=stack.mqtt_protocol,
        )
        await client.start()
        try:
            body = orjson.dumps({"kind": "sos", "msg_id": f"{device}-1"})
            pressed[device] = time.time()
            await client.publish(alarm_topic_for(device), body)
        finally:
            await client.stop()
    return pressed


async def _drain(meter: Meter, before: float, expected: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if meter.counter("telemetry", "carewatch_telemetry_rows") - before >= expected:
            return
        await asyncio.sleep(0.2)


async def _sos_latencies(
    pool: asyncpg.Pool, pressed: dict[str, float], within: float
) -> list[float]:
    deadline = time.monotonic() + within
    while True:
        async with pool.acquire() as conn:
            opened = await store.sos_opened_at(conn, list(pressed))
        if len(opened) >= len(pressed) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    return [(at.timestamp() - pressed[device]) * 1000 for device, at in opened.items()]


async def _sos_received(pool: asyncpg.Pool, pressed: dict[str, float]) -> list[float]:
    """Press -> ingest's receive time (the stored event's `received_at`): the part of the
    SOS latency spent before Kafka (publish, broker, ingest's queue)."""
    async with pool.acquire() as conn:
        received = await event_store.received_at(conn, list(pressed), "sos")
    return [(at.timestamp() - pressed[device]) * 1000 for device, at in received.items()]


async def _lag(stack: EmbeddedStack, pool: asyncpg.Pool) -> dict[str, int]:
    """Records in carewatch.events.v1 not yet consumed: telemetry by its committed offsets,
    rules by the positions it stores in PostgreSQL."""
    settings = stack.settings
    progress = await group_progress(stack.kafka_bootstrap, settings.telemetry_group, EVENTS_TOPIC)
    telemetry = sum(max(0, end - done) for end, done in progress.values())
    async with pool.acquire() as conn:
        done = await stored_positions(conn, settings.rules_group, EVENTS_TOPIC)
    rules = sum(max(0, end - done.get(p, 0)) for p, (end, _) in progress.items())
    return {"telemetry": telemetry, "rules": rules}


async def _settle(meter: Meter, expected: int, within: float) -> dict[str, Any]:
    """After the last step, wait until telemetry has stored everything acknowledged: a
    step past what the pipeline sustains leaves a backlog in the broker's queue for ingest,
    which is late, not lost. Ends when all is stored, when nothing has been stored for
    `_STUCK_S` (what is missing then is lost), or after `within` s (still queued then,
    counted as lost too: `settled` false says so)."""
    began = time.monotonic()
    backlog = expected - meter.counter("telemetry", "carewatch_telemetry_rows")
    print(f"storing the backlog left in the broker ({backlog:.0f} events)…", flush=True)
    stored, moved = 0.0, began
    while time.monotonic() - began < within and time.monotonic() - moved < _STUCK_S:
        now = meter.counter("telemetry", "carewatch_telemetry_rows")
        if now >= expected:
            break
        if now > stored:
            stored, moved = now, time.monotonic()
        await asyncio.sleep(1.0)
    left = expected - meter.counter("telemetry", "carewatch_telemetry_rows")
    return {
        "backlog_events": max(0, int(backlog)),
        "seconds": round(time.monotonic() - began, 1),
        "settled": left <= 0,
    }


async def _accounting(pool: asyncpg.Pool, load: LoadGenerator) -> tuple[int, int]:
    async with pool.acquire() as conn:
        stored = await event_store.count_by_device(conn, list(load.sent))
    lost = sum(max(0, acked - stored.get(d, 0)) for d, acked in load.acked.items())
    duplicated = sum(max(0, stored.get(d, 0) - sent) for d, sent in load.sent.items())
    return lost, duplicated


class Meter:
    """CPU and peak RSS per process group, and the services' counters."""

    GROUPS = ("ingest", "alarms", "rules", "telemetry", "watch-gateway", "postgres", "tansu",
              "mosquitto", "load generator")  # fmt: skip

    def __init__(self, children: dict[str, tuple[ChildProcess, int]]) -> None:
        self._children = children
        self._cpu0: dict[tuple[str, int, float], float] = {}
        self._t0 = 0.0
        self._cpu1: dict[tuple[str, int, float], float] | None = None
        self._t1 = 0.0
        self._peak: dict[str, int] = {}
        self._listed: dict[str, list[psutil.Process]] = {}
        self._listed_at = -math.inf

    def counter(self, service: str, name: str) -> float:
        """Summed over the service's processes (`ingest`, `ingest-2`, …); their CPU is
        grouped by command line (`_group`), so it is summed already."""
        return scrape_service(self._children, service).get(name, 0.0)

    def start(self) -> None:
        self._cpu0 = self._cpu()
        self._t0 = time.monotonic()
        self._cpu1 = None
        self._peak = {}

    def stop(self) -> None:
        """End the CPU window (peak RSS keeps being sampled until the step ends)."""
        self._cpu1 = self._cpu()
        self._t1 = time.monotonic()

    async def sample_until_cancelled(self) -> None:
        # In a thread: a sweep took tens of ms of this loop a second (listing the stack's
        # processes in /proc, then asking each), in which the load generator sent nothing
        # and an SOS press waited to be published (py-spy at 10,000 msg/s: a quarter of
        # this process's busy samples).
        while True:
            for group, rss in (await asyncio.to_thread(self._rss)).items():
                self._peak[group] = max(self._peak.get(group, 0), rss)
            await asyncio.sleep(1.0)

    def usage(self) -> dict[str, dict[str, float]]:
        if self._cpu1 is None:
            self.stop()
        assert self._cpu1 is not None
        wall = self._t1 - self._t0
        used: dict[str, float] = {}
        for key, seconds in self._cpu1.items():
            group = key[0]  # a process that started during the step counts from 0:
            used[group] = used.get(group, 0.0) + seconds - self._cpu0.get(key, 0.0)
        return {
            group: {
                "cpu_pct": round(100 * used[group] / wall, 1),
                "peak_rss_mb": round(self._peak.get(group, 0) / 2**20, 1),
            }
            for group in self.GROUPS
            if group in used
        }

    def _processes(self) -> dict[str, list[psutil.Process]]:
        me = psutil.Process()
        groups: dict[str, list[psutil.Process]] = {"load generator": [me]}
        for proc in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                group = _group(proc.cmdline())
                if group:
                    groups.setdefault(group, []).append(proc)
        return groups

    def _cpu(self) -> dict[tuple[str, int, float], float]:
        """CPU seconds per (group, pid, start time). Per process, not per group: PostgreSQL
        backends come and go, and a group's sum would shrink when one exits. A process's
        reaped children are counted with it (the postmaster's exited backends)."""
        out: dict[tuple[str, int, float], float] = {}
        for group, procs in self._processes().items():
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    used = t.user + t.system + t.children_user + t.children_system
                    out[(group, proc.pid, proc.create_time())] = used
        return out

    def _rss(self) -> dict[str, int]:
        # Finding the processes reads every /proc entry: done every 10 s, not every sweep
        # (a PostgreSQL backend started meanwhile counts from the next look).
        if time.monotonic() - self._listed_at > 10.0:
            self._listed, self._listed_at = self._processes(), time.monotonic()
        out: dict[str, int] = {}
        for group, procs in self._listed.items():
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    out[group] = out.get(group, 0) + proc.memory_info().rss
        return out


def _group(cmdline: list[str]) -> str | None:
    text = " ".join(cmdline)
    for service in ("watch-gateway", "telemetry", "rules", "alarms", "ingest"):
        if f"carewatch.cli {service}" in text:
            return service
    for name in ("postgres", "tansu", "mosquitto"):
        if name in text:
            return name
    return None


def _result(
    plan: BenchPlan,
    steps: list[dict[str, Any]],
    lost: int,
    duplicated: int,
    connected: int,
    meter: Meter,
) -> dict[str, Any]:
    # Sustained: the highest step whose offered load was stored within the step (95 %).
    kept_up = [s for s in steps if s["sustained_events_per_s"] >= 0.95 * s["offered_events_per_s"]]
    best = max(kept_up or steps, key=lambda s: s["sustained_events_per_s"])
    worst = [s["sos_latency_ms"]["p99"] for s in steps]
    return {
        "sustained_events_per_s": best["sustained_events_per_s"],
        "sustained_messages_per_s": best["sustained_messages_per_s"],
        "sos_latency_ms": best["sos_latency_ms"],
        # The slowest step's SOS p99 (None: a step where no SOS alerted at all).
        "worst_sos_p99_ms": None if None in worst else max(worst, default=None),
        "lost": lost,
        "duplicated": duplicated,
        "devices_connected": connected,
        "plan": {
            "rates": list(plan.rates),
            "step_s": plan.step_s,
            "devices": plan.load_devices,
            "batch": plan.batch,
            "sos_per_step": plan.sos_per_step,
            "ingests": plan.ingests,
            "workers": plan.workers,
        },
        "steps": steps,
        "machine": _machine(),
        "at": datetime.now(UTC).isoformat(),
    }


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


_HEADER = (
    f"{'target/s':>9} {'offered/s':>10} {'stored/s':>9} {'lag':>7} {'dlq':>5} "
    f"{'sos p50':>8} {'p95':>6} {'p99':>6} {'max':>6} {'ingest p99':>10} "
    f"{'cpu% ingest/tele/rules/pg/load':>32}"
)


def _print_row(step: dict[str, Any]) -> None:
    lat = step["sos_latency_ms"]
    procs = step["processes"]
    cpu = "/".join(
        f"{procs.get(g, {}).get('cpu_pct', 0):.0f}"
        for g in ("ingest", "telemetry", "rules", "postgres", "load generator")
    )
    lag = sum(step["kafka_lag_at_end"].values())
    print(
        f"{step['target_events_per_s']:>9} {step['offered_events_per_s']:>10.0f} "
        f"{step['sustained_events_per_s']:>9.0f} {lag:>7} {step['dlq']:>5.0f} "
        f"{_ms(lat['p50']):>8} {_ms(lat['p95']):>6} {_ms(lat['p99']):>6} {_ms(lat['max']):>6} "
        f"{_ms(step['sos_to_ingest_ms']['p99']):>10} {cpu:>32}",
        flush=True,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _print_table(result: dict[str, Any]) -> None:
    lat = result["sos_latency_ms"]
    print(
        f"\nsustained {result['sustained_events_per_s']:.0f} events/s"
        f" ({result['sustained_messages_per_s']:.0f} messages/s) · SOS->alert at that load"
        f" p50 {_ms(lat['p50'])} / p95 {_ms(lat['p95'])} / p99 {_ms(lat['p99'])} /"
        f" max {_ms(lat['max'])} ms · worst step's p99 {_ms(result['worst_sos_p99_ms'])} ms"
        f" · lost {result['lost']} · duplicated {result['duplicated']}"
        f" · devices connected {result['devices_connected']}"
    )
    settle = result["settle"]
    done = "stored" if settle["settled"] else "NOT all stored"
    print(
        f"the backlog the last step left in the broker ({settle['backlog_events']} events)"
        f" {done} {settle['seconds']:.0f} s after the load stopped"
    )


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["steps"]
    offered = [s["offered_events_per_s"] for s in steps]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    top.plot(offered, [s["sustained_events_per_s"] for s in steps], "o-", label="stored")
    top.plot(offered, offered, ":", color="grey", label="offered")
    top.set_ylabel("events/s")
    top.legend()
    top.set_title("carewatch bench: " + result["machine"]["cpu_model"][:40])
    for key in ("p50", "p99", "max"):
        values = [s["sos_latency_ms"][key] for s in steps]
        bottom.plot(
            offered, [v if v is not None else float("nan") for v in values], "o-", label=key
        )
    bottom.set_ylabel("SOS -> alert, ms")
    bottom.set_xlabel("offered events/s")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
