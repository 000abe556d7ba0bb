"""`carewatch up`: the whole system on one machine, with embedded defaults.

Starts the embedded services (or uses those given by URL), then the carewatch processes as
children (each its own OS process, as in production: the workers should not share a GIL
with ingest), then the API (creating the first admin user on the first start), optionally a
simulated fleet, shows a live status line, restarts a child
that dies (carewatch/supervisor.py), and on Ctrl-C or SIGTERM stops everything in reverse
order: fleet, API, gateway, ingest (drains and acks), then waits until the workers have read
everything ingest wrote (the embedded Kafka forgets it when it stops), then the workers
(commit), then the services.

`--ingest N` and `--workers N` run several processes of a service (docs/scale-out.md): N
ingests on one shared MQTT subscription, each with a client id of its own, and N rules and
N telemetry processes in their consumer groups. They are named `ingest`, `ingest-2`, …,
each with its own log file and metrics port, and supervised one by one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from alerts import store
from api import audit, users
from api.errors import UserExists
from carewatch.extras import needs_extra
from plumbing.files import write_file
from plumbing.http import HealthServer
from plumbing.kafka import ALARMS_TOPIC, EVENTS_TOPIC, group_lag
from plumbing.logs import setup_logging
from plumbing.settings import Settings

with needs_extra("embedded", "carewatch up"):
    from carewatch.embedded.process import ChildProcess, EmbeddedError, free_port, port_open
    from carewatch.embedded.stack import EmbeddedStack
    from carewatch.supervisor import Supervisor

__all__ = [
    "MAX_INGESTS",
    "SCALED",
    "SHARE_GROUP",
    "Services",
    "check_scale",
    "child_env",
    "replica_name",
    "run_up",
    "scrape",
    "scrape_service",
    "service_of",
    "start_all",
    "start_replica",
    "start_services",
]

log = logging.getLogger(__name__)

# Consumers first, so ingest never writes into a topic nobody reads yet; the alarm fast
# path before ingest, so it sees the first alarm too; the gateway last, so a watch's frame
# always has an ingest to reach.
SERVICES = ("telemetry", "rules", "alarms", "ingest", "watch-gateway")
# The broker account each service logs in with (embedded broker): the fast path reads what
# ingest reads.
_ROLES = {"ingest": "ingest", "alarms": "ingest", "watch-gateway": "gateway"}
# The services that run as several processes (`--ingest N`, `--workers N`).
SCALED = ("telemetry", "rules", "ingest")
# More ingests than this would only fight over the cores of one machine; past it, scale
# out on more machines (docs/scale-out.md).
MAX_INGESTS = 16
# The shared-subscription group of several ingests, unless CAREWATCH_MQTT_SHARE_GROUP names
# one. A single ingest subscribes plainly (plumbing/settings.py says why).
SHARE_GROUP = "carewatch-ingest"


def run_up(
    settings: Settings,
    *,
    simulate: int = 0,
    people: str = "zh",
    ingests: int = 1,
    workers: int = 1,
) -> int:
    """`people`: the simulated devices' residents (`carewatch simulate --people`);
    `ingests`, `workers`: processes of ingest and of each worker (docs/scale-out.md)."""
    setup_logging(level=settings.log_level, fmt="text", process_name="up")
    try:
        return asyncio.run(_up(settings, simulate, people, ingests=ingests, workers=workers))
    except EmbeddedError as exc:
        print(f"carewatch up: {exc}", file=sys.stderr)
        return 1


async def _up(
    settings: Settings, simulate: int, people: str = "zh", *, ingests: int = 1, workers: int = 1
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as exits:
        started = await start_all(
            exits, settings, gateway_port=settings.gateway_port, ingests=ingests, workers=workers
        )
        stack, env, logs, children = started.stack, started.env, started.logs, started.children
        api_url = await start_api(exits, settings, started)
        admin = await _first_admin(stack.database_url, settings.data_dir.resolve())
        if simulate:
            argv = ["simulate", "--devices", str(simulate), "--people", people]
            port = free_port()
            fleet = ChildProcess(
                name="simulate",
                argv=_cli(*argv),
                env={**env, "CAREWATCH_METRICS_PORT": str(port)},
                log_path=logs / "simulate.log",
            )
            await exits.enter_async_context(fleet)
            children["simulate"] = (fleet, port)
        # Entered last, so they stop first: no restarts while everything shuts down.
        processes = {name: child for name, (child, _) in children.items()}
        supervisor = await exits.enter_async_context(Supervisor(children=processes))
        health = await exits.enter_async_context(
            HealthServer(
                host=settings.metrics_host, port=settings.metrics_port, health=supervisor.health
            )
        )
        _print_table(
            stack, children, logs, int(env["CAREWATCH_GATEWAY_PORT"]), health.port, api_url
        )
        print(admin, flush=True)
        _print_hint()
        status = await _watch(stop, stack.database_url, children, supervisor)
        print("\nstopping…", flush=True)
    print("stopped.")
    return status


@dataclass
class Services:
    """The embedded stack and carewatch's services as children, started in order."""

    stack: EmbeddedStack
    env: dict[str, str]  # what the children run with (the gateway's port included)
    logs: Path
    children: dict[str, tuple[ChildProcess, int]]  # process and metrics port, by name


async def start_all(
    exits: AsyncExitStack,
    settings: Settings,
    *,
    gateway_port: int,
    ingests: int = 1,
    workers: int = 1,
) -> Services:
    """The stack, then the services (`start_services`); all stop when `exits` closes.
    `ingests`, `workers`: processes of ingest and of each worker (docs/scale-out.md)."""
    check_scale(settings, ingests=ingests, workers=workers)
    stack = await exits.enter_async_context(EmbeddedStack(settings=settings))
    env = child_env(settings, stack)
    logs = settings.data_dir.resolve() / "logs"
    children = await start_services(
        exits, stack, env, logs, gateway_port=gateway_port, ingests=ingests, workers=workers
    )
    return Services(stack, env, logs, children)


def check_scale(settings: Settings, *, ingests: int, workers: int) -> None:
    """EmbeddedError unless 1 <= ingests <= MAX_INGESTS and 1 <= workers <= the events
    topic's partitions (a worker past them would get no partition: it would only stand by)."""
    if not 1 <= ingests <= MAX_INGESTS:
        raise EmbeddedError(f"--ingest must be 1 to {MAX_INGESTS}, not {ingests}")
    partitions = settings.topic_partitions()
    if not 1 <= workers <= partitions:
        raise EmbeddedError(
            f"--workers must be 1 to {partitions} (the events topic's partitions,"
            f" CAREWATCH_EVENTS_PARTITIONS), not {workers}"
        )


async def start_api(exits: AsyncExitStack, settings: Settings, started: Services) -> str:
    """Start the API and console as a child, after the pipeline (so an alert the API
    shows is one the workers can change too), then the notifier; records and returns
    the API's URL."""
    env = started.env
    env["CAREWATCH_API_PORT"] = str(await _port_for("the API", settings.api_port))
    started.children["api"] = await _start_service(exits, "api", env, started.logs)
    # The notifier writes the API's address into its ack links, so it starts after it.
    started.children["notifier"] = await _start_service(exits, "notifier", env, started.logs)
    api_url = f"http://{_loopback(settings.api_host)}:{env['CAREWATCH_API_PORT']}/"
    started.stack.record(api_url=api_url)
    return api_url


async def start_services(
    exits: AsyncExitStack,
    stack: EmbeddedStack,
    env: dict[str, str],
    logs: Path,
    *,
    gateway_port: int,
    ingests: int = 1,
    workers: int = 1,
) -> dict[str, tuple[ChildProcess, int]]:
    """Start the carewatch services as children, in order, each healthy before the next;
    they stop when `exits` closes. Returns each one's process and metrics port, by name
    (`replica_name`); the watch gateway's TCP port is in env["CAREWATCH_GATEWAY_PORT"]."""
    if ingests > 1 and not stack.mqtt_shared:
        raise EmbeddedError(
            f"--ingest {ingests} needs an MQTT 5 broker with shared subscriptions"
            f" (mosquitto), and this one ({stack.mqtt_protocol}) has none"
        )
    if ingests > 1:
        env["CAREWATCH_MQTT_SHARE_GROUP"] = stack.settings.mqtt_share_group or SHARE_GROUP
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    env["CAREWATCH_GATEWAY_PORT"] = str(await _port_for("the watch gateway", gateway_port))
    count = {"ingest": ingests, "telemetry": workers, "rules": workers}
    children: dict[str, tuple[ChildProcess, int]] = {}
    for service in SERVICES:
        if service == "ingest":
            # Stops after every ingest and before the workers: they read all ingest wrote.
            exits.push_async_callback(_drain_workers, stack.settings, stack.kafka_bootstrap)
        envs = {
            replica_name(service, i): _service_env(stack, env, service, i, count.get(service, 1))
            for i in range(1, count.get(service, 1) + 1)
        }
        children.update(await _start_together(exits, envs, logs))
    return children


async def _start_together(
    exits: AsyncExitStack, envs: dict[str, dict[str, str]], logs: Path
) -> dict[str, tuple[ChildProcess, int]]:
    """Start the processes of one service at once (each with its env), all healthy when
    this returns; if one fails, the others' starts are cancelled and its error raised."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = {
                name: group.create_task(_start_service(exits, name, env, logs))
                for name, env in envs.items()
            }
    except* EmbeddedError as failed:
        raise failed.exceptions[0] from None
    return {name: task.result() for name, task in tasks.items()}


async def start_replica(
    exits: AsyncExitStack, started: Services, service: str
) -> tuple[str, tuple[ChildProcess, int]]:
    """One more process of a worker service (`telemetry`, `rules`): it joins its consumer
    group, which rebalances. Added to `started.children`; stops when `exits` closes. (More
    ingests need the shared subscription `start_services` sets up from the start.)"""
    if service not in ("telemetry", "rules"):
        raise ValueError(f"only a worker is added to a running stack, not {service!r}")
    index = 1 + sum(1 for name in started.children if service_of(name) == service)
    name = replica_name(service, index)
    env = _service_env(started.stack, started.env, service, index, index)
    started.children[name] = await _start_service(exits, name, env, started.logs)
    return name, started.children[name]


def replica_name(service: str, index: int) -> str:
    """`ingest`, `ingest-2`, …: the first process of a service keeps its name (and log)."""
    return service if index == 1 else f"{service}-{index}"


def service_of(name: str) -> str:
    """The service a child runs: `ingest-2` -> `ingest`, `watch-gateway` -> itself."""
    base, sep, index = name.rpartition("-")
    return base if sep and index.isdigit() else name


def _service_env(
    stack: EmbeddedStack, env: dict[str, str], service: str, index: int, count: int
) -> dict[str, str]:
    """What one process of `service` runs with: its role's broker account, and for one of
    several ingests a client id of its own (`<id>-<index>`: with ingest's `-alarms` session
    still distinct from every other ingest's ids)."""
    # Each service logs in to the broker with its role's account.
    url = stack.mqtt_urls.get(_ROLES.get(service, ""), stack.mqtt_url)
    extra = {"CAREWATCH_MQTT_URL": url}
    if service == "ingest" and count > 1:
        extra["CAREWATCH_INGEST_CLIENT_ID"] = f"{stack.settings.ingest_client_id}-{index}"
    return {**env, **extra}


async def _drain_workers(settings: Settings, bootstrap: str, within: float = 60.0) -> None:
    """Wait until the workers have consumed everything ingest wrote (at most `within` s).

    The embedded Kafka keeps records in memory only: what the workers have not read when
    it stops is gone, acknowledged SOS presses included. The lag counts to each
    partition's last record (plumbing/kafka.py `end_offsets`: tansu's own answer stops at
    its last batch's first record). Two readings of no lag in a row, as slack."""
    groups = (
        (settings.telemetry_group, EVENTS_TOPIC),
        (settings.rules_group, EVENTS_TOPIC),
        (f"{settings.rules_group}-alarms", ALARMS_TOPIC),
    )
    deadline = time.monotonic() + within
    quiet = 0
    while quiet < 2:
        try:
            lag = sum([await group_lag(bootstrap, group, topic) for group, topic in groups])
        except KafkaError as exc:
            log.warning("cannot tell what the workers have left to read: %r", exc)
            return
        quiet = quiet + 1 if lag == 0 else 0
        if time.monotonic() > deadline:
            log.warning("workers still had %d records to read when time ran out", lag)
            return
        await asyncio.sleep(0.25)
    log.info("the workers have read everything ingest wrote")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "carewatch.cli", *args]


def child_env(settings: Settings, stack: EmbeddedStack) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CAREWATCH_DATA_DIR": str(settings.data_dir.resolve()),
            "CAREWATCH_DATABASE_URL": stack.database_url,
            "CAREWATCH_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "CAREWATCH_MQTT_URL": stack.mqtt_url,
            "CAREWATCH_MQTT_PROTOCOL": stack.mqtt_protocol,
            "CAREWATCH_LOG_FORMAT": "json",
        }
    )
    if not stack.mqtt_shared:
        env["CAREWATCH_MQTT_SHARE_GROUP"] = ""
    return env


async def _start_service(
    exits: AsyncExitStack, name: str, env: dict[str, str], logs: Path
) -> tuple[ChildProcess, int]:
    port = free_port()
    child = ChildProcess(
        name=name,
        argv=_cli(service_of(name)),
        env={**env, "CAREWATCH_METRICS_PORT": str(port)},
        log_path=logs / f"{name}.log",
    )
    await exits.enter_async_context(child)
    deadline = time.monotonic() + 60
    while not await asyncio.to_thread(_healthy, port):
        if not child.running:
            raise child.error(f"exited with code {child.returncode} while starting")
        if time.monotonic() > deadline:
            raise child.error("not healthy after 60 s")
        await asyncio.sleep(0.2)
    return child, port


async def _port_for(what: str, wanted: int) -> int:
    """The configured port, or any free one if something else holds it."""
    if wanted and not await port_open("127.0.0.1", wanted):
        return wanted
    port = free_port()
    if wanted:
        log.warning("port %d is taken; %s listens on %d instead", wanted, what, port)
    return port


def _loopback(host: str) -> str:
    """Where this machine reaches a server listening on `host`."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


async def _first_admin(database_url: str, data_dir: Path) -> str:
    """On the first start (no admin in the database) create the user `admin`, keep its
    password in `<data_dir>/admin-password` (0600) and say it once; later, say where it is."""
    path = data_dir / "admin-password"
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            if await users.has_admin(conn):
                password = None
            else:
                user, password = await users.add_user(conn, name="admin", role="admin")
                await audit.record(
                    conn, actor="up", action="user.create", target="user:admin",
                    before=None, after=user.public(),
                )  # fmt: skip
                # Before the commit: no admin is created whose password is not kept.
                await asyncio.to_thread(write_file, path, f"{password}\n".encode())
    except UserExists:  # a user named admin who is no admin
        return "admin password: no admin user, and the name admin is taken (carewatch users add)"
    finally:
        await conn.close()
    if password is not None:
        return f"admin password: {password} (kept in {path}, mode 0600)"
    if path.exists():
        return f"admin password: kept in {path}"
    return "admin password: an admin user exists (its password is not kept here)"


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _print_table(
    stack: EmbeddedStack,
    children: dict[str, tuple[ChildProcess, int]],
    logs: Path,
    gateway_port: int,
    health_port: int,
    api_url: str,
) -> None:
    print("carewatch is up:")
    print(f"  {'up':<13} health http://127.0.0.1:{health_port}/healthz (restarts what dies)")
    for service, where in stack.describe():
        print(f"  {service:<13} {where}")
    for name, (_child, port) in children.items():
        log_path = logs / (name + ".log")
        if name == "api":  # its URL alone on the line: tools and people copy it from there
            print(f"  {name:<13} {api_url}")
            print(f"  {'':<13} console: open {api_url} and sign in as admin (password below)")
            print(f"  {'':<13} docs {api_url}api/v1/docs   log {log_path}")
            continue
        metrics = f"metrics http://127.0.0.1:{port}/metrics" if port else "simulated devices"
        print(f"  {name:<13} {metrics}   log {log_path}")
    print(f"  watches connect over TCP to port {gateway_port}")


def _print_hint() -> None:
    print("see alerts: carewatch alerts list --status open      stop: Ctrl-C", flush=True)


async def _watch(
    stop: asyncio.Event,
    db_url: str,
    children: dict[str, tuple[ChildProcess, int]],
    supervisor: Supervisor,
) -> int:
    """Show a status line until stopped (children that die are restarted meanwhile)."""
    conn = await asyncpg.connect(db_url)
    tty = sys.stdout.isatty()
    try:
        last_print = 0.0
        while not stop.is_set():
            line = " · ".join(
                filter(None, [await _status_line(conn, children), supervisor.summary()])
            )
            if tty:
                print("\r" + line.ljust(100), end="", flush=True)
            elif time.monotonic() - last_print > 10:
                print(line, flush=True)
                last_print = time.monotonic()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
        return 0
    finally:
        await conn.close()


async def _status_line(
    conn: asyncpg.Connection, children: dict[str, tuple[ChildProcess, int]]
) -> str:
    ingest = await asyncio.to_thread(scrape_service, children, "ingest")
    telemetry = await asyncio.to_thread(scrape_service, children, "telemetry")
    open_alerts = await store.count_alerts(conn, "open")
    return (
        f"events in {ingest.get('carewatch_ingest_events', 0):.0f}"
        f" · stored {telemetry.get('carewatch_telemetry_rows', 0):.0f}"
        f" · rejected {ingest.get('carewatch_ingest_rejects', 0):.0f}"
        f" · alerts open {open_alerts}"
    )


def scrape_service(children: dict[str, tuple[ChildProcess, int]], service: str) -> dict[str, float]:
    """Each counter summed over every process of `service` (`ingest`, `ingest-2`, …)."""
    total: dict[str, float] = {}
    for name, (_child, port) in children.items():
        if service_of(name) == service:
            for counter, value in scrape(port).items():
                total[counter] = total.get(counter, 0.0) + value
    return total


def scrape(port: int, labels: Mapping[str, str] | None = None) -> dict[str, float]:
    """Sum of each counter's samples on a process's /metrics (empty if unreachable); with
    `labels`, of the samples that carry those labels only."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    wanted = (labels or {}).items()
    return {
        family.name: sum(
            s.value
            for s in family.samples
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in wanted)
        )
        for family in text_string_to_metric_families(text)
    }
