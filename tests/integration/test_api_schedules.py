"""On-call schedules over the API and through the notifier's store, against a real
PostgreSQL: who is on call at several instants, overrides that change it and deleting them
restores it, who may do what (roles, areas), the validation, the audit rows, the supervisor
on duty of the most specific area, and contacts a schedule names that cannot vanish.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from api.app import create_app
from carewatch.embedded import EmbeddedStack
from devices import contacts, residents
from notifier import schedule_store
from plumbing.db import connect_pool
from tests.integration.test_api import Login, _audit, _user
from tests.integration.test_api_residents import _contact

pytestmark = pytest.mark.integration

S = "/api/v1/schedules"
C = "/api/v1/contacts"
WEEK = 7 * 86400
MONDAY = "2026-01-05T08:00:00+08:00"  # the weekly hand-off, 08:00 on Mondays in Shanghai
T0 = datetime.fromisoformat(MONDAY)


@pytest_asyncio.fixture(scope="module")
async def pool(stack: EmbeddedStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(stack.database_url, max_size=8)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module")
async def api(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(pool=pool))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


@pytest.fixture
def area() -> str:
    return f"test-{uuid.uuid4().hex[:8]}/xuhui"


async def _schedule(api: httpx.AsyncClient, who: Login, **body: Any) -> dict[str, Any]:
    answer = await api.post(S, json={"name": "Xuhui night desk", **body}, headers=who.auth)
    assert answer.status_code == 201, answer.text
    schedule: dict[str, Any] = answer.json()
    return schedule


async def _on_call(api: httpx.AsyncClient, who: Login, sid: int, at: datetime) -> list[int]:
    answer = await api.get(f"{S}/{sid}/on-call", params={"at": at.isoformat()}, headers=who.auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["schedule_id"] == sid
    assert datetime.fromisoformat(answer.json()["at"]) == at
    return [c["contact_id"] for c in answer.json()["contacts"]]


def _weekly(contact_ids: list[int], start: str = MONDAY) -> dict[str, Any]:
    return {"contacts": contact_ids, "start": start}


# -- round trips and who is on call --------------------------------------------------------


async def test_a_schedule_round_trips_and_says_who_is_on_call(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    operator = await _user(pool, "operator", area)
    a, b, c = [await _contact(api, supervisor, name=n) for n in ("Li", "Wang", "Zhang")]
    day = await _contact(api, supervisor, name="Day desk")
    created = await _schedule(
        api, supervisor,
        rotations=[_weekly([a, b, c]),
                   {"contacts": [day], "start": "2026-01-05T01:00:00Z", "shift_s": 86400}],
    )  # fmt: skip
    sid = created["schedule_id"]
    assert created["area"] == area and created["role"] == "oncall"
    assert created["time_zone"] == "Asia/Shanghai"
    assert created["rotations"][0] == {"contacts": [a, b, c], "start": "2026-01-05T00:00:00Z",
                                       "shift_s": WEEK}  # fmt: skip
    assert created["overrides"] == []
    assert (await api.get(f"{S}/{sid}", headers=operator.auth)).json() == created

    assert await _on_call(api, operator, sid, T0 - timedelta(seconds=1)) == []
    assert await _on_call(api, operator, sid, T0) == [a]  # the daily one starts at 09:00
    assert await _on_call(api, operator, sid, T0 + timedelta(hours=1)) == [a, day]
    assert await _on_call(api, operator, sid, T0 + timedelta(weeks=1)) == [b, day]
    assert await _on_call(api, operator, sid, T0 + timedelta(weeks=3, days=2)) == [a, day]
    named = await api.get(f"{S}/{sid}/on-call", params={"at": MONDAY}, headers=operator.auth)
    assert named.json()["contacts"] == [{"contact_id": a, "name": "Li"}]
    now = await api.get(f"{S}/{sid}/on-call", headers=operator.auth)  # default: now
    assert now.status_code == 200 and len(now.json()["contacts"]) <= 2

    replaced = await api.put(
        f"{S}/{sid}",
        json={"name": "Xuhui days", "role": "supervisors", "time_zone": "Europe/Paris",
              "rotations": [_weekly([c, a])]},
        headers=supervisor.auth,
    )  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["name"] == "Xuhui days" and replaced.json()["role"] == "supervisors"
    assert await _on_call(api, operator, sid, T0 + timedelta(weeks=1)) == [a]

    audit = await _audit(pool, f"schedule:{sid}")
    assert [x["action"] for x in audit] == ["schedule.create", "schedule.update"]
    assert audit[0]["before"] is None and audit[0]["after"]["rotations"][0]["contacts"] == [a, b, c]
    assert audit[1]["before"]["name"] == "Xuhui night desk"
    assert audit[1]["after"]["rotations"] == [
        {"contacts": [c, a], "start": "2026-01-05T00:00:00+00:00", "shift_s": WEEK}
    ]
    assert all(x["actor"] == supervisor.name for x in audit)

    assert (await api.delete(f"{S}/{sid}", headers=supervisor.auth)).status_code == 204
    assert (await api.get(f"{S}/{sid}", headers=operator.auth)).status_code == 404
    assert (await _audit(pool, f"schedule:{sid}"))[-1]["action"] == "schedule.delete"
    assert (await api.delete(f"{C}/{a}", headers=supervisor.auth)).status_code == 204


async def test_an_override_changes_who_is_on_call_until_it_is_deleted(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    a, b, stand_in, other = [await _contact(api, supervisor, name=n) for n in "ABCD"]
    sid = (await _schedule(api, supervisor, rotations=[_weekly([a, b])]))["schedule_id"]
    during = T0 + timedelta(days=2)
    holiday = {"contact_id": stand_in, "starts_at": "2026-01-06T08:00:00+08:00",
               "ends_at": "2026-01-09T08:00:00+08:00"}  # fmt: skip
    added = await api.post(f"{S}/{sid}/overrides", json=holiday, headers=supervisor.auth)
    assert added.status_code == 201, added.text
    oid = added.json()["override_id"]
    assert added.json()["contact_id"] == stand_in

    assert await _on_call(api, supervisor, sid, during) == [stand_in]
    assert await _on_call(api, supervisor, sid, T0 + timedelta(days=1)) == [stand_in]  # starts_at
    assert await _on_call(api, supervisor, sid, T0 + timedelta(days=4)) == [a]  # ends_at: out
    overlap = {**holiday, "contact_id": other, "starts_at": "2026-01-07T00:00:00Z"}
    oid2 = (await api.post(f"{S}/{sid}/overrides", json=overlap, headers=supervisor.auth)).json()[
        "override_id"
    ]
    assert await _on_call(api, supervisor, sid, during) == [stand_in, other]
    async with pool.acquire() as conn:  # the notifier's question, several schedules at once
        assert await schedule_store.on_call_now(conn, [sid, sid, 2**62], during) == {
            sid: [stand_in, other]
        }

    # A PUT without overrides keeps them.
    kept = await api.put(f"{S}/{sid}", json={"name": "x", "rotations": [_weekly([b, a])]},
                         headers=supervisor.auth)  # fmt: skip
    assert [o["override_id"] for o in kept.json()["overrides"]] == [oid, oid2]
    assert await _on_call(api, supervisor, sid, during) == [stand_in, other]

    for override_id in (oid, oid2):
        path = f"{S}/{sid}/overrides/{override_id}"
        assert (await api.delete(path, headers=supervisor.auth)).status_code == 204
        assert (await api.delete(path, headers=supervisor.auth)).status_code == 404
    assert await _on_call(api, supervisor, sid, during) == [b]  # the rotation again

    actions = [x["action"] for x in await _audit(pool, f"schedule:{sid}")]
    assert actions == ["schedule.create", "schedule.override_add", "schedule.override_add",
                       "schedule.update", "schedule.override_delete",
                       "schedule.override_delete"]  # fmt: skip
    deleted = (await _audit(pool, f"schedule:{sid}"))[-2]
    assert deleted["before"]["contact_id"] == stand_in and deleted["after"] is None

    # A PUT with overrides replaces them; with [] clears them.
    body = {"name": "x", "rotations": [_weekly([a])], "overrides": [holiday]}
    put = (await api.put(f"{S}/{sid}", json=body, headers=supervisor.auth)).json()
    assert [o["contact_id"] for o in put["overrides"]] == [stand_in]
    cleared = await api.put(f"{S}/{sid}", json={**body, "overrides": []}, headers=supervisor.auth)
    assert cleared.json()["overrides"] == []


# -- who may do what -----------------------------------------------------------------------


async def test_schedules_are_scoped_and_operators_only_read(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", f"{area}/a")
    supervisor = await _user(pool, "supervisor", f"{area}/a")
    admin = await _user(pool, "admin", area)
    mine_c = await _contact(api, supervisor)
    theirs_c = await _contact(api, admin, area=f"{area}/ab")
    mine = (await _schedule(api, supervisor, rotations=[_weekly([mine_c])]))["schedule_id"]
    theirs = (await _schedule(api, admin, area=f"{area}/ab", rotations=[_weekly([theirs_c])]))[
        "schedule_id"
    ]

    body = {"name": "x", "rotations": [_weekly([mine_c])]}
    override = {"contact_id": mine_c, "starts_at": MONDAY, "ends_at": "2026-01-06T08:00:00+08:00"}
    writes = [
        ("post", S, body), ("put", f"{S}/{mine}", body), ("delete", f"{S}/{mine}", None),
        ("post", f"{S}/{mine}/overrides", override), ("delete", f"{S}/{mine}/overrides/1", None),
    ]  # fmt: skip
    for method, url, json in writes:
        answer = await api.request(method, url, json=json, headers=operator.auth)
        assert answer.status_code == 403, (method, url, answer.text)
        assert "supervisor role" in answer.json()["detail"]
    assert (await api.get(f"{S}/{mine}", headers=operator.auth)).status_code == 200
    assert (await api.get(f"{S}/{mine}/on-call", headers=operator.auth)).status_code == 200

    for method, url, json in [("get", f"{S}/{theirs}", None),
                              ("get", f"{S}/{theirs}/on-call", None),
                              ("put", f"{S}/{theirs}", body),
                              ("delete", f"{S}/{theirs}", None),
                              ("post", f"{S}/{theirs}/overrides", override)]:  # fmt: skip
        answer = await api.request(method, url, json=json, headers=supervisor.auth)
        assert answer.status_code == 403, (method, url, answer.text)
        assert "outside yours" in answer.json()["detail"]
    assert (await api.get(f"{S}/{2**62}", headers=supervisor.auth)).status_code == 404
    outside = await api.post(S, json={**body, "area": f"{area}/ab"}, headers=supervisor.auth)
    assert outside.status_code == 403
    moved = await api.put(f"{S}/{mine}", json={**body, "area": area}, headers=supervisor.auth)
    assert moved.status_code == 403

    listed = (await api.get(S, headers=operator.auth)).json()
    ids = {s["schedule_id"] for s in listed["items"]}
    assert mine in ids and theirs not in ids
    assert (await api.get(S, params={"area": area}, headers=operator.auth)).status_code == 403
    everything = (await api.get(S, params={"area": area}, headers=admin.auth)).json()["items"]
    assert {mine, theirs} <= {s["schedule_id"] for s in everything}


async def test_the_list_filters_by_role_and_pages(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    someone = await _contact(api, supervisor)
    for name, role in (("b", "oncall"), ("a", "supervisors"), ("c", "oncall"), ("a", "oncall")):
        await _schedule(api, supervisor, name=name, role=role, rotations=[_weekly([someone])])
    seen: list[tuple[str, str]] = []
    params: dict[str, Any] = {"limit": 3}
    for _ in range(3):
        page = (await api.get(S, params=params, headers=supervisor.auth)).json()
        seen += [(s["name"], s["role"]) for s in page["items"]]
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert seen == [("a", "supervisors"), ("a", "oncall"), ("b", "oncall"), ("c", "oncall")]
    supervisors = await api.get(S, params={"role": "supervisors"}, headers=supervisor.auth)
    assert [s["name"] for s in supervisors.json()["items"]] == ["a"]
    bad = await api.get(S, params={"cursor": "bm90IGEgY3Vyc29y"}, headers=supervisor.auth)
    assert bad.status_code == 422


async def test_bad_schedules_are_422_naming_what_is_wrong(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", f"{area}/a")
    admin = await _user(pool, "admin", area)
    someone = await _contact(api, supervisor)
    elsewhere = await _contact(api, admin, area=f"{area}/b")
    good = {"name": "x", "rotations": [_weekly([someone])]}
    ok = {"contact_id": someone, "starts_at": MONDAY, "ends_at": "2026-01-06T08:00:00+08:00"}
    wrong: list[tuple[dict[str, Any], str]] = [
        ({**good, "rotations": [_weekly([someone, 2**62])]}, f"no contact {2**62} in your area"),
        ({**good, "rotations": [_weekly([elsewhere])]}, f"no contact {elsewhere} in your area"),
        ({**good, "overrides": [{**ok, "contact_id": elsewhere}]}, "in your area"),
        ({**good, "rotations": [_weekly([someone], "2026-01-05T08:00:00")]}, "timezone"),
        ({**good, "overrides": [{**ok, "ends_at": "2026-01-06T08:00:00"}]}, "timezone"),
        ({**good, "overrides": [{**ok, "ends_at": MONDAY}]}, "after starts_at"),
        ({**good, "rotations": [_weekly([someone], "1970-01-01T00:00:00Z")]}, "from 2000"),
        ({**good, "rotations": [{**_weekly([someone]), "shift_s": 60}]}, "shift_s"),
        ({**good, "rotations": [{**_weekly([someone]), "shift_s": 32 * 86400}]}, "shift_s"),
        ({**good, "rotations": []}, "rotations"),
        ({**good, "rotations": [_weekly([])]}, "contacts"),
        ({**good, "time_zone": "Mars/Olympus"}, "IANA"),
        ({**good, "role": "boss"}, "role"),
        ({**good, "colour": "red"}, "colour"),
        ({**good, "name": "a\x00b"}, "name"),
        ({"rotations": good["rotations"]}, "name"),
    ]
    for body, says in wrong:
        answer = await api.post(S, json=body, headers=supervisor.auth)
        assert answer.status_code == 422, (body, answer.text)
        assert says in str(answer.json()["detail"]), (body, answer.text)

    sid = (await _schedule(api, supervisor, **good))["schedule_id"]
    for at in ("2026-01-05T08:00:00", "yesterday", "1900-01-01T00:00:00Z"):
        answer = await api.get(f"{S}/{sid}/on-call", params={"at": at}, headers=supervisor.auth)
        assert answer.status_code == 422, (at, answer.text)
    naive = {**ok, "starts_at": "2026-01-05T08:00:00"}
    assert (
        await api.post(f"{S}/{sid}/overrides", json=naive, headers=supervisor.auth)
    ).status_code == 422
    stranger = {**ok, "contact_id": 2**62}
    refused = await api.post(f"{S}/{sid}/overrides", json=stranger, headers=supervisor.auth)
    assert refused.status_code == 422 and str(2**62) in refused.json()["detail"]
    gone = await api.post(f"{S}/{2**62}/overrides", json=ok, headers=supervisor.auth)
    assert gone.status_code == 404
    assert [x["action"] for x in await _audit(pool, f"schedule:{sid}")] == ["schedule.create"]


# -- for the notifier ----------------------------------------------------------------------


async def test_the_supervisor_on_duty_is_of_the_most_specific_area_with_someone_on(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    admin = await _user(pool, "admin", area)
    city, district, community, night, everywhere = [
        await _contact(api, admin, name=n) for n in ("city", "district", "community", "n", "top")
    ]
    at = T0 + timedelta(days=1)

    async def duty(where: str, when: datetime = at) -> list[int]:
        async with pool.acquire() as conn:
            return await schedule_store.supervisors_on_duty(conn, where, when)

    await _schedule(api, admin, role="supervisors", rotations=[_weekly([city])])
    await _schedule(api, admin, role="supervisors", area=f"{area}/tianping",
                    rotations=[_weekly([district])])  # fmt: skip
    # Most specific of all, but nobody on before 2026-02: the next one up answers till then.
    await _schedule(api, admin, role="supervisors", area=f"{area}/tianping/c3",
                    rotations=[_weekly([community], "2026-02-02T08:00:00+08:00")])  # fmt: skip
    # Not supervisors: never asked.
    await _schedule(api, admin, area=f"{area}/tianping/c3/x", rotations=[_weekly([night])])

    assert await duty(f"{area}/tianping/c3/x") == [district]
    assert await duty(f"{area}/tianping/c3", datetime(2026, 2, 3, tzinfo=UTC)) == [community]
    assert await duty(f"{area}/tianping") == [district]
    assert await duty(f"{area}/tianpingx") == [city]  # a prefix, not below
    assert await duty(area) == [city]
    mine = {city, district, community, night}
    assert not mine & set(await duty(f"{area}/tianping", T0 - timedelta(days=1)))  # not started
    assert not mine & set(await duty(f"{area}x"))  # only '' covers it

    # Two schedules of one area: all their people. '' covers every area.
    await _schedule(api, admin, role="supervisors", area=f"{area}/tianping",
                    rotations=[_weekly([night])])  # fmt: skip
    assert await duty(f"{area}/tianping/c3") == [district, night]
    async with pool.acquire() as conn:
        trying = conn.transaction()  # rolled back: a schedule at the top would be everyone's
        await trying.start()
        try:
            await schedule_store.create_schedule(
                conn, {"name": "top", "area": "", "role": "supervisors"},
                [{"contacts": [everywhere], "start": T0, "shift_s": WEEK}],
            )  # fmt: skip
            assert everywhere in await schedule_store.supervisors_on_duty(conn, f"{area}x", at)
            assert await schedule_store.supervisors_on_duty(conn, area, at) == [city]
        finally:
            await trying.rollback()


async def test_a_contact_on_a_schedule_cannot_be_deleted(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    rostered, standing_in = await _contact(api, supervisor), await _contact(api, supervisor)
    sid = (await _schedule(api, supervisor, rotations=[_weekly([rostered])]))["schedule_id"]
    override = {"contact_id": standing_in, "starts_at": MONDAY, "ends_at": "2026-01-06T00:00:00Z"}
    assert (
        await api.post(f"{S}/{sid}/overrides", json=override, headers=supervisor.auth)
    ).status_code == 201

    async with pool.acquire() as conn:
        for contact_id, constraint in ((rostered, "schedule_rotation_contacts_contact_fk"),
                                       (standing_in, "schedule_overrides_contact_fk")):  # fmt: skip
            assert await schedule_store.schedules_naming(conn, contact_id) == [sid]
            with pytest.raises(asyncpg.ForeignKeyViolationError) as refused:
                await contacts.delete_contact(conn, contact_id)
            assert refused.value.constraint_name == constraint
            assert constraint in schedule_store.CONTACT_CONSTRAINTS
    answer = await api.delete(f"{C}/{rostered}", headers=supervisor.auth)
    assert answer.status_code == 409  # the contacts route, whatever its message
    assert (await api.get(f"{C}/{rostered}", headers=supervisor.auth)).status_code == 200

    assert (await api.delete(f"{S}/{sid}", headers=supervisor.auth)).status_code == 204
    async with pool.acquire() as conn:
        assert await schedule_store.schedules_naming(conn, rostered) == []
    for contact_id in (rostered, standing_in):
        assert (await api.delete(f"{C}/{contact_id}", headers=supervisor.auth)).status_code == 204


async def test_a_schedule_a_ladder_step_names_is_not_deleted(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    outsider = await _user(pool, "supervisor", f"{area}x")
    sid = (
        await _schedule(api, supervisor, rotations=[_weekly([await _contact(api, supervisor)])])
    )["schedule_id"]
    async with pool.acquire() as conn:
        assert await schedule_store.visible(conn, area, [sid, 2**62]) == {sid}
        assert await schedule_store.visible(conn, f"{area}x", [sid]) == set()
        assert await schedule_store.visible(conn, "", [sid]) == {sid}
        rid = await residents.add_resident(conn, name="Wang Fang", area=area)
        await conn.execute("INSERT INTO escalations (resident_id, repeat) VALUES ($1, 0)", rid)
        await conn.execute(
            "INSERT INTO escalation_steps (resident_id, step, wait_s) VALUES ($1, 0, 60)", rid
        )
        await conn.execute(
            "INSERT INTO escalation_step_schedules (resident_id, step, position, schedule_id)"
            " VALUES ($1, 0, 0, $2)",
            rid, sid,
        )  # fmt: skip
    assert (await api.delete(f"{S}/{sid}", headers=outsider.auth)).status_code == 403
    refused = await api.delete(f"{S}/{sid}", headers=supervisor.auth)
    assert refused.status_code == 409
    assert "named by an escalation step" in refused.json()["detail"]
    assert (await api.get(f"{S}/{sid}", headers=supervisor.auth)).status_code == 200
    assert [x["action"] for x in await _audit(pool, f"schedule:{sid}")] == ["schedule.create"]

    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM escalations WHERE resident_id = $1", rid)
    assert (await api.delete(f"{S}/{sid}", headers=supervisor.auth)).status_code == 204


async def test_the_openapi_document_lists_the_schedule_endpoints(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/api/v1/openapi.json")).json()["paths"]
    for path in (S, f"{S}/{{schedule_id}}", f"{S}/{{schedule_id}}/overrides",
                 f"{S}/{{schedule_id}}/overrides/{{override_id}}",
                 f"{S}/{{schedule_id}}/on-call"):  # fmt: skip
        assert path in paths, path
