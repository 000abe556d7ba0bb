"""The registry in PostgreSQL: clear refusals, all-or-nothing imports, hashed secrets."""

from __future__ import annotations

import uuid

import pytest

from devices import registry, residents
from devices.broker_auth import load_accounts
from devices.credentials import verify_secret
from devices.errors import RegistryError
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


def _id() -> str:
    return f"r-{uuid.uuid4().hex[:10]}"


async def test_a_device_gets_a_hashed_secret_shown_once(pipeline: Pipeline) -> None:
    async with pipeline.db.acquire() as conn:
        device, secret = await registry.add_device(conn, device_id=_id(), format="native")
        accounts = await load_accounts(conn)
    (stored,) = [a.secret_hash for a in accounts if a.client_id == device.device_id]
    assert secret is not None and stored is not None and secret not in stored
    assert verify_secret(secret, stored)
    assert device.mqtt_username == device.device_id and device.active


async def test_gateway_devices_have_no_broker_account(pipeline: Pipeline) -> None:
    async with pipeline.db.acquire() as conn:
        device, secret = await registry.add_device(
            conn, device_id=str(uuid.uuid4().int)[:10], format="watch"
        )
    assert secret is None and device.mqtt_username is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"device_id": "ok-1", "format": "telepathy"}, "unknown format"),
        ({"device_id": "bad id", "format": "native"}, "device id"),
        ({"device_id": "nocolon", "format": "owntracks"}, "does not fit"),
        ({"device_id": "ok-2", "format": "native", "resident_id": 10**9}, "no resident"),
        ({"device_id": "ok-3", "format": "watch", "clock_tz": "Beijing"}, "IANA name"),
        ({"device_id": "88:01", "format": "watch"}, "cannot be sent by a watch"),
    ],
)
async def test_bad_registrations_say_why(
    pipeline: Pipeline, fields: dict[str, object], message: str
) -> None:
    async with pipeline.db.acquire() as conn:
        with pytest.raises(RegistryError, match=message):
            await registry.add_device(conn, **fields)  # type: ignore[arg-type]


async def test_a_device_id_is_registered_once(pipeline: Pipeline) -> None:
    device_id = _id()
    async with pipeline.db.acquire() as conn:
        await registry.add_device(conn, device_id=device_id, format="native")
        with pytest.raises(RegistryError, match="already exists"):
            await registry.add_device(conn, device_id=device_id, format="native")


async def test_csv_import_is_all_or_nothing(pipeline: Pipeline) -> None:
    good, bad = _id(), _id()
    async with pipeline.db.acquire() as conn:
        resident = await residents.add_resident(conn, name="Wang Fang", home=(31.23, 121.47))
        text = f"device_id,format,model,resident_id\n{good},native,,{resident}\n{bad},nope,,\n"
        with pytest.raises(RegistryError, match="line 3: unknown format"):
            await registry.import_csv(conn, text)
        with pytest.raises(RegistryError):
            await registry.get_device(conn, good)  # rolled back with the bad line

        added = await registry.import_csv(conn, text.replace("nope", "ttn"))
    assert [(d.device_id, d.resident_id) for d, _ in added] == [(good, resident), (bad, None)]
    assert added[1][1] is None  # a TTN device logs in through its network server


async def test_disable_and_enable(pipeline: Pipeline) -> None:
    device_id = _id()
    async with pipeline.db.acquire() as conn:
        await registry.add_device(conn, device_id=device_id, format="native")
        assert not (await registry.set_status(conn, device_id, "disabled")).active
        assert (await registry.set_status(conn, device_id, "active")).active
        with pytest.raises(RegistryError, match="no device"):
            await registry.set_status(conn, _id(), "disabled")


async def test_a_watch_clock_zone_is_kept_and_changed(pipeline: Pipeline) -> None:
    on_local, imported = _id(), _id()
    async with pipeline.db.acquire() as conn:
        added, _ = await registry.add_device(
            conn, device_id=on_local, format="watch", clock_tz="Asia/Shanghai"
        )
        assert added.clock_tz == "Asia/Shanghai"
        assert (await registry.set_clock(conn, on_local, "UTC")).clock_tz is None
        text = f"device_id,format,clock_tz\n{imported},watch,Asia/Urumqi\n"
        ((device, _),) = await registry.import_csv(conn, text)
        assert device.clock_tz == "Asia/Urumqi"
        with pytest.raises(RegistryError, match="no device"):
            await registry.set_clock(conn, _id(), "Asia/Shanghai")
