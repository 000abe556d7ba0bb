"""`carewatch up --ingest 2 --workers 2` under load: workers killed and added (their consumer
groups rebalance), an ingest killed, and still every acknowledged event stored once and
every SOS alerted once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pytest

from alerts import event_store
from carewatch.simulate import register_fleet
from carewatch.supervisor import Supervisor
from carewatch.up import Services, scrape, service_of, start_all, start_replica
from devices.codecs.native import topic_for
from plumbing.db import connect_pool
from plumbing.mqtt import MqttClient, MqttError, with_login
from plumbing.settings import Settings
from simulators.load import LoadGenerator
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RATE = 400  # events/s offered while processes die and join: enough for every partition
DEVICES = 40
PRESSES = 40  # SOS devices available; one is pressed every PRESS_EVERY_S while it runs
PRESS_EVERY_S = 0.5


async def test_killing_and_adding_processes_under_load_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    tag = uuid.uuid4().hex[:6]
    async with AsyncExitStack() as exits:
        started = await start_all(exits, settings, gateway_port=0, ingests=2, workers=2)
        children = started.children
        scaled = {"ingest", "ingest-2", "rules", "rules-2", "telemetry", "telemetry-2"}
        assert scaled <= set(children)
        assert len({port for _, port in children.values()}) == len(children)
        processes = {name: child for name, (child, _) in children.items()}
        supervisor = await exits.enter_async_context(Supervisor(children=processes))
        pool = await connect_pool(started.stack.database_url, min_size=1, max_size=2)
        exits.push_async_callback(pool.close)

        load_ids = [f"scale-{tag}-{n:03d}" for n in range(DEVICES)]
        sos_ids = [f"scale-{tag}-sos-{n:03d}" for n in range(PRESSES)]
        secrets = await register_fleet(settings, load_ids + sos_ids, started.stack.mqtt_url)
        load = LoadGenerator(
            url=started.stack.mqtt_url,
            protocol=started.stack.mqtt_protocol,
            devices={d: secrets[d] for d in load_ids},
            batch=2,
        )
        await load.connect()
        exits.push_async_callback(load.close)

        done = asyncio.Event()
        driving = asyncio.create_task(_drive(load, done))
        pressing = asyncio.create_task(_press(started, sos_ids, secrets, done))
        try:
            added = await _kill_and_add(exits, started, supervisor, pool, load_ids)
        finally:
            done.set()
            await driving
            pressed = await pressing
        assert sum(load.acked.values()) > 2000 and len(pressed) >= 10

        await eventually(lambda: _settled(pool, load, pressed), within=90)
        stored = await _stored(pool, load)
        lost = sum(max(0, acked - stored.get(d, 0)) for d, acked in load.acked.items())
        doubled = sum(max(0, stored.get(d, 0) - sent) for d, sent in load.sent.items())
        assert (lost, doubled) == (0, 0)
        async with pool.acquire() as conn:
            alerts = await conn.fetch(
                "SELECT device_id, count FROM alerts WHERE kind = 'sos' AND device_id = ANY($1)",
                pressed,
            )
        # One alert per press, raised once (a second application would count 2).
        assert sorted((r["device_id"], r["count"]) for r in alerts) == [(d, 1) for d in pressed]

        # The load was shared by both ingests; the added workers took partitions over from
        # the others and consumed from them; the rules process never killed was handed
        # other partitions as processes died and joined.
        for name in ("ingest", "ingest-2"):
            assert scrape(children[name][1]).get("carewatch_ingest_events", 0) > 0, name
        for name in added:
            assert _records_read(children[name][1], name) > 0, name
        joined = _assignments(started.logs / "rules-3.log")
        assert joined and joined[-1], joined
        # A rebalance reaches each member as it rejoins: the process never killed may be
        # handed its new partitions seconds after the one that joined read from its own.
        await eventually(lambda: _reassigned(started.logs / "rules.log"), within=30)


async def _kill_and_add(
    exits: AsyncExitStack,
    started: Services,
    supervisor: Supervisor,
    pool: asyncpg.Pool,
    devices: list[str],
) -> list[str]:
    """While the load runs: kill -9 a rules and a telemetry process, then an ingest (the
    supervisor restarts each), then add a third rules and telemetry process (they stop
    with `exits`). Each step waits for the stored events to grow, so it happens under
    load; returns the names of the added processes."""
    await _more_stored(pool, devices, 500)
    for name in ("rules-2", "telemetry-2"):
        _kill(started, name)
    await eventually(lambda: _restarted(supervisor, "rules-2", "telemetry-2"), within=30)
    await _more_stored(pool, devices, 500)
    _kill(started, "ingest-2")
    await eventually(lambda: _restarted(supervisor, "ingest-2"), within=30)
    async with asyncio.TaskGroup() as group:
        joining = [
            group.create_task(start_replica(exits, started, service))
            for service in ("rules", "telemetry")
        ]
    added = [task.result()[0] for task in joining]
    # Under load until both took over some events partitions and read from them.
    await eventually(lambda: _consumed(started, added), within=45)
    await _more_stored(pool, devices, 300)
    return added


def _kill(started: Services, name: str) -> None:
    child, _ = started.children[name]
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)


async def _restarted(supervisor: Supervisor, *names: str) -> bool:
    children = supervisor.health()["children"]
    return all(children[n]["restarts_10min"] >= 1 and children[n]["running"] for n in names)


async def _consumed(started: Services, names: list[str]) -> bool:
    for name in names:
        read = await asyncio.to_thread(_records_read, started.children[name][1], name)
        if not read:
            return False
    return True


def _records_read(port: int, name: str) -> float:
    """Records process `name`'s events consumer read (`rules-3`: worker `rules`), not its
    other consumers': a rules process also reads the alarm lane's topic, in a group that
    forms seconds sooner."""
    worker = {"worker": service_of(name)}
    return scrape(port, worker).get("carewatch_worker_records", 0.0)


async def _more_stored(pool: asyncpg.Pool, devices: list[str], more: int) -> None:
    """Until `more` events more than now are stored: the pipeline is moving."""
    before = sum((await _stored_for(pool, devices)).values())

    async def grown() -> bool:
        return sum((await _stored_for(pool, devices)).values()) >= before + more

    await eventually(grown, within=60)


async def _stored_for(pool: asyncpg.Pool, devices: list[str]) -> dict[str, int]:
    async with pool.acquire() as conn:
        return await event_store.count_by_device(conn, devices)


async def _stored(pool: asyncpg.Pool, load: LoadGenerator) -> dict[str, int]:
    return await _stored_for(pool, list(load.sent))


async def _settled(pool: asyncpg.Pool, load: LoadGenerator, pressed: list[str]) -> bool:
    """Everything acknowledged is stored and every press has its alert."""
    stored = await _stored(pool, load)
    if any(stored.get(d, 0) < acked for d, acked in load.acked.items()):
        return False
    async with pool.acquire() as conn:
        alerted = await conn.fetchval(
            "SELECT count(DISTINCT device_id) FROM alerts WHERE kind = 'sos'"
            " AND device_id = ANY($1)",
            pressed,
        )
    return bool(alerted == len(pressed))


async def _drive(load: LoadGenerator, done: asyncio.Event) -> None:
    """The load, in 2 s steps, until `done`."""
    while not done.is_set():
        await load.drive(RATE, 2.0)


async def _press(
    started: Services, devices: list[str], secrets: dict[str, str], done: asyncio.Event
) -> list[str]:
    """An SOS from the next device every PRESS_EVERY_S until `done`, each resent until the
    broker acknowledges it (the same message: its msg_id); returns the pressed devices."""
    pressed = []
    for device in devices:
        if done.is_set():
            break
        await _until_acked(started, device, secrets[device])
        pressed.append(device)
        try:
            await asyncio.wait_for(done.wait(), PRESS_EVERY_S)
        except TimeoutError:
            pass
    return pressed


async def _until_acked(started: Services, device: str, secret: str) -> None:
    stack = started.stack
    body = orjson.dumps(
        {"kind": "sos", "ts": datetime.now(UTC).isoformat(), "msg_id": f"{device}-sos"}
    )
    deadline = time.monotonic() + 30
    while True:
        client = MqttClient(
            url=with_login(stack.mqtt_url, device, secret),
            client_id=device,
            protocol=stack.mqtt_protocol,
        )
        try:
            await client.start()
            await asyncio.wait_for(client.publish(topic_for(device), body), 10)
            return
        except (MqttError, OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
        finally:
            await client.stop()


async def _reassigned(log: Path) -> bool:
    """Whether a rules process was given more than one set of partitions."""
    return len({tuple(partitions) for partitions in _assignments(log)}) > 1


def _assignments(log: Path) -> list[list[int]]:
    """The partitions of the events topic a rules process was given, each time."""
    found = []
    for line in log.read_bytes().splitlines():
        record = orjson.loads(line) if line.startswith(b"{") else {}
        if record.get("msg") == "partitions assigned" and record.get("worker") == "rules":
            found.append(record["partitions"])
    return found
