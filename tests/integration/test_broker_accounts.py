"""Setting up a broker from the registry: `carewatch mqtt-user export` writes every account
into the dynamic-security file of a broker that is not running yet (a new broker, or a
bulk import), with a new admin account to manage it from then on; `carewatch mqtt-user
sync-roles` brings a running broker's rights in line after an upgrade."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path

import orjson
import pytest

from carewatch.broker_accounts import ADMIN_USER, BrokerAccounts, wait_for_account
from carewatch.cli import main
from carewatch.embedded import EmbeddedMqtt
from devices.broker_auth import Account, device_account
from devices.codecs.native import alarm_topic_for, topic_for
from devices.registry import set_status
from plumbing.dynsec import DynsecError
from plumbing.mqtt import MqttError, with_login
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


async def test_an_exported_registry_is_a_working_broker(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    active, disabled = await pipeline.register(), await pipeline.register()
    async with pipeline.db.acquire() as conn:
        await set_status(conn, disabled, "disabled")
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", pipeline.stack.database_url)
    exported = tmp_path / "accounts.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        argv = ["--data-dir", str(tmp_path), "mqtt-user", "export", "--file", str(exported)]
        assert await asyncio.to_thread(main, argv) == 0
    admin = re.search(r"admin secret: +(\S+)", out.getvalue())
    assert admin, out.getvalue()
    assert exported.stat().st_mode & 0o077 == 0  # it holds the secrets' hashes

    async with EmbeddedMqtt(data_dir=tmp_path / "broker", accounts_file=exported) as broker:
        user, secret = pipeline.logins[active]
        await wait_for_account(broker.url, user, secret, client_id=active, within=2)
        user, secret = pipeline.logins[disabled]
        with pytest.raises(MqttError):
            await wait_for_account(broker.url, user, secret, client_id=disabled, within=0.5)

        # The new admin account manages the new broker.
        async with BrokerAccounts(admin_url=with_login(broker.url, ADMIN_USER, admin[1])) as acc:
            account = device_account("late-joiner", "native", "late-joiner")
            assert account is not None
            await acc.put([(account, "a-new-secret-of-32-characters-xx")])
        await wait_for_account(
            broker.url, "late-joiner", "a-new-secret-of-32-characters-xx",
            client_id="late-joiner", within=1,
        )  # fmt: skip


async def test_an_account_without_the_admin_role_is_told_so_at_once(pipeline: Pipeline) -> None:
    """Commands go at QoS 0 (the plugin's answer is the acknowledgement), so a wrong admin
    URL must fail when it connects, not by waiting for answers that never come."""
    user, secret = pipeline.logins[await pipeline.service_account("gateway")]
    url = with_login(pipeline.stack.mqtt_url, user, secret)
    with pytest.raises(DynsecError, match="admin role"):
        async with asyncio.timeout(3), BrokerAccounts(admin_url=url):
            pass


async def test_sync_roles_gives_devices_of_an_older_release_the_alarm_topic(
    pipeline: Pipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A broker of one's own keeps the rights it was given: a device registered before the
    alarm topic existed may publish only on /up, and its SOS on /alarm is refused until
    the roles are brought in line with the registry."""
    device = await pipeline.register()
    username = pipeline.logins[device][0]
    older = Account(username, None, (("write", topic_for(device)),), f"device:{username}")
    admin = pipeline.stack.mqtt_urls["admin"]
    async with BrokerAccounts(admin_url=admin) as broker:
        assert await broker.put_roles([older]) == 1
    client = await pipeline.client(device)
    sos = orjson.dumps({"kind": "sos", "msg_id": "after-upgrade"})
    with pytest.raises(MqttError, match="refused"):
        await client.publish(alarm_topic_for(device), sos)

    monkeypatch.setenv("CAREWATCH_DATABASE_URL", pipeline.stack.database_url)
    monkeypatch.setenv("CAREWATCH_MQTT_ADMIN_URL", admin)
    argv = ["--data-dir", str(tmp_path), "mqtt-user", "sync-roles"]
    capsys.readouterr()
    assert await asyncio.to_thread(main, argv) == 0
    assert re.search(r"broker: \d+ role\(s\) of \d+ account\(s\) in line", capsys.readouterr().out)

    await client.publish(alarm_topic_for(device), sos)
    alert = await pipeline.wait_alert(device, "sos")
    assert alert["count"] == 1


async def test_sync_roles_without_an_admin_account_says_so(
    pipeline: Pipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", pipeline.stack.database_url)
    monkeypatch.delenv("CAREWATCH_MQTT_ADMIN_URL", raising=False)
    argv = ["--data-dir", str(tmp_path), "mqtt-user", "sync-roles"]
    assert await asyncio.to_thread(main, argv) == 1
    assert "no admin account" in capsys.readouterr().err
