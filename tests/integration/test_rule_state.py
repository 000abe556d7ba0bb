"""The rules worker's stored state when the embedded Kafka comes back with another
partition count (alerts/rule_state.py `topics_made_anew`): each device's state is found
by the worker that owns its new partition, and no stored position survives.

A database of its own: the shared one's positions belong to the running pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from alerts.rule_state import RuleStateStore, topics_made_anew
from plumbing.db import connect_pool
from plumbing.kafka import EVENTS_TOPIC, CachedPartitioner

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
