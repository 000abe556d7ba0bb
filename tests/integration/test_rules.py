"""The rules through the real pipeline, including a worker restart in the middle of a
scenario and the timer rules on a clock the test moves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carewatch.cli import main
from devices import residents
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration


def _at(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


async def _alerts_of(pipeline: Pipeline, device: str, kind: str) -> list[dict[str, object]]:
    return [a for a in await pipeline.alerts(device) if a["kind"] == kind]


async def test_a_restart_mid_scenario_alerts_exactly_as_an_uninterrupted_run(
    pipeline: Pipeline, device: str
) -> None:
    await pipeline.publish(device, {"kind": "battery", "battery_pct": 60, "ts": _at(30)})
    await pipeline.publish(device, {"kind": "battery", "battery_pct": 12, "ts": _at(20)})
    await pipeline.wait_alert(device, "battery_low")

    await pipeline.rules.restart()  # state and offsets come back from PostgreSQL
    await pipeline.publish(device, {"kind": "battery", "battery_pct": 11, "ts": _at(10)})
    await pipeline.settle(device)
    (low,) = await _alerts_of(pipeline, device, "battery_low")
    assert (low["count"], low["status"]) == (1, "open")  # no second raise after the restart

    await pipeline.publish(device, {"kind": "battery", "battery_pct": 80, "ts": _at(1)})

    async def resolved() -> bool:
        (alert,) = await _alerts_of(pipeline, device, "battery_low")
        return alert["status"] == "resolved"

    await eventually(resolved)


async def test_a_silent_device_goes_offline_once_and_back_on_when_it_speaks(
    pipeline: Pipeline, device: str
) -> None:
    await pipeline.publish(device, {"kind": "heartbeat"})
    await pipeline.settle(device)
    pipeline.rules.clock_offset = timedelta(minutes=20)  # nothing heard for 20 minutes
    try:
        await pipeline.rules.tick()
        await pipeline.rules.tick()  # the same silence: no second alert
        (offline,) = await _alerts_of(pipeline, device, "device_offline")
        assert (offline["count"], offline["status"]) == (1, "open")
    finally:
        pipeline.rules.clock_offset = timedelta(0)

    await pipeline.publish(device, {"kind": "heartbeat"})

    async def back() -> bool:
        (alert,) = await _alerts_of(pipeline, device, "device_offline")
        return alert["status"] == "resolved"

    await eventually(back)


async def test_sustained_low_spo2_alerts_and_a_single_dip_does_not(
    pipeline: Pipeline, device: str
) -> None:
    dip = await pipeline.register()
    await pipeline.publish(dip, {"kind": "vitals", "spo2_pct": 88, "ts": _at(5)})
    await pipeline.publish(dip, {"kind": "vitals", "spo2_pct": 97, "ts": _at(4)})
    for minutes_ago in (6, 4, 2):
        await pipeline.publish(device, {"kind": "vitals", "spo2_pct": 89, "ts": _at(minutes_ago)})

    alert = await pipeline.wait_alert(device, "spo2_low")
    assert alert["severity"] == "critical"
    await pipeline.settle(dip)
    assert await _alerts_of(pipeline, dip, "spo2_low") == []


async def test_leaving_the_safe_zone_alerts_and_coming_back_resolves(pipeline: Pipeline) -> None:
    home = {"name": "home", "center": [31.2304, 121.4737], "radius_m": 200}
    device = await pipeline.resident_device({"geofence": {"zones": [home]}}, name="Li Wei")
    # Home, then ~1 km north, then home again (device time runs forward).
    fixes = [(31.2305, 121.4738, 10), (31.2400, 121.4737, 6), (31.2306, 121.4736, 2)]
    for lat, lon, minutes_ago in fixes:
        fix = {"kind": "location", "lat": lat, "lon": lon, "accuracy_m": 10}
        await pipeline.publish(device, {**fix, "ts": _at(minutes_ago)})

    async def resolved() -> dict[str, object] | None:
        alerts = await _alerts_of(pipeline, device, "geofence_exit")
        return alerts[0] if alerts and alerts[0]["status"] == "resolved" else None

    alert = await eventually(resolved)
    assert alert["count"] == 1 and alert["severity"] == "critical"


async def test_resident_overrides_are_validated_before_they_are_stored(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", pipeline.stack.database_url)
    async with pipeline.db.acquire() as conn:
        resident = await residents.add_resident(conn, name="Zhao Min")
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_text('{"vitals": {"heart_rat": {"critical_low": 38}}}')
    good.write_text('{"vitals": {"heart_rate": {"critical_low": 38}}}')

    def configure(path: Path) -> int:
        return main(["residents", "configure", str(resident), "--file", str(path)])

    assert await asyncio.to_thread(configure, bad) == 1
    assert await asyncio.to_thread(configure, good) == 0
    async with pipeline.db.acquire() as conn:
        stored = await residents.rule_overrides(conn)
    assert stored[resident] == {"vitals": {"heart_rate": {"critical_low": 38}}}
    assert await asyncio.to_thread(main, ["rules", "check"]) == 0


async def test_a_removed_watch_alerts_after_a_while_and_resolves_when_worn(
    pipeline: Pipeline,
) -> None:
    all_day = {"resident": {"timezone": "UTC", "active_hours": "00:00-23:59"}}
    device = await pipeline.resident_device(all_day)
    await pipeline.publish(device, {"kind": "worn", "worn": False})
    await pipeline.settle(device)
    pipeline.rules.clock_offset = timedelta(minutes=30)
    try:
        await pipeline.rules.tick()
    finally:
        pipeline.rules.clock_offset = timedelta(0)
    (removed,) = await _alerts_of(pipeline, device, "not_worn")
    assert removed["status"] == "open"

    await pipeline.publish(device, {"kind": "worn", "worn": True})

    async def resolved() -> bool:
        (alert,) = await _alerts_of(pipeline, device, "not_worn")
        return alert["status"] == "resolved"

    await eventually(resolved)


async def test_a_fall_the_wearer_cancels_is_resolved_but_kept(
    pipeline: Pipeline, device: str
) -> None:
    await pipeline.publish(device, {"kind": "fall", "msg_id": "f1", "ts": _at(1)})
    await pipeline.wait_alert(device, "fall")
    await pipeline.publish(device, {"kind": "fall", "cancelled": True, "msg_id": "f1-cancel"})

    async def cancelled() -> dict[str, object] | None:
        (alert,) = await _alerts_of(pipeline, device, "fall")
        return alert if alert["status"] == "resolved" else None

    alert = await eventually(cancelled)
    assert "cancelled by wearer" in str(alert["resolution"])
