"""A mixed fleet (native watches and buttons, OwnTracks phones) through the real pipeline,
sped up, with duplicates and late messages: everything acknowledged is stored exactly once."""

from __future__ import annotations

import uuid

import pytest

from alerts import event_store, store
from carewatch.embedded import free_port
from devices import registry
from ingest.watch_gateway import WatchGateway
from plumbing.mqtt import MqttClient, with_login
from simulators import fleet
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration


async def test_a_sped_up_fleet_is_stored_once_and_its_sos_alerts(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet, "_LATE_S", (0.5, 1.5))  # late, but within the test
    prefix = f"f{uuid.uuid4().hex[:6]}-"
    mix = {"watch": 2, "button": 1, "phone": 1}
    plan = await _registered(pipeline, 8, mix, prefix)
    secrets = {device_id: pipeline.logins[device_id][1] for _, device_id in plan}

    stats = await fleet.run_fleet(
        mqtt_url=pipeline.stack.mqtt_url,
        devices=8,
        mix=mix,
        duration=6.0,
        protocol=pipeline.stack.mqtt_protocol,
        secrets=secrets,
        # 100x real time: a watch sends ~7 messages/s, under ingest's per-device limit
        # (10/s, bursts of 60); at 150x it brushed the limit and a few went to the DLQ.
        rate=100.0,
        duplicate_share=0.1,
        late_share=0.05,
        sos_mean_interval=2.0,
        prefix=prefix,
    )

    assert stats.connected == 8 and stats.errors == 0
    assert stats.duplicates > 0 and stats.late > 0 and stats.sos_sent > 0
    assert stats.events_by_kind["location"] > 0 and stats.events > 400
    ids = [device_id for _, device_id in plan]

    await _stored_exactly(pipeline, ids, stats.events)
    phones = [d for kind, d in plan if kind == "phone"]
    async with pipeline.db.acquire() as conn:
        assert "owntracks" in await event_store.sources(conn, phones)
        buttons = [d for kind, d in plan if kind == "button"]
        assert await store.sos_opened_at(conn, buttons)


async def test_4g_watches_over_tcp_through_the_gateway_are_stored_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet, "_LATE_S", (0.5, 1.5))
    prefix = f"g{uuid.uuid4().hex[:6]}-"
    plan = await _registered(pipeline, 3, {"watch4g": 1}, prefix)
    account = await pipeline.service_account("gateway")
    login = pipeline.logins[account]
    mqtt = MqttClient(
        url=with_login(pipeline.stack.mqtt_url, *login),
        client_id=account,
        protocol=pipeline.stack.mqtt_protocol,
    )
    port = free_port()
    async with mqtt, WatchGateway(mqtt=mqtt, host="127.0.0.1", port=port):
        stats = await fleet.run_fleet(
            mqtt_url=pipeline.stack.mqtt_url,
            devices=3,
            mix={"watch4g": 1},
            duration=6.0,
            rate=9.0,  # a report every ~1.4 s per watch: its time has whole seconds
            duplicate_share=0.1,
            late_share=0.05,
            prefix=prefix,
            gateway=("127.0.0.1", port),
        )
    assert stats.connected == 3 and stats.errors == 0
    assert stats.events_by_kind["location"] > 0 and stats.events_by_kind["heartbeat"] > 0
    ids = [device_id for _, device_id in plan]

    await _stored_exactly(pipeline, ids, stats.events)
    async with pipeline.db.acquire() as conn:
        assert await event_store.sources(conn, ids) == ["watch"]


async def test_registering_a_fleet_gives_accounts_only_to_devices_that_log_in_themselves(
    pipeline: Pipeline,
) -> None:
    from carewatch.simulate import register_fleet

    native, watch = f"r{uuid.uuid4().hex[:6]}-button", f"r{uuid.uuid4().hex[:6]}-watch4g"
    formats = {native: "native", watch: "watch"}
    for _ in range(2):  # registering again re-keys, and still skips the watch
        secrets = await register_fleet(
            pipeline.stack.settings, [native, watch], pipeline.stack.mqtt_url, formats
        )
        assert list(secrets) == [native]
    async with pipeline.db.acquire() as conn:
        stored = {d: (await registry.get_device(conn, d)).format for d in formats}
    assert stored == formats


async def test_lorawan_buttons_and_door_sensors_through_their_network_servers(
    pipeline: Pipeline,
) -> None:
    prefix = f"l{uuid.uuid4().hex[:6]}-"
    mix = {"lorabutton": 1, "door": 1}
    plan = await _registered(pipeline, 4, mix, prefix)
    account = await pipeline.service_account("lorawan")

    stats = await fleet.run_fleet(
        mqtt_url=pipeline.stack.mqtt_url,
        devices=4,
        mix=mix,
        duration=8.0,
        protocol=pipeline.stack.mqtt_protocol,
        rate=4.0,  # a door event every ~6 s: LoRaWAN devices are slow by nature
        sos_mean_interval=5.0,
        duplicate_share=0.5,  # ~35 messages: a copy is all but certain (ids are random)
        prefix=prefix,
        lorawan_url=with_login(pipeline.stack.mqtt_url, *pipeline.logins[account]),
    )
    assert stats.connected == 4 and stats.errors == 0 and stats.duplicates > 0
    assert stats.events_by_kind["sensor"] > 0 and stats.sos_sent > 0
    ids = [device_id for _, device_id in plan]

    await _stored_exactly(pipeline, ids, stats.events)
    async with pipeline.db.acquire() as conn:
        assert await event_store.sources(conn, ids) == ["chirpstack", "ttn"]
    buttons = [d for kind, d in plan if kind == "lorabutton"]
    await eventually(lambda: _sos_alerted(pipeline, buttons))


async def _registered(
    pipeline: Pipeline, devices: int, mix: dict[str, int], prefix: str
) -> list[tuple[str, str]]:
    """The fleet's plan, every device registered with its type's format."""
    plan = fleet.plan_fleet(devices, mix, prefix=prefix)
    for kind, device_id in plan:
        await pipeline.register(device_id, format=fleet.FORMATS[kind])
    return plan


async def _stored_exactly(pipeline: Pipeline, ids: list[str], events: int) -> None:
    """The devices' stored events reach `events` and do not pass it: duplicates and late
    copies are dropped by event id."""

    seen: dict[str, int] = {}

    async def stored() -> int | None:
        async with pipeline.db.acquire() as conn:
            seen.update(await event_store.count_by_device(conn, ids))
        n = sum(seen.values())
        return n if n >= events else None

    try:
        assert await eventually(stored, within=30) == events
    except BaseException:
        rejected = [r for r in pipeline.dlq if r.get("device_id") in ids]
        print(f"stored {seen} of {events} acknowledged; dead letters: {rejected}")
        raise


async def _sos_alerted(pipeline: Pipeline, devices: list[str]) -> bool:
    """Whether any of the devices has had an SOS alert."""
    async with pipeline.db.acquire() as conn:
        return bool(await store.sos_opened_at(conn, devices))
