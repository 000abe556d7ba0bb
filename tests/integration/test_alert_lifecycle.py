"""The alert lifecycle: operators acknowledge and resolve, rules auto-resolve, every change
is in the alert's history and published on carewatch.alerts.v1 through the outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from alerts import store
from alerts.errors import AlertError, AlertNotFound, AlertStateError
from alerts.outbox import AlertPublisher
from alerts.rules import RaiseAlert, ResolveAlert
from carewatch.cli import main
from devices import residents
from plumbing.kafka import ALERTS_TOPIC
from tests.integration.conftest import Pipeline, eventually

pytestmark = pytest.mark.integration


class Topic:
    """Everything published on carewatch.alerts.v1 since the module started reading."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, dict[str, Any]]] = []  # (key, value)

    def of(self, alert_id: int) -> list[dict[str, Any]]:
        found = [(key, value) for key, value in self.records if value["alert_id"] == alert_id]
        assert all(key == str(alert_id).encode() for key, _ in found), "keyed by alert_id"
        return [value for _, value in found]

    async def wait(self, alert_id: int, count: int) -> list[dict[str, Any]]:
        """The alert's records, once there are at least `count` distinct history rows."""

        async def probe() -> list[dict[str, Any]] | None:
            found = self.of(alert_id)
            return found if len({r["history_id"] for r in found}) >= count else None

        return await eventually(probe)


@pytest_asyncio.fixture(scope="module")
async def topic(pipeline: Pipeline) -> AsyncIterator[Topic]:
    seen = Topic()
    consumer = AIOKafkaConsumer(
        ALERTS_TOPIC,
        bootstrap_servers=pipeline.stack.kafka_bootstrap,
        group_id=f"test-alerts-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()

    async def collect() -> None:
        async for record in consumer:
            seen.records.append((record.key, orjson.loads(record.value)))

    reader = asyncio.create_task(collect())
    yield seen
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await consumer.stop()


def _now() -> datetime:
    return datetime.now(UTC)


# Decision keys are event ids: unique across devices, hence the device in them.
def _raise(device: str, key: str, kind: str = "sos") -> RaiseAlert:
    return RaiseAlert(kind, "critical", device, _now(), f"{device}:{key}", f"{kind} {key}")


def _resolve(device: str, key: str, kind: str = "sos") -> ResolveAlert:
    return ResolveAlert(kind, device, _now(), f"{device}:{key}", f"cleared by {key}")


async def _sos_alert(pipeline: Pipeline, device: str, msg_id: str = "press-1") -> int:
    await pipeline.publish(device, {"kind": "sos", "msg_id": msg_id})
    return int((await pipeline.wait_alert(device, "sos"))["alert_id"])


async def _history(pipeline: Pipeline, alert_id: int) -> list[dict[str, Any]]:
    async with pipeline.db.acquire() as conn:
        return list((await store.get_alert(conn, alert_id))["history"])


async def _all_published(pipeline: Pipeline, alert_id: int) -> bool:
    return all(h["published_at"] is not None for h in await _history(pipeline, alert_id))


async def test_ack_then_resolve_is_recorded_in_order_and_published(
    pipeline: Pipeline, device: str, topic: Topic
) -> None:
    alert_id = await _sos_alert(pipeline, device)
    async with pipeline.db.acquire() as conn:
        acked = await store.acknowledge(conn, alert_id, by="alice", note="calling her")
        assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "alice")
        resolved = await store.resolve(conn, alert_id, by="bob", note="she is fine")
        assert (resolved["status"], resolved["resolved_by"]) == ("resolved", "bob")
        assert resolved["resolution"] == "she is fine" and resolved["acknowledged_by"] == "alice"
        alert = await store.get_alert(conn, alert_id)

    assert alert["status"] == "resolved" and alert["events"] == 1
    history = alert["history"]
    assert [(h["change"], h["actor"], h["note"], h["status"], h["count"]) for h in history] == [
        ("opened", "rules", alert["summary"], "open", 1),
        ("acknowledged", "alice", "calling her", "acknowledged", 1),
        ("resolved", "bob", "she is fine", "resolved", 1),
    ]
    assert [h["history_id"] for h in history] == sorted(h["history_id"] for h in history)

    records = await topic.wait(alert_id, 3)
    assert [(r["history_id"], r["change"], r["status"], r["actor"]) for r in records] == [
        (h["history_id"], h["change"], h["status"], h["actor"]) for h in history
    ]
    assert all(r["device_id"] == device and r["kind"] == "sos" for r in records)
    assert records[-1]["note"] == "she is fine" and records[-1]["resolution"] == "she is fine"
    await eventually(lambda: _all_published(pipeline, alert_id))


async def test_a_resolved_alert_is_final_and_a_new_sos_opens_another(
    pipeline: Pipeline, device: str, topic: Topic
) -> None:
    first = await _sos_alert(pipeline, device)
    async with pipeline.db.acquire() as conn:
        await store.resolve(conn, first, by="carol", note="false alarm")

    await pipeline.publish(device, {"kind": "sos", "msg_id": "press-2"})

    async def second_alert() -> list[dict[str, Any]] | None:
        found = [a for a in await pipeline.alerts(device) if a["kind"] == "sos"]
        return found if len(found) == 2 else None

    old, new = await eventually(second_alert)
    assert (old["alert_id"], old["status"], old["count"]) == (first, "resolved", 1)
    assert (new["status"], new["count"]) == ("open", 1)
    assert [h["change"] for h in await _history(pipeline, new["alert_id"])] == ["opened"]
    (record,) = await topic.wait(new["alert_id"], 1)
    assert (record["change"], record["status"]) == ("opened", "open")


async def test_wrong_transitions_are_refused_and_change_nothing(
    pipeline: Pipeline, device: str
) -> None:
    alert_id = await _sos_alert(pipeline, device)
    async with pipeline.db.acquire() as conn:
        first = await store.acknowledge(conn, alert_id, by="alice")
        again = await store.acknowledge(conn, alert_id, by="bob", note="me too")
        assert again == first  # a no-op: still alice's, at the same time
        with pytest.raises(AlertStateError, match="note"):
            await store.resolve(conn, alert_id, by="bob", note="  ")
        with pytest.raises(AlertStateError, match="by"):
            await store.acknowledge(conn, alert_id, by="")
        await store.resolve(conn, alert_id, by="bob", note="done")

        with pytest.raises(AlertStateError, match=r"cannot be acknowledged: resolved by bob"):
            await store.acknowledge(conn, alert_id, by="alice")
        with pytest.raises(AlertStateError, match="already resolved"):
            await store.resolve(conn, alert_id, by="alice", note="again")
        for call in (
            store.get_alert(conn, 2**62),
            store.acknowledge(conn, 2**62, by="alice"),
            store.resolve(conn, 2**62, by="alice", note="x"),
        ):
            with pytest.raises(AlertNotFound, match=f"no alert {2**62}"):
                await call
        assert issubclass(AlertNotFound, AlertError) and issubclass(AlertStateError, AlertError)

    history = await _history(pipeline, alert_id)
    assert [(h["change"], h["actor"]) for h in history] == [
        ("opened", "rules"),
        ("acknowledged", "alice"),
        ("resolved", "bob"),
    ]


async def test_a_resolve_decision_applied_twice_changes_nothing_the_second_time(
    pipeline: Pipeline, device: str
) -> None:
    async with pipeline.db.acquire() as conn:
        (opened,) = await store.apply_decisions(conn, [_raise(device, "e1")])
        alert_id = opened["alert_id"]
        await store.acknowledge(conn, alert_id, by="alice")

        resolve = _resolve(device, "e2")
        (change,) = await store.apply_decisions(conn, [resolve])
        assert (change["alert_id"], change["change"], change["status"]) == (
            alert_id,
            "resolved",
            "resolved",
        )
        assert (change["resolved_by"], change["resolution"]) == ("rules", "cleared by e2")
        await eventually(lambda: _all_published(pipeline, alert_id))  # published_at settles
        before = await store.get_alert(conn, alert_id)
        assert await store.apply_decisions(conn, [resolve]) == []
        assert await store.get_alert(conn, alert_id) == before

    assert [(h["change"], h["actor"], h["note"]) for h in before["history"]] == [
        ("opened", "rules", "sos e1"),
        ("acknowledged", "alice", None),
        ("resolved", "rules", "cleared by e2"),
    ]
    assert before["events"] == 2  # the raising event and the resolving one


async def test_a_resolve_with_nothing_open_is_remembered_so_its_replay_closes_nothing(
    pipeline: Pipeline, device: str
) -> None:
    """A crash after the batch's commit but before Kafka's offset commit replays it whole:
    [resolve, raise] must leave the alert the raise opened open."""
    batch = [_resolve(device, "e1"), _raise(device, "e2")]
    async with pipeline.db.acquire() as conn:
        (opened,) = await store.apply_decisions(conn, batch)
        assert await store.apply_decisions(conn, batch) == []
        alert = await store.get_alert(conn, opened["alert_id"])
        # A different kind's resolution leaves this one alone.
        assert await store.apply_decisions(conn, [_resolve(device, "e3", kind="fall")]) == []
    assert (alert["status"], alert["count"], alert["events"]) == ("open", 1, 1)
    assert [h["change"] for h in alert["history"]] == ["opened"]


async def test_raise_and_resolve_in_one_batch_apply_in_order(
    pipeline: Pipeline, device: str
) -> None:
    batch = [_raise(device, "e1"), _raise(device, "e2"), _resolve(device, "e3")]
    batch += [_raise(device, "e4")]
    async with pipeline.db.acquire() as conn:
        changes = await store.apply_decisions(conn, batch)
    assert [(c["change"], c["count"], c["status"]) for c in changes] == [
        ("opened", 1, "open"),
        ("repeated", 2, "open"),
        ("resolved", 2, "resolved"),
        ("opened", 1, "open"),
    ]
    assert changes[0]["alert_id"] == changes[2]["alert_id"] != changes[3]["alert_id"]


async def test_the_same_decisions_applied_at_once_apply_once(
    pipeline: Pipeline, device: str
) -> None:
    """The alarm lane and the rules worker decide the same raises, at the same moment
    under load, in batches that list them in different orders."""
    other = await pipeline.register()
    batch = [_raise(device, "e1"), _raise(other, "e2"), _raise(device, "e3")]

    async def apply(decisions: list[RaiseAlert]) -> list[dict[str, Any]]:
        async with pipeline.db.acquire() as conn:
            return await store.apply_decisions(conn, decisions)

    lanes = [batch, batch[::-1]] * 3
    changes = [c for found in await asyncio.gather(*map(apply, lanes)) for c in found]
    assert sorted(c["event_id"] for c in changes) == sorted(d.key for d in batch)
    counts = [
        (a["device_id"], a["count"]) for d in (device, other) for a in await pipeline.alerts(d)
    ]
    assert counts == [(device, 2), (other, 1)]


async def test_publishers_side_by_side_send_each_change_once_in_order(
    pipeline: Pipeline, device: str, topic: Topic
) -> None:
    published_before = _metric("carewatch_alerts_published_total", change="repeated")
    lags_before = _metric("carewatch_alerts_publish_lag_seconds_count")
    second = AlertPublisher(
        database_url=pipeline.stack.database_url,
        bootstrap=pipeline.stack.kafka_bootstrap,
        batch_size=7,  # small claims, so the two publishers interleave
    )
    async with second:
        await second.start()  # starting twice is harmless
        async with pipeline.db.acquire() as conn:
            for i in range(40):  # one transaction each, like 40 rules batches
                await store.apply_decisions(
                    conn, [_raise(device, f"a{i}"), _raise(device, f"b{i}", kind="fall")]
                )
        ids = [(await pipeline.wait_alert(device, kind))["alert_id"] for kind in ("sos", "fall")]
        for alert_id in ids:
            records = await topic.wait(alert_id, 40)
            history_ids = [r["history_id"] for r in records]
            assert history_ids == sorted(set(history_ids)), "each once, in history order"
            assert [r["count"] for r in records] == list(range(1, 41))
            await eventually(lambda alert_id=alert_id: _all_published(pipeline, alert_id))
        assert second.health()["ok"] is True
    await second.stop()  # stopping twice is harmless
    assert second.health()["ok"] is False
    assert _metric("carewatch_alerts_published_total", change="repeated") >= published_before + 78
    assert _metric("carewatch_alerts_publish_lag_seconds_count") >= lags_before + 80
    assert REGISTRY.get_sample_value("carewatch_alerts_outbox_oldest_seconds") is not None


async def test_a_change_whose_mark_was_lost_is_published_again(
    pipeline: Pipeline, device: str, topic: Topic
) -> None:
    """As after a crash between Kafka's ack and the mark: the periodic round (there is no
    notification for it) publishes it again, under the same history_id."""
    alert_id = await _sos_alert(pipeline, device)
    (record,) = await topic.wait(alert_id, 1)
    await eventually(lambda: _all_published(pipeline, alert_id))
    # By hand: nothing in carewatch un-publishes a change, so no store function does.
    await pipeline.db.execute(
        "UPDATE alert_history SET published_at = NULL WHERE history_id = $1", record["history_id"]
    )

    async def twice() -> list[dict[str, Any]] | None:
        found = topic.of(alert_id)
        return found if len(found) == 2 else None

    first, again = await eventually(twice)
    assert first == again
    await eventually(lambda: _all_published(pipeline, alert_id))


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_cli_shows_acknowledges_and_resolves(
    pipeline: Pipeline,
    device: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", pipeline.stack.database_url)
    monkeypatch.setenv("USER", "night-shift")
    monkeypatch.setenv("LOGNAME", "night-shift")
    alert_id = str(await _sos_alert(pipeline, device))

    async def cli(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = await asyncio.to_thread(main, ["--data-dir", str(tmp_path), *args])
        out, err = capsys.readouterr()
        return status, out, err

    status, out, _ = await cli("alerts", "ack", alert_id, "--note", "on my way", "--by", "dana")
    assert status == 0 and f"alert {alert_id} (sos, {device}) acknowledged by dana" in out
    status, out, _ = await cli("alerts", "resolve", alert_id, "--note", "pressed by mistake")
    assert status == 0 and "resolved by night-shift" in out and "pressed by mistake" in out

    status, out, _ = await cli("alerts", "show", alert_id, "--json")
    shown = orjson.loads(out)
    assert status == 0 and (shown["status"], shown["resolved_by"]) == ("resolved", "night-shift")
    assert [(h["change"], h["actor"], h["note"]) for h in shown["history"]] == [
        ("opened", "rules", shown["summary"]),
        ("acknowledged", "dana", "on my way"),
        ("resolved", "night-shift", "pressed by mistake"),
    ]
    status, out, _ = await cli("alerts", "show", alert_id)
    assert status == 0 and out.startswith(f"alert {alert_id}: sos (critical), resolved, count 1")
    lines = out.splitlines()
    assert any(line.startswith("  resolved ") and "night-shift" in line for line in lines)
    (acked,) = [line.split() for line in lines if " dana " in line]
    assert acked[3:6] == ["acknowledged", "dana", "acknowledged"]
    assert acked[-3:] == ["on", "my", "way"]

    status, _, err = await cli("alerts", "ack", alert_id)
    assert status == 1 and f"carewatch: alert {alert_id} cannot be acknowledged" in err
    status, _, err = await cli("alerts", "resolve", alert_id, "--note", "again")
    assert status == 1 and "already resolved" in err
    status, _, err = await cli("alerts", "show", "999999999999")
    assert status == 1 and err.strip() == "carewatch: no alert 999999999999"

    status, out, _ = await cli("alerts", "list", "--status", "resolved", "--json", "--limit", "500")
    (listed,) = [a for a in map(orjson.loads, out.splitlines()) if a["alert_id"] == int(alert_id)]
    assert list(listed) == [c.strip() for c in store.ALERT_COLUMNS.split(",")]
    status, out, _ = await cli("alerts", "list", "--status", "resolved", "--limit", "500")
    assert status == 0 and out.startswith("ID  ") and f"{device}  " in out


async def test_one_person_has_one_sos_alert_whichever_device_pressed_but_batteries_apiece(
    pipeline: Pipeline,
) -> None:
    async with pipeline.db.acquire() as conn:
        resident = await residents.add_resident(conn, name="Sun Li")
    pendant = await pipeline.register(resident_id=resident)
    watch = await pipeline.register(resident_id=resident)

    await pipeline.publish(pendant, {"kind": "sos", "msg_id": "p-1"})
    await pipeline.publish(pendant, {"kind": "battery", "battery_pct": 9})
    await pipeline.wait_alert(pendant, "battery_low")
    await pipeline.publish(watch, {"kind": "sos", "msg_id": "w-1"})
    await pipeline.publish(watch, {"kind": "battery", "battery_pct": 8})
    await pipeline.wait_alert(watch, "battery_low")  # the watch's events are all through

    async with pipeline.db.acquire() as conn:
        rows = await store.alerts_of_resident(conn, resident)
    assert {(r["kind"], r["device_id"], r["count"]) for r in rows} == {
        ("battery_low", pendant, 1),
        ("battery_low", watch, 1),
        ("sos", pendant, 2),  # the watch's press counted on the pendant's alert
    }
    assert len(rows) == 3
