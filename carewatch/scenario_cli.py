"""`carewatch scenario list | play`: the scripted scenarios against a running system.

`play` registers a new device for the scenario (and a resident with the scenario's rule
overrides), publishes its steps over MQTT as that device, lets `advance` steps pass in real
time (the rules worker's timers do the rest, every CAREWATCH_RULES_TICK_S), and with
`--check` waits until the device's alerts are exactly the scenario's `expect`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from datetime import timedelta
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from alerts import store
from alerts.rules.config import DEFAULTS_PATH, check
from carewatch.broker_accounts import put_accounts, wait_for_account
from devices import registry, residents
from devices.broker_auth import device_account
from devices.codecs.native import topic_for
from plumbing.db import connect_pool
from plumbing.mqtt import MqttClient, with_login
from plumbing.settings import Settings
from simulators.scenario import (
    SCENARIO_DIR,
    Scenario,
    ScenarioError,
    load_scenario,
    play,
    scenario_files,
)

__all__ = ["add_parser"]

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    scenario = sub.add_parser("scenario", help="scripted scenarios (simulators/scenarios/)")
    actions = scenario.add_subparsers(metavar="ACTION", required=True)
    actions.add_parser("list", help="the scenarios and what each expects").set_defaults(run=_list)
    run = actions.add_parser("play", help="play one as a new device against the running system")
    run.add_argument("scenario", help="a scenario name (see `list`) or a YAML file")
    run.add_argument("--check", action="store_true", help="wait for exactly the expected alerts")
    run.add_argument("--within", type=float, default=180.0, help="seconds --check waits")
    run.set_defaults(run=_play)


def _list(_args: argparse.Namespace, _settings: Settings) -> int:
    for path in scenario_files():
        scenario = load_scenario(path)
        expects = ", ".join(f"{e.kind} {e.status}" for e in scenario.expect)
        print(f"{scenario.name:<20} expects {expects}")
    return 0


def _play(args: argparse.Namespace, settings: Settings) -> int:
    path: Traversable = Path(args.scenario)
    if not Path(args.scenario).suffix:  # a name: one of the shipped scenarios
        path = SCENARIO_DIR / f"{args.scenario}.yaml"
    try:
        scenario = load_scenario(path)
    except (ScenarioError, OSError) as exc:
        print(f"carewatch: {exc}", file=sys.stderr)
        return 2
    problems = check(DEFAULTS_PATH.read_text(), {scenario.name: scenario.resident.overrides})
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    return asyncio.run(_run(scenario, settings, check_within=args.within if args.check else None))


async def _run(scenario: Scenario, settings: Settings, *, check_within: float | None) -> int:
    pool = await connect_pool(settings.require_database_url(), min_size=1, max_size=2)
    try:
        device, secret = await _register(pool, scenario, settings)
        url = settings.require_mqtt_url("devices")
        await wait_for_account(
            url, device, secret, client_id=device, protocol=settings.mqtt_protocol
        )
        client = MqttClient(
            url=with_login(url, device, secret), client_id=device, protocol=settings.mqtt_protocol
        )
        await client.start()
        try:
            print(f"{scenario.name}: playing as device {device}", flush=True)
            await play(scenario, publish=_publisher(client, device), advance=_wait)
        finally:
            await client.stop()
        if check_within is None:
            return 0
        return await _check(pool, scenario, device, check_within)
    finally:
        await pool.close()


async def _register(pool: asyncpg.Pool, scenario: Scenario, settings: Settings) -> tuple[str, str]:
    device = f"scenario-{scenario.name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    async with pool.acquire() as conn:
        async with conn.transaction():
            resident = None
            if scenario.resident.overrides:
                resident = await residents.add_resident(
                    conn, name=f"scenario {scenario.name}", timezone=scenario.resident.timezone
                )
                await residents.set_rule_overrides(conn, resident, scenario.resident.overrides)
            _, secret = await registry.add_device(
                conn, device_id=device, format="native", resident_id=resident
            )
    assert secret is not None  # native devices log in themselves
    account = device_account(device, "native", device)
    assert account is not None
    print(await put_accounts(settings, [(account, secret)]), file=sys.stderr)
    return device, secret


def _publisher(client: MqttClient, device: str) -> Any:
    async def publish(payload: dict[str, Any]) -> None:
        await client.publish(topic_for(device), orjson.dumps(payload), qos=1)
        print(f"  sent {payload['kind']} dated {payload['ts']}", flush=True)

    return publish


async def _wait(by: timedelta) -> None:
    print(f"  letting {by} pass without events (the timers run meanwhile)", flush=True)
    await asyncio.sleep(by.total_seconds())


async def _check(pool: asyncpg.Pool, scenario: Scenario, device: str, within: float) -> int:
    wanted = sorted((e.kind, e.status, e.count) for e in scenario.expect)
    deadline = time.monotonic() + within
    while True:
        async with pool.acquire() as conn:
            rows = await store.alerts_of_device(conn, device)
        got = sorted((r["kind"], r["status"], r["count"]) for r in rows)
        if got == wanted:
            print(f"{scenario.name}: alerts as expected: {got}")
            return 0
        if time.monotonic() > deadline:
            print(f"{scenario.name}: expected {wanted}, got {got}", file=sys.stderr)
            return 1
        await asyncio.sleep(0.5)
