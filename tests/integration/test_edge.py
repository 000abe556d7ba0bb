"""The locked-down edge: accounts and ACLs at the broker, the registry and limits at ingest."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from carewatch.broker_accounts import wait_for_account
from carewatch.cli import main
from devices.codecs.native import topic_for
from devices.registry import get_device, set_status
from plumbing.mqtt import MqttClient, MqttError, with_login
from plumbing.settings import Settings
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration


async def test_the_broker_refuses_a_device_writing_on_anothers_topic(
    pipeline: Pipeline, device: str
) -> None:
    other = await pipeline.register()
    client = await pipeline.client(device)
    with pytest.raises(MqttError, match="refused"):
        await client.publish(topic_for(other), orjson.dumps({"kind": "sos"}))
    await pipeline.settle(other)
    assert [a["kind"] for a in await pipeline.alerts(other)] == ["fall"]


async def test_the_broker_refuses_a_wrong_secret(pipeline: Pipeline, device: str) -> None:
    client = MqttClient(
        url=with_login(pipeline.stack.mqtt_url, device, "not-the-secret"),
        client_id=f"{device}-impostor",
        protocol=pipeline.stack.mqtt_protocol,
    )
    with pytest.raises(MqttError):
        await client.start(timeout=5)


async def test_a_disabled_device_is_refused_by_ingest(pipeline: Pipeline, device: str) -> None:
    async with pipeline.db.acquire() as conn:
        await set_status(conn, device, "disabled")
    await pipeline.ingest_sees(device, "disabled")
    # The broker still admits it until its accounts are synced: ingest must refuse it too.
    await pipeline.publish(device, {"kind": "heartbeat"})
    (record,) = await pipeline.wait_dlq(device)
    assert record["reason"] == "device_disabled"


async def test_an_unregistered_device_is_refused_by_ingest(pipeline: Pipeline, device: str) -> None:
    await pipeline.client(device)  # connected while it still had an account
    # By hand: the registry removes no device (it disables them), so no store function does.
    await pipeline.db.execute("DELETE FROM devices WHERE device_id = $1", device)
    await pipeline.ingest_sees(device, None)
    await pipeline.publish(device, {"kind": "sos"})
    (record,) = await pipeline.wait_dlq(device)
    assert record["reason"] == "unknown_device"
    assert await pipeline.alerts(device) == []


async def test_over_the_rate_only_alarms_get_through(pipeline: Pipeline, device: str) -> None:
    # Far more than the burst, all in flight together; then calls for help, each with a
    # battery reading, also together. The bucket refills 10 tokens/s, so a few of those may
    # find a token (the gap after the burst is not controlled); most may not.
    burst = [{"kind": "heartbeat", "msg_id": str(i)} for i in range(100)]
    await asyncio.gather(*(pipeline.publish(device, item) for item in burst))
    calls = 30
    await asyncio.gather(
        *(
            pipeline.publish(
                device,
                [
                    {"kind": "battery", "battery_pct": 50, "msg_id": f"b{i}"},
                    {"kind": "sos", "msg_id": f"s{i}"},
                ],
            )
            for i in range(calls)
        )
    )
    await pipeline.wait_alert(device, "sos")
    records = await pipeline.wait_dlq(device)
    assert {r["reason"] for r in records} == {"rate_limited"}
    await pipeline.settle(device)  # the alert is no sign that telemetry has stored the sos
    kinds = Counter(e["kind"] for e in await pipeline.events(device))
    assert kinds["sos"] == calls  # every call for help, over the rate or not
    assert kinds["battery"] < calls and kinds["heartbeat"] < len(burst)


async def test_a_future_timestamp_is_refused_except_for_alarms(
    pipeline: Pipeline, device: str
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await pipeline.publish(device, {"kind": "heartbeat", "ts": tomorrow})
    await pipeline.publish(device, {"kind": "sos", "ts": tomorrow})
    (record,) = await pipeline.wait_dlq(device)
    assert record["reason"] == "timestamp_in_future"
    alert = await pipeline.wait_alert(device, "sos")
    (sos,) = await pipeline.wait_events(device, 1)
    body = orjson.loads(sos["body"])
    assert sos["ts"] <= sos["received_at"] + timedelta(seconds=1)
    assert datetime.fromisoformat(body["device_ts"]) > datetime.now(UTC)
    assert alert["first_ts"] == sos["ts"]


async def test_last_seen_is_kept_in_the_registry(pipeline: Pipeline, device: str) -> None:
    await pipeline.publish(device, {"kind": "heartbeat"})
    await pipeline.wait_events(device, 1)
    async with pipeline.db.acquire() as conn:
        assert (await get_device(conn, device)).last_seen is not None


async def test_an_sos_gets_through_while_the_registry_is_unreachable(pipeline: Pipeline) -> None:
    async with pipeline.registry_unreachable():
        device = await pipeline.register()  # ingest cannot hear of it, nor look it up
        sent = [{"kind": "heartbeat"}, {"kind": "sos"}]
        await pipeline.publish(device, sent)
        await pipeline.wait_alert(device, "sos")
        (record,) = await pipeline.wait_dlq(device)
        assert record["reason"] == "registry_unavailable"
        assert orjson.loads(base64.b64decode(record["payload_b64"])) == sent  # to replay
    # Back: the device is known, and its telemetry accepted again.
    await pipeline.publish(device, {"kind": "battery", "battery_pct": 80})
    await pipeline.settle(device)
    assert [e["kind"] for e in await pipeline.events(device)][:2] == ["sos", "battery"]


async def test_an_operator_reads_why_a_device_was_refused(
    pipeline: Pipeline,
    device: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    payload = b'{"kind": "sos", '
    await pipeline.publish(device, payload)
    await pipeline.wait_dlq(device)
    monkeypatch.setenv("CAREWATCH_KAFKA_BOOTSTRAP", pipeline.stack.kafka_bootstrap)

    async def dlq_list(*args: str) -> str:
        capsys.readouterr()
        argv = ["--data-dir", str(tmp_path), "dlq", "list", "--device", device, *args]
        assert await asyncio.to_thread(main, argv) == 0
        return capsys.readouterr().out

    (record,) = map(orjson.loads, (await dlq_list("--json")).splitlines())
    assert (record["reason"], record["device_id"]) == ("invalid_json", device)
    assert base64.b64decode(record["payload_b64"]) == payload
    table = await dlq_list()
    assert "invalid_json" in table and device in table and repr(payload.decode()) in table
    assert "nothing refused matching" in await dlq_list("--reason", "rate_limited")


async def test_accounts_changed_from_another_host_take_effect_within_a_second(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI on a machine with only the database and the broker's admin account: no
    stack.json, no broker files, no broker pid. What it changes is confirmed and in force
    when it returns (allowing a second)."""
    stack = pipeline.stack
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", stack.database_url)
    monkeypatch.setenv("CAREWATCH_MQTT_ADMIN_URL", stack.mqtt_urls["admin"])
    elsewhere = str(tmp_path / "another-host")
    device = f"remote-{uuid.uuid4().hex[:8]}"

    def cli(*args: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["--data-dir", elsewhere, *args]) == 0
        return out.getvalue()

    added = await asyncio.to_thread(cli, "devices", "add", device, "--format", "native")
    secret = re.search(r"mqtt secret: +(\S+)", added)
    assert secret, added
    await wait_for_account(stack.mqtt_url, device, secret[1], client_id=device, within=1.0)

    url = with_login(stack.mqtt_url, device, secret[1])
    async with MqttClient(url=url, client_id=device, protocol=stack.mqtt_protocol) as client:
        await asyncio.to_thread(cli, "devices", "disable", device)
        await eventually(lambda: asyncio.sleep(0, not client.connected), within=1.0)
    with pytest.raises(MqttError):
        await wait_for_account(stack.mqtt_url, device, secret[1], client_id=device, within=1.0)

    await asyncio.to_thread(cli, "devices", "enable", device)
    await wait_for_account(stack.mqtt_url, device, secret[1], client_id=device, within=1.0)

    rekeyed = re.search(
        r"mqtt secret: +(\S+)", await asyncio.to_thread(cli, "devices", "rekey", device)
    )
    assert rekeyed
    await wait_for_account(stack.mqtt_url, device, rekeyed[1], client_id=device, within=1.0)
    with pytest.raises(MqttError):
        await wait_for_account(stack.mqtt_url, device, secret[1], client_id=device, within=0.2)


async def test_a_device_cannot_take_another_clients_id(pipeline: Pipeline, device: str) -> None:
    """Each device account is bound to its own client id: it cannot push another device,
    or ingest, off its session (and receive what was queued for it)."""
    other = await pipeline.register()
    user, secret = pipeline.logins[device]
    stolen = (other, Settings().ingest_client_id, f"carewatch-gateway-{uuid.uuid4().hex[:4]}")
    for client_id in stolen:
        with pytest.raises(MqttError, match="refused"):
            await wait_for_account(
                pipeline.stack.mqtt_url, user, secret, client_id=client_id, within=0.5
            )
    await wait_for_account(pipeline.stack.mqtt_url, user, secret, client_id=device, within=1.0)


async def test_a_device_may_subscribe_to_nothing_refused_at_suback(
    pipeline: Pipeline, device: str
) -> None:
    """A device reads nothing: not the other devices' messages, not its own topic, not the
    broker's control topics. The broker says no in its SUBACK (not by silence)."""
    user, secret = pipeline.logins[device]
    wanted = ("#", topic_for(device), "$CONTROL/dynamic-security/v1/response")
    reader = MqttClient(
        url=with_login(pipeline.stack.mqtt_url, user, secret),
        client_id=device,
        protocol=pipeline.stack.mqtt_protocol,
        subscriptions=wanted,
        on_message=lambda message, generation: None,
    )
    async with reader:
        await asyncio.wait_for(reader.subscribed(), 5)
        assert reader.refused_subscriptions == set(wanted)
