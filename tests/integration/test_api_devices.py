"""Devices and safe zones over the API, against the real stack: a device registered over
HTTP logs in to mosquitto with the secret it was given and its events arrive; disabling,
enabling and re-keying change what the broker admits before the API answers; a CSV import
takes its good rows past a bad one; zones set over the API are the zones the geofence rule
applies; operators and other areas are refused; hostile input is a 4xx.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio

from alerts.resident_config import ResidentConfigs
from alerts.rules import geofence
from alerts.rules.base import Context, RaiseAlert
from api.app import create_app
from carewatch.broker_accounts import accounts_for, wait_for_account
from carewatch.embedded import EmbeddedStack, free_port
from devices import residents
from devices.codecs.native import topic_for
from devices.events import make_event
from devices.registry import add_device
from plumbing.db import connect_pool
from plumbing.mqtt import MqttClient, MqttError, with_login
from tests.integration.conftest import Pipeline, eventually
from tests.integration.test_api import _audit, _user

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "carewatch.cli"]
DEVICES = "/api/v1/devices"


@pytest.fixture(scope="module")
def broker(stack: EmbeddedStack) -> EmbeddedStack:
    if accounts_for(stack.settings) is None:
        pytest.skip("the broker has no dynamic-security admin account (mosquitto missing?)")
    return stack


@pytest_asyncio.fixture(scope="module")
async def pool(stack: EmbeddedStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(stack.database_url, max_size=8)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module")
async def api(pool: asyncpg.Pool, broker: EmbeddedStack) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(pool=pool)
    app.state.broker_accounts = lambda: accounts_for(broker.settings)  # as build_api does
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


@pytest.fixture
def area() -> str:
    return f"test-{uuid.uuid4().hex[:8]}/xuhui"


async def _resident(pool: asyncpg.Pool, area: str, timezone: str = "Asia/Shanghai") -> int:
    async with pool.acquire() as conn:
        return await residents.add_resident(conn, name="Li Na", area=area, timezone=timezone)


def _new_id() -> str:
    return f"apid-{uuid.uuid4().hex[:12]}"


async def _admitted(stack: EmbeddedStack, device: str, secret: str) -> bool:
    """Whether the broker lets the device log in now, with its client id (one try: every
    change was confirmed by the broker before the API answered)."""
    try:
        await wait_for_account(
            stack.mqtt_url, device, secret, client_id=device, protocol=stack.mqtt_protocol,
            within=0,
        )  # fmt: skip
    except MqttError:
        return False
    return True


# -- register, then the device speaks -------------------------------------------------------


async def test_a_device_registered_over_the_api_logs_in_and_its_events_arrive(
    api: httpx.AsyncClient, pool: asyncpg.Pool, pipeline: Pipeline, area: str
) -> None:
    admin = await _user(pool, "admin")
    resident = await _resident(pool, area)
    device = _new_id()
    body = {"device_id": device, "format": "native", "model": "cw-1", "resident_id": resident,
            "clock_tz": "Asia/Shanghai"}  # fmt: skip
    answer = await api.post(DEVICES, json=body, headers=admin.auth)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    secret = created.pop("mqtt_secret")
    assert secret and created == {
        "device_id": device, "format": "native", "model": "cw-1", "resident_id": resident,
        "area": area, "status": "active", "mqtt_username": device, "clock_tz": "Asia/Shanghai",
        "last_seen": None, "battery_pct": None, "battery_at": None, "worn": None, "worn_at": None,
    }  # fmt: skip

    await pipeline.ingest_sees(device, "active")
    client = MqttClient(
        url=with_login(pipeline.stack.mqtt_url, device, secret),
        client_id=device,
        protocol=pipeline.stack.mqtt_protocol,
    )
    await client.start(timeout=5)
    try:
        payload = [{"kind": "battery", "battery_pct": 42}, {"kind": "worn", "worn": False}]
        await client.publish(topic_for(device), orjson.dumps(payload))
    finally:
        await client.stop()
    await pipeline.wait_events(device, 2)

    shown = (await api.get(f"{DEVICES}/{device}", headers=admin.auth)).json()
    assert shown["battery_pct"] == 42 and shown["worn"] is False
    assert shown["last_seen"] is not None and shown["battery_at"] is not None
    assert "mqtt_secret" not in shown

    again = await api.post(DEVICES, json=body, headers=admin.auth)
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    (row,) = await _audit(pool, f"device:{device}")
    assert row["action"] == "device.create" and row["actor"] == admin.name
    assert row["before"] is None and row["after"]["device_id"] == device
    assert secret not in orjson.dumps(row).decode()


async def test_disable_enable_and_rekey_change_what_the_broker_admits(
    api: httpx.AsyncClient, pool: asyncpg.Pool, broker: EmbeddedStack
) -> None:
    admin = await _user(pool, "admin")
    device = _new_id()
    created = await api.post(DEVICES, json={"device_id": device, "format": "native"},
                             headers=admin.auth)  # fmt: skip
    secret = created.json()["mqtt_secret"]
    assert await _admitted(broker, device, secret)

    answer = await api.post(f"{DEVICES}/{device}/disable", headers=admin.auth)
    assert answer.status_code == 200 and answer.json()["status"] == "disabled"
    assert not await _admitted(broker, device, secret)
    answer = await api.post(f"{DEVICES}/{device}/enable", headers=admin.auth)
    assert answer.status_code == 200 and answer.json()["status"] == "active"
    assert await _admitted(broker, device, secret)

    rekeyed = await api.post(f"{DEVICES}/{device}/rekey", headers=admin.auth)
    assert rekeyed.status_code == 200
    new = rekeyed.json()["mqtt_secret"]
    assert new and new != secret
    assert not await _admitted(broker, device, secret)
    assert await _admitted(broker, device, new)

    actions = [a["action"] for a in await _audit(pool, f"device:{device}")]
    assert actions == ["device.create", "device.disable", "device.enable", "device.rekey"]
    again = await api.post(f"{DEVICES}/{device}/enable", headers=admin.auth)  # no change
    assert again.status_code == 200 and len(await _audit(pool, f"device:{device}")) == 4


async def test_a_device_without_a_broker_account_gets_no_secret(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    admin = await _user(pool, "admin")
    watch = f"86{uuid.uuid4().int % 10**13:013d}"
    answer = await api.post(DEVICES, json={"device_id": watch, "format": "watch"},
                            headers=admin.auth)  # fmt: skip
    assert answer.status_code == 201, answer.text
    assert answer.json()["mqtt_secret"] is None and answer.json()["mqtt_username"] is None
    rekey = await api.post(f"{DEVICES}/{watch}/rekey", headers=admin.auth)
    assert rekey.status_code == 409
    disabled = await api.post(f"{DEVICES}/{watch}/disable", headers=admin.auth)
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"


async def test_a_csv_import_takes_the_good_rows_past_the_bad_ones(
    api: httpx.AsyncClient, pool: asyncpg.Pool, broker: EmbeddedStack, area: str
) -> None:
    admin = await _user(pool, "admin", area.split("/")[0])
    resident = await _resident(pool, area)
    outside = await _resident(pool, f"elsewhere-{uuid.uuid4().hex[:6]}")
    good, watch = _new_id(), f"86{uuid.uuid4().int % 10**13:013d}"
    csv_text = "\n".join([
        "device_id,format,model,resident_id,clock_tz",
        f"{good},native,cw-1,{resident},",
        f"{_new_id()},nonsense,,{resident},",       # line 3: unknown format
        f"{watch},watch,,{resident},Asia/Shanghai",
        f"{good},native,,{resident},",              # line 5: a duplicate
        f"{_new_id()},native,,{outside},",          # line 6: outside the admin's area
        f"{_new_id()},native,,{resident},Mars/Base",  # line 7: no such zone
        f"{_new_id()},native,,{resident},,extra",  # line 8: a value too many
    ]) + "\n"  # fmt: skip
    answer = await api.post(
        f"{DEVICES}/import",
        content=csv_text.encode(),
        headers=admin.auth | {"Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert [(c["device_id"], c["area"]) for c in result["created"]] == [(good, area), (watch, area)]
    assert [e["line"] for e in result["errors"]] == [3, 5, 6, 7, 8], result["errors"]
    assert "nonsense" in result["errors"][0]["detail"]
    secrets = {c["device_id"]: c["mqtt_secret"] for c in result["created"]}
    assert secrets[watch] is None
    assert await _admitted(broker, good, secrets[good])
    assert result["created"][1]["clock_tz"] == "Asia/Shanghai"
    assert [a["action"] for a in await _audit(pool, f"device:{good}")] == ["device.import"]

    for bad, status in (
        ("", 422), ("device_id\nx\n", 422), ("device_id,format,colour\n", 422),
        ("device_id,format\n\"unterminated", 200),
    ):  # fmt: skip
        answer = await api.post(f"{DEVICES}/import", content=bad.encode(),
                                headers=admin.auth | {"Content-Type": "text/csv"})  # fmt: skip
        assert answer.status_code == status, (bad, answer.text)
    wrong_type = await api.post(f"{DEVICES}/import", json={"device_id": "x"}, headers=admin.auth)
    assert wrong_type.status_code == 415
    not_utf8 = await api.post(f"{DEVICES}/import", content=b"device_id,format\n\xff\xfe,native\n",
                              headers=admin.auth | {"Content-Type": "text/csv"})  # fmt: skip
    assert not_utf8.status_code == 422


# -- who sees and changes what ------------------------------------------------------------


async def test_roles_and_areas_decide_who_sees_and_changes_a_device(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    district = area.split("/")[0]
    top_admin, district_admin = await _user(pool, "admin"), await _user(pool, "admin", district)
    operator = await _user(pool, "operator", area)
    mine, other = await _resident(pool, area), await _resident(pool, f"other-{uuid.uuid4().hex}")
    device = _new_id()
    body = {"device_id": device, "format": "native", "resident_id": mine}
    assert (await api.post(DEVICES, json=body, headers=operator.auth)).status_code == 403
    answer = await api.post(
        DEVICES, json=body | {"resident_id": other}, headers=district_admin.auth
    )
    assert answer.status_code == 403 and "outside yours" in answer.json()["detail"]
    unassigned = await api.post(DEVICES, json={"device_id": _new_id(), "format": "native"},
                                headers=district_admin.auth)  # fmt: skip
    assert unassigned.status_code == 403
    missing = await api.post(DEVICES, json=body | {"resident_id": 2**62}, headers=top_admin.auth)
    assert missing.status_code == 422
    assert (await api.post(DEVICES, json=body, headers=district_admin.auth)).status_code == 201

    assert (await api.get(f"{DEVICES}/{device}", headers=operator.auth)).status_code == 200
    for path in ("disable", "enable", "rekey"):
        answer = await api.post(f"{DEVICES}/{device}/{path}", headers=operator.auth)
        assert answer.status_code == 403, path
    patch = await api.patch(f"{DEVICES}/{device}", json={"model": "x"}, headers=operator.auth)
    assert patch.status_code == 403
    moved = await api.patch(f"{DEVICES}/{device}", json={"resident_id": other},
                            headers=district_admin.auth)  # fmt: skip
    assert moved.status_code == 403
    moved = await api.patch(f"{DEVICES}/{device}", json={"resident_id": other},
                            headers=top_admin.auth)  # fmt: skip
    assert moved.status_code == 200 and moved.json()["area"] != area
    assert (await api.get(f"{DEVICES}/{device}", headers=operator.auth)).status_code == 403
    assert (
        await api.get(f"{DEVICES}/nobody-{uuid.uuid4().hex}", headers=operator.auth)
    ).status_code == 404


async def test_the_list_filters_pages_and_shows_only_your_area(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    resident = await _resident(pool, area)
    ids = sorted(_new_id() for _ in range(3))
    async with pool.acquire() as conn:
        for device in ids:
            await add_device(conn, device_id=device, format="native", resident_id=resident)
        await add_device(conn, device_id=_new_id(), format="native")  # top: not the operator's
        await conn.execute("UPDATE devices SET last_seen = now() WHERE device_id = $1", ids[0])
        await conn.execute("UPDATE devices SET status = 'disabled' WHERE device_id = $1", ids[1])

    first = (await api.get(DEVICES, params={"limit": 2}, headers=operator.auth)).json()
    assert [d["device_id"] for d in first["items"]] == ids[:2] and first["next"]
    second = await api.get(DEVICES, params={"limit": 2, "cursor": first["next"]},
                           headers=operator.auth)  # fmt: skip
    assert [d["device_id"] for d in second.json()["items"]] == ids[2:]
    assert second.json()["next"] is None

    async def listed(**params: Any) -> list[str]:
        answer = await api.get(DEVICES, params=params, headers=operator.auth)
        assert answer.status_code == 200, answer.text
        return [d["device_id"] for d in answer.json()["items"]]

    assert await listed(status="disabled") == [ids[1]]
    assert await listed(silent_for_s=3600) == ids[1:]  # never seen counts as silent
    assert await listed(resident=resident, format="native") == ids
    assert await listed(format="watch") == []
    bad = await api.get(DEVICES, params={"cursor": "bm9wZQ"}, headers=operator.auth)
    assert bad.status_code == 422


async def test_patch_changes_model_clock_and_resident_with_an_audit_row(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    admin = await _user(pool, "admin")
    first, second = await _resident(pool, area), await _resident(pool, area)
    device = _new_id()
    async with pool.acquire() as conn:
        await add_device(conn, device_id=device, format="native", resident_id=first)
    body = {"model": "ws101", "clock_tz": "Europe/Berlin", "resident_id": second}
    answer = await api.patch(f"{DEVICES}/{device}", json=body, headers=admin.auth)
    assert answer.status_code == 200
    assert {k: answer.json()[k] for k in body} == body
    cleared = await api.patch(f"{DEVICES}/{device}", json={"clock_tz": None}, headers=admin.auth)
    assert cleared.json()["clock_tz"] is None and cleared.json()["model"] == "ws101"
    (created, cleared_row) = await _audit(pool, f"device:{device}")
    assert created["before"]["model"] is None and created["after"]["model"] == "ws101"
    assert cleared_row["after"]["clock_tz"] is None


async def test_hostile_device_input_is_4xx_never_500(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    admin = await _user(pool, "admin")
    ok = {"device_id": _new_id(), "format": "native"}
    for body in (
        {}, ok | {"device_id": "a\x00b"}, ok | {"device_id": "x" * 65}, ok | {"format": "nope"},
        ok | {"format": "NATIVE\n"}, ok | {"model": "m\x07"}, ok | {"model": "m" * 65},
        ok | {"clock_tz": "Mars/Base"}, ok | {"clock_tz": "../../etc/passwd"},
        ok | {"clock_tz": "\x00"}, ok | {"resident_id": 2**63}, ok | {"resident_id": -1},
        ok | {"colour": "red"}, ok | {"device_id": 5}, [ok], "x",
    ):  # fmt: skip
        answer = await api.post(DEVICES, json=body, headers=admin.auth)
        assert answer.status_code == 422, (body, answer.text)
    for path in ("a%00b", "x" * 200, "%F0%9F%92%A9", "-x"):
        answer = await api.get(f"{DEVICES}/{path}", headers=admin.auth)
        assert answer.status_code in (404, 422), path
    for params in ({"silent_for_s": -1}, {"limit": 0}, {"status": "gone"}, {"resident": 0}):
        assert (await api.get(DEVICES, params=params, headers=admin.auth)).status_code == 422
    device = _new_id()
    await api.post(DEVICES, json={"device_id": device, "format": "native"}, headers=admin.auth)
    for body in ({"clock_tz": "Nowhere/Zone"}, {"format": "watch"}, {"model": ""}, {"status": "x"}):
        answer = await api.patch(f"{DEVICES}/{device}", json=body, headers=admin.auth)
        assert answer.status_code == 422, body


# -- safe zones ---------------------------------------------------------------------------

HOME = {"name": "home", "kind": "circle", "lat": 31.2304, "lon": 121.4737, "radius_m": 200.0}
PARK = {
    "name": "park", "kind": "polygon",
    "points": [[31.20, 121.40], [31.20, 121.41], [31.21, 121.41], [31.21, 121.40]],
    "window": {"from": "08:00", "to": "21:00"},
}  # fmt: skip


async def test_zones_set_over_the_api_are_the_zones_the_geofence_rule_applies(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    admin, operator = await _user(pool, "admin"), await _user(pool, "operator", area)
    resident = await _resident(pool, area)
    device = _new_id()
    async with pool.acquire() as conn:
        await add_device(conn, device_id=device, format="native", resident_id=resident)
        # Other overrides stay as they are.
        await residents.set_rule_overrides(conn, resident, {"battery": {"low_pct": 12}})
    zones_url = f"/api/v1/residents/{resident}/zones"
    assert (await api.get(zones_url, headers=operator.auth)).json()["items"] == []
    answer = await api.put(zones_url, json=[HOME, PARK], headers=admin.auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == [HOME | {"window": None}, PARK]
    assert (await api.get(zones_url, headers=operator.auth)).json() == answer.json() | {
        "next": None
    }

    # What the rules worker loads for the resident's device (its own loader).
    configs = ResidentConfigs(pool=pool)
    await configs.load()
    config = configs.for_device(device)
    assert config["battery"]["low_pct"] == 12
    assert [z["name"] for z in config["geofence"]["zones"]] == ["home", "park"]
    assert config["geofence"]["zones"][0]["center"] == [31.2304, 121.4737]
    assert config["geofence"]["zones"][1]["window"] == "08:00-21:00"
    # ... and the rule raises on it: 2 km from home at 03:00 local, when the park is closed.
    night = datetime(2026, 3, 1, 19, 0, tzinfo=UTC)
    far = make_event(device_id=device, kind="location", ts=night, received_at=night,
                     source="native", fields={"lat": 31.25, "lon": 121.4737})  # fmt: skip
    decisions = geofence.evaluate(far, {}, Context(now=night, config=config))
    assert [type(d) for d in decisions] == [RaiseAlert] and "home" in decisions[0].summary

    assert (await api.delete(f"{zones_url}/park", headers=admin.auth)).status_code == 204
    assert [z["name"] for z in (await api.get(zones_url, headers=admin.auth)).json()["items"]] == [
        "home"
    ]
    assert (await api.delete(f"{zones_url}/park", headers=admin.auth)).status_code == 404
    audit = await _audit(pool, f"resident:{resident}")
    assert [(a["action"], len(a["before"]["zones"]), len(a["after"]["zones"])) for a in audit] == [
        ("resident.zones", 0, 2), ("resident.zones", 2, 1)
    ]  # fmt: skip


async def test_zones_are_validated_as_the_rules_validate_them(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    admin, operator = await _user(pool, "admin"), await _user(pool, "operator", area)
    resident = await _resident(pool, area)
    url = f"/api/v1/residents/{resident}/zones"
    bow_tie = PARK | {
        "points": [[31.20, 121.40], [31.21, 121.41], [31.20, 121.41], [31.21, 121.40]]
    }
    for body in (
        [HOME, HOME], [bow_tie], [HOME | {"lat": 91}], [HOME | {"radius_m": 0}],
        [HOME | {"kind": "square"}], [HOME | {"colour": "red"}], [HOME | {"name": ""}],
        [HOME | {"name": "a\x00"}], [PARK | {"points": [[1, 2], [3, 4]]}],
        [HOME | {"window": {"from": "08:00", "to": "08:00"}}],
        [HOME | {"window": {"from": "25:00", "to": "08:00"}}],
        [HOME | {"window": {"from": "08:00", "to": "09:00", "days": ["mon"]}}],
        {"zones": [HOME]}, [HOME] * 101,
    ):  # fmt: skip
        answer = await api.put(url, json=body, headers=admin.auth)
        assert answer.status_code == 422, (body, answer.text)
    assert (await api.put(url, json=[HOME], headers=operator.auth)).status_code == 403
    assert (await api.delete(f"{url}/home", headers=operator.auth)).status_code == 403
    outsider = await _user(pool, "admin", f"elsewhere-{uuid.uuid4().hex[:6]}")
    assert (await api.get(url, headers=outsider.auth)).status_code == 403
    missing = "/api/v1/residents/999999999999/zones"
    assert (await api.get(missing, headers=admin.auth)).status_code == 404
    assert (await api.get(url, headers=admin.auth)).json()["items"] == []


# -- the process as `carewatch up` runs it ---------------------------------------------------


async def test_the_api_process_finds_the_broker_as_up_gives_it(
    broker: EmbeddedStack, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """`up` gives the API child its data dir, where stack.json names the broker's admin
    account: a device registered through the process can log in at once."""
    admin = await _user(pool, "admin")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREWATCH_")} | {
        "CAREWATCH_DATA_DIR": str(broker.settings.data_dir.resolve()),
        "CAREWATCH_DATABASE_URL": broker.database_url,
        "CAREWATCH_API_PORT": str(port),
        "CAREWATCH_METRICS_PORT": "0",
    }
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "api", env=env, stdout=log_file, stderr=log_file
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, within=30)
            device = _new_id()
            answer = await client.post(DEVICES, json={"device_id": device, "format": "native"},
                                       headers=admin.auth)  # fmt: skip
            assert answer.status_code == 201, answer.text
            assert await _admitted(broker, device, answer.json()["mqtt_secret"])
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
