"""Setting up a broker from the registry: `carewatch mqtt-user export` writes every account
into the dynamic-security file of a broker that is not running yet (a new broker, or a
bulk import), with a new admin account to manage it from then on."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path

import pytest

from carewatch.broker_accounts import ADMIN_USER, BrokerAccounts, wait_for_account
from carewatch.cli import main
from carewatch.embedded import EmbeddedMqtt
from devices.broker_auth import device_account
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
