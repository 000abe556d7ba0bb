"""The rules worker's stored state when the events topic's partition count changes: the
embedded Kafka started anew (alerts/rule_state.py `topics_made_anew`) or partitions added
on a cluster (`carewatch rules move-state`). Each device's state must be found by the
worker that owns its new partition.

A database of its own: the shared one's positions belong to the running pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from alerts.rule_state import RuleStateStore, topics_made_anew
from carewatch.cli import main
from carewatch.embedded import EmbeddedStack
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
