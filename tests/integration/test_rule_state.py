"""The rules worker's stored state: a batch that could not be stored changes nothing, and
when the events topic's partition count changes (the embedded Kafka started anew:
alerts/rule_state.py `topics_made_anew`; partitions added on a cluster: `carewatch rules
move-state`) each device's state is found by the worker that owns its new partition.

A database of its own: the shared one's positions belong to the running pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from aiokafka.structs import ConsumerRecord

from alerts.resident_config import ResidentConfigs
from alerts.rule_state import RuleStateStore, topics_made_anew
from alerts.rules_worker import RulesWorker
from carewatch.cli import main
from carewatch.embedded import EmbeddedStack
from devices.events import Event, event_to_json, make_event
from plumbing.consumer import Batch
from plumbing.db import connect_pool
from plumbing.kafka import EVENTS_TOPIC, CachedPartitioner, partition_count

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def db(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(own_database)
    try:
        yield pool
    finally:
        await pool.close()


def _partition(device: str, partitions: int) -> int:
    every = list(range(partitions))
    return int(CachedPartitioner()(device.encode(), every, every))


async def test_a_batch_not_stored_leaves_the_state_as_it_was(db: asyncpg.Pool) -> None:
    """The rules change copies: a batch whose save fails (here its table is gone) leaves
    each device's state where the last stored batch left it, and its retry, once stored,
    counts every reading once."""
    store = RuleStateStore(pool=db, group_id="rules", topic=EVENTS_TOPIC)
    await store.assigned({0})
    worker = RulesWorker(pool=db, store=store, configs=ResidentConfigs(pool=db))
    at = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    first, second = _reading(at, 0), _reading(at + timedelta(seconds=10), 1)
    await worker.handle(_batch(first, offset=0))
    assert _heard_and_seen(store) == (first.received_at.isoformat(), [first.event_id])

    async with db.acquire() as conn:
        await conn.execute("ALTER TABLE rule_state RENAME TO rule_state_away")
    with pytest.raises(asyncpg.UndefinedTableError):
        await worker.handle(_batch(second, offset=1))
    assert _heard_and_seen(store) == (first.received_at.isoformat(), [first.event_id])

    async with db.acquire() as conn:
        await conn.execute("ALTER TABLE rule_state_away RENAME TO rule_state")
    await worker.handle(_batch(second, offset=1))
    heard = second.received_at.isoformat()
    assert _heard_and_seen(store) == (heard, [first.event_id, second.event_id])


def _heard_and_seen(store: RuleStateStore) -> tuple[str, list[str]]:
    """dev-1's state: when it was last heard from, the readings the vitals rule counted."""
    state = store.state("dev-1")
    return state["device_offline"]["last_heard"], state["vitals"]["seen"]


def _reading(at: datetime, n: int) -> Event:
    return make_event(
        device_id="dev-1", kind="vitals", ts=at, received_at=at, source="native",
        fields={"heart_rate_bpm": 70}, msg_id=str(n),
    )  # fmt: skip


def _batch(event: Event, *, offset: int) -> Batch[Event]:
    """One event as the rules worker reads it off carewatch.events.v1 (partition 0)."""
    value = event_to_json(event)
    record = ConsumerRecord(EVENTS_TOPIC, 0, offset, 0, 0, None, value, None, 0, len(value), ())
    return Batch(items=[event], sources=[record], offsets={0: offset + 1})


async def _store_under_12(pool: asyncpg.Pool, states: dict[str, dict[str, object]]) -> None:
    """What a rules worker stored while the topics had 12 partitions."""
    store = RuleStateStore(pool=pool, group_id="rules", topic=EVENTS_TOPIC)
    await store.assigned(set(range(12)))
    for device in states:
        store.state(device, _partition(device, 12))
    async with pool.acquire() as conn:
        await store.save(conn, states, {p: 100 for p in range(12)})


async def test_each_state_is_loaded_by_the_owner_of_its_new_partition(
    db: asyncpg.Pool,
) -> None:
    devices = [f"dev-{n}" for n in range(40)]
    states = {d: {"device_offline": {"device": d, "raised": f"offline:{d}"}} for d in devices}
    moving = [d for d in devices if _partition(d, 12) != _partition(d, 4)]
    assert moving  # else this would show nothing
    await _store_under_12(db, states)

    async with db.acquire() as conn:
        await topics_made_anew(conn, partitions=4)

    for partition in range(4):
        owner = RuleStateStore(pool=db, group_id="rules", topic=EVENTS_TOPIC)
        positions = await owner.assigned({partition})
        assert positions == {}  # the new topic's records are read from its start
        mine = [d for d in devices if _partition(d, 4) == partition]
        assert sorted(owner.devices()) == sorted(mine)
        assert all(owner.state(d) == states[d] for d in mine)


async def test_move_state_files_states_by_the_events_topics_partitions(
    db: asyncpg.Pool,
    own_database: str,
    stack: EmbeddedStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`carewatch rules move-state`, for a cluster whose events topic got more partitions:
    it asks Kafka how many there are now, and keeps the stored positions."""
    partitions = await partition_count(stack.kafka_bootstrap, EVENTS_TOPIC)
    devices = [f"dev-{n}" for n in range(40)]
    states = {d: {"battery": {"lowest": n}} for n, d in enumerate(devices)}
    await _store_under_12(db, states)
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", own_database)
    monkeypatch.setenv("CAREWATCH_KAFKA_BOOTSTRAP", stack.kafka_bootstrap)

    assert await asyncio.to_thread(main, ["rules", "move-state"]) == 0
    moved = sum(_partition(d, 12) != _partition(d, partitions) for d in devices)
    assert f"moved {moved} of 40 devices' rule state" in capsys.readouterr().out
    owner = RuleStateStore(pool=db, group_id="rules", topic=EVENTS_TOPIC)
    positions = await owner.assigned(set(range(partitions)))
    assert positions == dict.fromkeys(range(partitions), 100)  # a cluster keeps its offsets
    assert all(owner.state(d) == states[d] for d in devices)

    monkeypatch.setenv("CAREWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens
    assert await asyncio.to_thread(main, ["rules", "move-state"]) == 1
    assert "carewatch:" in capsys.readouterr().err
