"""Changes made with the CLI are audit rows as the API's are: the actor `cli:<OS user>`, the
API's action names, targets and shapes, the object before and after, written in the
change's transaction, and never a secret."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts import store
from api import audit
from api.records import device_record as api_device
from api.records import resident_record as api_resident
from carewatch.cli import main
from devices import registry, residents
from plumbing.db import DatabaseError
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration

Cli = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch) -> str:
    """The OS user running the CLI: one per test, so its audit rows are the test's own."""
    name = f"op-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("LOGNAME", name)
    monkeypatch.setenv("USER", name)
    return name


@pytest.fixture
def cli(
    pipeline: Pipeline,
    operator: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """`carewatch ...` as an operator runs it: (exit status, stdout, stderr)."""
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", pipeline.stack.database_url)
    admin = pipeline.stack.mqtt_urls.get("admin")
    if admin:  # broker accounts changed for real, as under `carewatch up`
        monkeypatch.setenv("CAREWATCH_MQTT_ADMIN_URL", admin)
    else:
        monkeypatch.delenv("CAREWATCH_MQTT_ADMIN_URL", raising=False)

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = await asyncio.to_thread(main, ["--data-dir", str(tmp_path), *args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


async def _rows(pipeline: Pipeline, operator: str) -> list[dict[str, Any]]:
    """The operator's audit rows, oldest first."""
    async with pipeline.db.acquire() as conn:
        rows = await audit.list_audit(conn, actor=f"cli:{operator}", limit=100)
    return rows[::-1]


def _as_stored(value: dict[str, Any]) -> Any:
    """A value as the audit trail's JSON gives it back."""
    return orjson.loads(orjson.dumps(value, default=str))


def _no_secret(rows: list[dict[str, Any]], *secrets: str) -> None:
    text = orjson.dumps(rows, default=str).decode()
    assert "secret" not in text and "password" not in text
    for secret in secrets:
        assert secret not in text


def _secret(out: str) -> str:
    found = re.search(r"mqtt secret: +(\S+)", out)
    assert found, out
    return found[1]


async def test_acknowledging_and_resolving_an_alert_are_audited(
    pipeline: Pipeline, device: str, cli: Cli, operator: str
) -> None:
    await pipeline.publish(device, {"kind": "sos", "msg_id": "press-1"})
    alert_id = int((await pipeline.wait_alert(device, "sos"))["alert_id"])
    target = f"alert:{alert_id}"

    status, _, err = await cli("alerts", "ack", str(alert_id), "--note", "coming", "--by", "dana")
    assert status == 0, err
    status, _, err = await cli("alerts", "ack", str(alert_id))  # a repeat changes nothing
    assert status == 0, err
    status, _, err = await cli("alerts", "resolve", str(alert_id), "--note", "pressed by mistake")
    assert status == 0, err
    status, _, _ = await cli("alerts", "resolve", str(alert_id), "--note", "again")  # refused
    assert status == 1

    ack, resolve = await _rows(pipeline, operator)
    assert (ack["actor"], ack["action"], ack["target"]) == (f"cli:{operator}", "alert.ack", target)
    assert (ack["before"]["status"], ack["after"]["status"]) == ("open", "acknowledged")
    assert ack["after"]["acknowledged_by"] == "dana"  # who took it on; the actor ran the CLI
    assert (resolve["actor"], resolve["action"], resolve["target"]) == (
        f"cli:{operator}", "alert.resolve", target,
    )  # fmt: skip
    assert resolve["before"] == ack["after"]
    after = resolve["after"]
    assert (after["status"], after["resolved_by"], after["resolution"]) == (
        "resolved", operator, "pressed by mistake",
    )  # fmt: skip
    async with pipeline.db.acquire() as conn:
        assert resolve["after"] == _as_stored(await store.lock_alert(conn, alert_id))


async def test_adding_residents_and_devices_and_disabling_them_are_audited(
    pipeline: Pipeline, cli: Cli, operator: str
) -> None:
    status, out, err = await cli(
        "residents", "add", "Wang Fang", "--home", "31.2,121.4", "--area", "/shanghai/xuhui/"
    )
    assert status == 0, err
    resident_id = int(out)
    device_id = f"cli-{uuid.uuid4().hex[:10]}"
    status, out, err = await cli(
        "devices", "add", device_id, "--format", "native", "--resident", str(resident_id)
    )
    assert status == 0, err
    secret = _secret(out)
    for _ in range(2):  # the second changes nothing: no row
        status, _, err = await cli("devices", "disable", device_id)
        assert status == 0, err
    status, out, err = await cli("devices", "rekey", device_id)
    assert status == 0, err
    new_secret = _secret(out)

    rows = await _rows(pipeline, operator)
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        (f"cli:{operator}", "resident.create", f"resident:{resident_id}"),
        (f"cli:{operator}", "device.create", f"device:{device_id}"),
        (f"cli:{operator}", "device.disable", f"device:{device_id}"),
        (f"cli:{operator}", "device.rekey", f"device:{device_id}"),
    ]
    created, added, disabled, rekeyed = rows
    async with pipeline.db.acquire() as conn:
        resident = await residents.get_resident(conn, resident_id)
        device, area = await registry.device_and_area(conn, device_id)
    assert resident is not None and area == "shanghai/xuhui"
    # The same shapes as the API's rows for the same changes.
    assert (created["before"], created["after"]) == (None, _as_stored(api_resident(resident)))
    assert created["after"]["home"] == {"lat": 31.2, "lon": 121.4}
    assert added["before"] is None
    assert added["after"] == {**_as_stored(api_device(device, area)), "status": "active"}
    assert (added["after"]["resident_id"], added["after"]["area"]) == (resident_id, area)
    assert disabled["before"] == added["after"]
    assert disabled["after"] == {**added["after"], "status": "disabled"}
    assert rekeyed["before"] == rekeyed["after"] == disabled["after"]
    _no_secret(rows, secret, new_secret)


async def test_clock_zones_imports_and_service_accounts_are_audited(
    pipeline: Pipeline, cli: Cli, operator: str, tmp_path: Path
) -> None:
    device_id, imported = (f"cli-{uuid.uuid4().hex[:10]}" for _ in range(2))
    status, out, err = await cli("devices", "add", device_id, "--format", "native")
    assert status == 0, err
    secrets = [_secret(out)]
    status, _, err = await cli("devices", "set-clock", device_id, "Asia/Shanghai")
    assert status == 0, err
    csv = tmp_path / "devices.csv"
    csv.write_text(f"device_id,format\n{imported},native\n")
    status, out, err = await cli("devices", "import", "--csv", str(csv))
    assert status == 0, err
    secrets.append(orjson.loads(out)["secret"])
    username = f"cli-svc-{uuid.uuid4().hex[:8]}"
    for _ in range(2):  # created, then re-keyed
        status, out, err = await cli("mqtt-user", "add", username, "--role", "gateway")
        assert status == 0, err
        secrets.append(_secret(out))

    rows = await _rows(pipeline, operator)
    assert [(r["action"], r["target"]) for r in rows] == [
        ("device.create", f"device:{device_id}"),
        ("device.update", f"device:{device_id}"),
        ("device.import", f"device:{imported}"),
        ("mqtt_user.create", f"mqtt_user:{username}"),
        ("mqtt_user.rekey", f"mqtt_user:{username}"),
    ]
    _, clock, imports, service, rekey = rows
    assert (clock["before"]["clock_tz"], clock["after"]["clock_tz"]) == (None, "Asia/Shanghai")
    assert imports["before"] is None and imports["after"]["device_id"] == imported
    assert service["before"] is None
    assert service["after"] == {"username": username, "role": "gateway"}
    assert rekey["before"] == rekey["after"] == service["after"]
    _no_secret(rows, *secrets)


async def test_a_change_is_not_kept_without_its_audit_row(
    pipeline: Pipeline, device: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pipeline.publish(device, {"kind": "sos", "msg_id": "press-1"})
    alert_id = int((await pipeline.wait_alert(device, "sos"))["alert_id"])

    async def unavailable(*_args: Any, **_kwargs: Any) -> int:
        raise DatabaseError("the audit trail is unavailable")

    monkeypatch.setattr(audit, "record", unavailable)
    new_device = f"cli-{uuid.uuid4().hex[:10]}"
    for argv in (
        ("alerts", "ack", str(alert_id)),
        ("devices", "add", new_device, "--format", "native"),
        ("devices", "disable", device),
    ):
        status, _, err = await cli(*argv)
        assert (status, err.strip()) == (1, "carewatch: the audit trail is unavailable"), argv

    async with pipeline.db.acquire() as conn:
        assert (await store.lock_alert(conn, alert_id))["status"] == "open"
        with pytest.raises(registry.DeviceNotFound):
            await registry.get_device(conn, new_device)
        assert (await registry.get_device(conn, device)).status == "active"


async def test_configuring_a_residents_rules_is_audited(
    cli: Cli, pipeline: Pipeline, operator: str, tmp_path: Path
) -> None:
    async with pipeline.db.acquire() as conn:
        resident = await residents.add_resident(conn, name="Zhao Min")
    rules = tmp_path / "rules.json"
    rules.write_text('{"inactivity": {"period_min": 120}}')

    status, _, err = await cli("residents", "configure", str(resident), "--file", str(rules))

    assert status == 0, err
    (row,) = await _rows(pipeline, operator)
    assert (row["action"], row["target"]) == ("resident.rules", f"resident:{resident}")
    after = {"rules": orjson.loads(rules.read_text())}
    assert (row["before"], row["after"]) == ({"rules": {}}, after)
