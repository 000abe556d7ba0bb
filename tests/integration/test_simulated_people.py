"""`carewatch simulate` gives its devices residents (profile, contacts, ladder, home zone)
in the real database, once: a rerun keeps them as they are."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from carewatch.embedded import EmbeddedStack
from carewatch.simulate import register_fleet
from devices import contacts, registry, residents
from simulators.fleet import FORMATS, plan_fleet
from simulators.people import Person, make_people

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def conn(stack: EmbeddedStack) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(stack.database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def _register(
    stack: EmbeddedStack, plan: list[tuple[str, str]], people: list[Person]
) -> None:
    formats = {device_id: FORMATS[kind] for kind, device_id in plan}
    await register_fleet(stack.settings, list(formats), stack.mqtt_url, formats, people)


async def _resident_of(conn: asyncpg.Connection, device_id: str) -> int:
    resident_id = (await registry.get_device(conn, device_id)).resident_id
    assert resident_id is not None, f"{device_id} has no resident"
    return resident_id


async def test_each_simulated_device_gets_its_resident_once(
    stack: EmbeddedStack, conn: asyncpg.Connection
) -> None:
    plan = plan_fleet(4, {"watch": 2, "button": 1, "phone": 1}, prefix=f"p{uuid.uuid4().hex[:6]}-")
    people = make_people(plan, seed=5)
    await _register(stack, plan, people)

    first = {p.device_id: await _resident_of(conn, p.device_id) for p in people}
    assert len(set(first.values())) == len(people)  # one resident each
    for person in people:
        await _stored_as_made(conn, first[person.device_id], person)

    # What an operator changes in between is kept, and nothing is made twice.
    changed = next(iter(first.values()))
    await residents.update_resident(conn, changed, {"name": "改过的名字"})
    counts = await _counts(conn, people)
    await _register(stack, plan, people)
    again = {p.device_id: await _resident_of(conn, p.device_id) for p in people}
    assert again == first
    assert await _counts(conn, people) == counts
    resident = await residents.get_resident(conn, changed)
    assert resident is not None and resident["name"] == "改过的名字"


async def test_the_rules_worker_gets_each_device_its_home_zone(
    stack: EmbeddedStack, conn: asyncpg.Connection
) -> None:
    plan = plan_fleet(2, {"watch": 1, "phone": 1}, prefix=f"z{uuid.uuid4().hex[:6]}-")
    people = make_people(plan, seed=6)
    await _register(stack, plan, people)
    configs = {row["device_id"]: row for row in await residents.device_rule_configs(conn)}
    for person in people:
        row = configs[person.device_id]
        assert row["timezone"] == "Asia/Shanghai"
        assert row["overrides"]["geofence"]["zones"] == [dict(z) for z in person.zones]


async def test_neighbours_in_one_community_share_its_care_worker(
    stack: EmbeddedStack, conn: asyncpg.Connection
) -> None:
    plan = plan_fleet(200, {"button": 1}, prefix=f"w{uuid.uuid4().hex[:6]}-")
    by_area: dict[str, list[tuple[tuple[str, str], Person]]] = {}
    for entry, person in zip(plan, make_people(plan, seed=7), strict=True):
        by_area.setdefault(person.profile["area"], []).append((entry, person))
    pair = next(group[:2] for group in by_area.values() if len(group) > 1)
    await _register(stack, [entry for entry, _ in pair], [person for _, person in pair])
    workers = [
        {c["contact_id"] for c in await contacts.contacts_of_resident(conn, resident_id)
         if c["relationship"] == "community_worker"}
        for resident_id in [await _resident_of(conn, p.device_id) for _, p in pair]
    ]  # fmt: skip
    assert len(workers[0]) == 1 and workers[0] == workers[1]


async def _stored_as_made(conn: asyncpg.Connection, resident_id: int, person: Person) -> None:
    resident = await residents.get_resident(conn, resident_id)
    assert resident is not None
    assert {k: resident[k] for k in person.profile} == dict(person.profile)
    linked = await contacts.contacts_of_resident(conn, resident_id)
    assert sorted((c["name"], c["relationship"]) for c in linked) == sorted(
        (c.name, c.relationship) for c in person.contacts
    )
    assert all(c["on_ladder"] and c["channels"] for c in linked)
    # Two contacts may share a name (the generator draws names): told apart by phones too.
    ids = {(c["name"], tuple(c["phones"])): c["contact_id"] for c in linked}
    ladder = await contacts.get_ladder(conn, resident_id)
    assert ladder["repeat"] == person.repeat
    made = [ids[(c.name, c.phones)] for c in person.contacts]
    assert ladder["steps"] == person.ladder_steps(made)
    assert await residents.overrides_of(conn, resident_id) == person.overrides()


async def _counts(conn: asyncpg.Connection, people: list[Person]) -> dict[str, Any]:
    """How many residents and contacts these people's names and areas have."""
    names = [p.profile["name"] for p in people] + ["改过的名字"]
    areas = sorted({p.profile["area"] for p in people})
    return {
        "residents": await conn.fetchval(
            "SELECT count(*) FROM residents WHERE name = ANY($1)", names
        ),
        "contacts": await conn.fetchval(
            "SELECT count(*) FROM contacts WHERE area = ANY($1)", areas
        ),
        "ladder_steps": await conn.fetchval(
            "SELECT count(*) FROM escalation_steps WHERE resident_id = ANY($1)",
            [await _resident_of(conn, p.device_id) for p in people],
        ),
    }
