"""The simulated fleet's residents in the database: for each simulated device without a
resident, the person simulators/people.py makes for it (profile, contacts, escalation
ladder, home safe zone), and the device pointed at them.

Idempotent across runs of `carewatch up --simulate N` on one data directory: a device that
already has a resident keeps them, as they are (an operator may have changed them since),
and a community's care worker, shared by its residents, is found again rather than
created twice. Everything goes through the store modules (devices/residents.py,
devices/contacts.py, devices/registry.py), inside the caller's transaction, so a failed
run leaves no half-made person behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from devices import contacts, registry, residents
from simulators.people import Contact, Person

__all__ = ["give_people"]


async def give_people(conn: asyncpg.Connection, people: Sequence[Person]) -> tuple[int, int]:
    """Create the resident of every device in `people` that has none and link the device to
    them; returns (created, kept). The devices must be registered. Call in a transaction."""
    created = 0
    for person in people:
        device = await registry.get_device(conn, person.device_id)
        if device.resident_id is None:
            resident_id = await _create(conn, person)
            await registry.update_device(conn, person.device_id, {"resident_id": resident_id})
            created += 1
    return created, len(people) - created


async def _create(conn: asyncpg.Connection, person: Person) -> int:
    """The person's resident row, contacts, ladder and zone; returns the resident id."""
    resident_id: int = (await residents.create_resident(conn, person.profile))["resident_id"]
    contact_ids = [await _contact_id(conn, contact) for contact in person.contacts]
    steps = person.ladder_steps(contact_ids)
    problems = contacts.check_ladder(steps, person.repeat)
    if problems:  # a generator bug; refuse it here rather than store what the API would not
        raise ValueError(f"simulated ladder for {person.device_id}: {'; '.join(problems)}")
    await contacts.set_ladder(conn, resident_id, steps, person.repeat)
    await contacts.link(conn, resident_id, contact_ids)  # those off the ladder too
    await residents.set_rule_overrides(conn, resident_id, person.overrides())
    return resident_id


async def _contact_id(conn: asyncpg.Connection, contact: Contact) -> int:
    """The contact's id: an existing one for a shared contact (the community's care
    worker, by name, relationship and area), otherwise a new one."""
    if contact.shared:
        found, _ = await contacts.list_contacts(
            conn, scope=contact.area, area=contact.area, q=contact.name,
            relationship=contact.relationship, limit=20,
        )  # fmt: skip
        for row in found:
            if row["name"] == contact.name and row["area"] == contact.area:
                return int(row["contact_id"])
    stored = await contacts.create_contact(conn, contact.fields(), contact.channel_rows())
    return int(stored["contact_id"])
