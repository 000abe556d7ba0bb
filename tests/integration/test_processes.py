"""The processes as an operator runs them: `carewatch ingest` and `carewatch up`."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import urllib.request
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import pytest

from alerts import store
from carewatch.broker_accounts import wait_for_account
from carewatch.embedded import free_port
from devices.codecs.native import topic_for
from plumbing.mqtt import MqttClient, with_login
from tests.integration.conftest import Pipeline, eventually
from tests.integration.test_api_stream import Events

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "carewatch.cli"]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


async def _http(url: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(_get, url)


def _clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREWATCH_")}
    env.update(overrides)
    return env


async def _cli(*args: str, data_dir: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        *CLI, "--data-dir", str(data_dir), *args, env=_clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_ingest_process_serves_metrics_and_stops_on_sigterm(
    pipeline: Pipeline, tmp_path: Path, device: str
) -> None:
    stack = pipeline.stack
    port = free_port()
    run = uuid.uuid4().hex[:8]
    env = _clean_env(
        CAREWATCH_MQTT_URL=stack.mqtt_urls["ingest"],
        CAREWATCH_MQTT_PROTOCOL=stack.mqtt_protocol,
        CAREWATCH_KAFKA_BOOTSTRAP=stack.kafka_bootstrap,
        CAREWATCH_DATABASE_URL=stack.database_url,
        CAREWATCH_DATA_DIR=str(tmp_path),
        CAREWATCH_METRICS_PORT=str(port),
        CAREWATCH_INGEST_CLIENT_ID=f"proc-{run}",
        CAREWATCH_MQTT_SHARE_GROUP=f"proc-{run}" if stack.mqtt_shared else "",
    )
    log_path = tmp_path / "ingest.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "ingest", env=env, stdout=log_file, stderr=log_file
        )
    try:
        health = f"http://127.0.0.1:{port}/healthz"
        await eventually(lambda: _ok(health), within=30)
        _, body = await _http(health)
        assert orjson.loads(body)["mqtt_connected"] is True

        await pipeline.publish(device, {"kind": "sos"})
        metrics = f"http://127.0.0.1:{port}/metrics"
        sample = 'carewatch_ingest_events_total{kind="sos"} 1.0'
        await eventually(lambda: _contains(metrics, sample))

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [orjson.loads(line) for line in log_path.read_bytes().splitlines()]
    assert lines[-1]["msg"] == "stopped" and lines[-1]["proc"] == "ingest"
    assert all({"ts", "level", "msg"} <= line.keys() for line in lines)


async def _ok(url: str) -> bool:
    return (await _http(url))[0] == 200


async def _contains(url: str, text: str) -> bool:
    return text.encode() in (await _http(url))[1]


async def _start_up(data_dir: Path, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    """`carewatch up` started, and what it printed until it was up."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, "--data-dir", str(data_dir), "up", *args,
        env=_clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    output: list[str] = []
    try:
        while not output or not output[-1].startswith("see alerts:"):
            line = await asyncio.wait_for(proc.stdout.readline(), 90)
            assert line, "carewatch up exited:\n" + "".join(output)
            output.append(line.decode())
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, "".join(output)


async def test_up_runs_everything_and_stops_it_all(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    device = f"up-{uuid.uuid4().hex[:8]}"
    proc, table = await _start_up(data_dir, "--simulate", "2")
    try:
        services = (
            "postgres",
            "kafka",
            "mqtt",
            "telemetry",
            "rules",
            "alarms",
            "ingest",
            "watch-gateway",
        )
        for name in (*services, "api", "notifier", "simulate"):
            assert f"  {name} " in table, table
        children = psutil.Process(proc.pid).children(recursive=True)
        stack = orjson.loads((data_dir / "stack.json").read_bytes())
        assert re.search(r"^  api {11}http://127\.0\.0\.1:\d+/$", table, re.M), table
        assert f"  api           {stack['api_url']}\n" in table

        added = await _cli("devices", "add", device, "--format", "native", data_dir=data_dir)
        secret = re.search(r"mqtt secret: +(\S+)", added)
        assert secret, added
        await wait_for_account(stack["mqtt_url"], device, secret[1], client_id=device)
        url = with_login(stack["mqtt_url"], device, secret[1])
        async with MqttClient(url=url, client_id=device, protocol=stack["mqtt_protocol"]) as dev:
            await dev.publish(topic_for(device), orjson.dumps({"kind": "sos"}))
        conn = await asyncpg.connect(stack["database_url"])
        try:
            assert await eventually(lambda: _sos_count(conn, device)) == 1
        finally:
            await conn.close()
        out = await _cli("alerts", "list", "--status", "open", "--json", data_dir=data_dir)
        mine = [a for a in map(orjson.loads, out.splitlines()) if a["device_id"] == device]
        assert [(a["kind"], a["status"]) for a in mine] == [("sos", "open")]

        # A worker killed outright is restarted; the embedded Kafka keeps running, and an
        # SOS pressed after the crash is alerted (the open alert counts it).
        health = re.search(r"  up +health (http://\S+/healthz)", table)
        assert health, table
        (rules,) = [c for c in children if c.cmdline()[-1:] == ["rules"]]
        rules.kill()
        restarted = await eventually(lambda: _restarted(health[1]), within=30)
        assert restarted["children"]["rules"]["running"] is True
        assert restarted["children"]["rules"]["last_exit_code"] == -signal.SIGKILL
        async with MqttClient(url=url, client_id=device, protocol=stack["mqtt_protocol"]) as dev:
            await dev.publish(topic_for(device), orjson.dumps({"kind": "sos", "msg_id": "2"}))
        conn = await asyncpg.connect(stack["database_url"])
        try:
            await eventually(lambda: _equals(_sos_count(conn, device), 2), within=60)
        finally:
            await conn.close()
        children = psutil.Process(proc.pid).children(recursive=True)
        await _handle_over_the_api(stack, table, data_dir)

        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, rest.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "stopped." in rest.decode()
    assert not (data_dir / "stack.json").exists()
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


async def _handle_over_the_api(stack: dict[str, Any], table: str, data_dir: Path) -> None:
    """The newcomer's way: sign in as the admin `up` created, create an operator, register a
    device with the admin's token; the operator, watching the live stream, sees the
    device's SOS, acknowledges and resolves it; the stream shows each change, and the audit
    says who did them."""
    password = _first_admin_password(table, data_dir)
    device = f"api-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack["api_url"] + "api/v1/", timeout=10) as api:
        login = await api.post("login", json={"name": "admin", "password": password})
        assert login.status_code == 200, login.text
        admin = {"Authorization": f"Bearer {login.json()['token']}"}
        created = await api.post("users", json={"name": "li", "role": "operator"}, headers=admin)
        assert created.status_code == 201, created.text
        operator = {"Authorization": f"Bearer {created.json()['token']}"}
        body = {"device_id": device, "format": "native"}
        registered = await api.post("devices", json=body, headers=admin)
        assert registered.status_code == 201, registered.text
        secret = registered.json()["mqtt_secret"]
        async with api.stream("GET", "stream", headers=operator) as stream:
            assert stream.status_code == 200
            changes = Events(stream)
            url = with_login(stack["mqtt_url"], device, secret)
            async with MqttClient(url=url, client_id=device, protocol=stack["mqtt_protocol"]) as d:
                await d.publish(topic_for(device), orjson.dumps({"kind": "sos"}))
            opened = await _next_of(changes, device)
            listed = await api.get("alerts", params={"status": "open"}, headers=operator)
            (alert,) = [a for a in listed.json()["items"] if a["device_id"] == device]
            path = f"alerts/{alert['alert_id']}"
            assert (await api.post(f"{path}/ack", json={}, headers=operator)).status_code == 200
            resolved = await api.post(
                f"{path}/resolve", json={"resolution": "test", "note": "drill"}, headers=operator
            )
            assert resolved.json()["status"] == "resolved", resolved.text
            later = [await _next_of(changes, device), await _next_of(changes, device)]
        audit = (await api.get("audit", headers=admin)).json()["items"]
    assert opened["alert_id"] == alert["alert_id"] and opened["change"] == "opened"
    assert [(c["change"], c["actor"]) for c in later] == [
        ("acknowledged", "li"),
        ("resolved", "li"),
    ]
    who = [(a["actor"], a["action"], a["target"]) for a in audit]
    target = f"alert:{alert['alert_id']}"
    assert [w[:2] for w in who if w[2] == target] == [("li", "alert.resolve"), ("li", "alert.ack")]
    assert ("admin", "device.create") in [w[:2] for w in who]


async def _next_of(changes: Events, device: str) -> dict[str, Any]:
    """The next change on the stream of an alert of `device` (the fleet's come too)."""
    while True:
        change = (await changes.next(within=30))["data"]
        if change["device_id"] == device:
            return change


def _first_admin_password(table: str, data_dir: Path) -> str:
    """The password `up` printed, checked against the file it says it is kept in."""
    found = re.search(r"^admin password: (\S+) \(kept in (\S+), mode 0600\)$", table, re.M)
    assert found, table
    password, kept = found[1], Path(found[2])
    assert kept == data_dir.resolve() / "admin-password"
    assert kept.read_text().strip() == password and kept.stat().st_mode & 0o777 == 0o600
    return password


async def test_up_creates_the_admin_once(tmp_path: Path) -> None:
    """A second start on the same data says where the first start kept the password."""
    data_dir = tmp_path / "data"
    for start in (1, 2):
        proc, table = await _start_up(data_dir)
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0
        lines = [line for line in table.splitlines() if line.startswith("admin password:")]
        assert len(lines) == 1, table
        if start == 1:
            _first_admin_password(table, data_dir)
        else:
            assert lines == [f"admin password: kept in {data_dir / 'admin-password'}"]


async def _restarted(url: str) -> dict[str, Any] | None:
    """up's health document once it has restarted the rules process, else None."""
    doc = orjson.loads((await _http(url))[1])
    rules = doc["children"]["rules"]
    return doc if rules["restarts_10min"] >= 1 and rules["running"] else None


async def _equals(value: Awaitable[object], wanted: object) -> bool:
    return await value == wanted


async def _sos_count(conn: asyncpg.Connection, device: str) -> int | None:
    """The count of the device's SOS alert (None until there is one)."""
    return next((a["count"] for a in await store.alerts_of_device(conn, device)
                 if a["kind"] == "sos"), None)  # fmt: skip
