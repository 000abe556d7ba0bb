"""Residents, contacts and the contact ladder over the API, against a real PostgreSQL: CRUD
round trips with their audit rows, who may do what (roles, areas), secrets that never come
back, the ladder's validation, and a resident's timeline and charts from stored events.
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

from alerts import event_store, store
from alerts.rules import RaiseAlert
from api.app import create_app
from carewatch.embedded import EmbeddedStack
from devices import contacts
from devices.events import Event, make_event
from devices.registry import add_device
from plumbing.db import connect_pool
from tests.integration.test_api import Login, _audit, _user

pytestmark = pytest.mark.integration

R = "/api/v1/residents"
C = "/api/v1/contacts"
SECRET = "s3cret-hmac-key-that-must-never-leave"


@pytest_asyncio.fixture(scope="module")
async def pool(stack: EmbeddedStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(stack.database_url, max_size=8, init=event_store.prepare_staging)
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


PROFILE: dict[str, Any] = {
    "name": "王芳",
    "sex": "female",
    "birth_year": 1941,
    "address": "天平路 12 弄 3 号 401",
    "home": {"lat": 31.2, "lon": 121.44},
    "phone": "+86 21 6408 1234",
    "languages": ["zh-CN", "wuu"],
    "dialect": "Shanghainese; hard of hearing, speak slowly",
    "living_alone": True,
    "medical_notes": "atrial fibrillation; walks with a frame",
    "allergies": "penicillin",
    "gp": {"name": "Dr Li", "phone": "+86 21 6400 0000"},
    "photo_url": "https://photos.example/wang.jpg",
    "timezone": "Asia/Shanghai",
}


async def _resident(api: httpx.AsyncClient, who: Login, area: str, **more: Any) -> dict[str, Any]:
    answer = await api.post(R, json={**PROFILE, "area": area, **more}, headers=who.auth)
    assert answer.status_code == 201, answer.text
    resident: dict[str, Any] = answer.json()
    return resident


async def _contact(api: httpx.AsyncClient, who: Login, **more: Any) -> int:
    body = {"name": "Wang Wei", "relationship": "family", "language": "zh-CN",
            "channels": [{"type": "sms", "address": "+86 138 0000 0000"}], **more}  # fmt: skip
    answer = await api.post(C, json=body, headers=who.auth)
    assert answer.status_code == 201, answer.text
    contact_id: int = answer.json()["contact_id"]
    return contact_id


def _event(device: str, kind: str, ts: datetime, **fields: Any) -> Event:
    return make_event(device_id=device, kind=kind, ts=ts, received_at=ts, source="native",
                      fields=fields, msg_id=f"{kind}-{ts.isoformat()}")  # fmt: skip


async def _store(pool: asyncpg.Pool, events: list[Event]) -> None:
    async with pool.acquire() as conn:
        await event_store.store_rows(conn, [event_store.event_row(e) for e in events])


# -- residents ---------------------------------------------------------------------------


async def test_a_resident_round_trips_with_audit_rows(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    created = await _resident(api, supervisor, f"{area}/tianping")
    rid = created["resident_id"]
    assert {k: created[k] for k in PROFILE} == PROFILE
    assert created["area"] == f"{area}/tianping"
    assert created["devices"] == [] and created["rules"] == {}

    fetched = await api.get(f"{R}/{rid}", headers=supervisor.auth)
    assert fetched.json() == created

    patch = {"phone": "021-6408 9999", "gp": None, "living_alone": False}
    changed = await api.patch(f"{R}/{rid}", json=patch, headers=supervisor.auth)
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in patch} == patch
    assert changed.json()["name"] == PROFILE["name"]  # untouched

    audit = await _audit(pool, f"resident:{rid}")
    assert [a["action"] for a in audit] == ["resident.create", "resident.update"]
    assert audit[0]["before"] is None and audit[0]["after"]["name"] == "王芳"
    assert audit[1]["before"]["gp"] == PROFILE["gp"] and audit[1]["after"]["gp"] is None
    assert all(a["actor"] == supervisor.name for a in audit)

    assert (await api.delete(f"{R}/{rid}", headers=supervisor.auth)).status_code == 403
    admin = await _user(pool, "admin", area)
    assert (await api.delete(f"{R}/{rid}", headers=admin.auth)).status_code == 204
    assert (await api.get(f"{R}/{rid}", headers=admin.auth)).status_code == 404
    assert (await _audit(pool, f"resident:{rid}"))[-1]["after"] is None


async def test_a_resident_with_devices_or_open_alerts_is_not_deleted(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    admin = await _user(pool, "admin", area)
    rid = (await _resident(api, admin, area))["resident_id"]
    device = f"res-{uuid.uuid4().hex[:12]}"
    async with pool.acquire() as conn:
        await add_device(conn, device_id=device, format="native", resident_id=rid)
        await store.apply_decisions(
            conn, [RaiseAlert("sos", "critical", device, datetime.now(UTC), f"{device}:1", "SOS")]
        )
    refused = await api.delete(f"{R}/{rid}", headers=admin.auth)
    assert refused.status_code == 409
    assert "1 device(s) assigned; 1 alert(s) not resolved" in refused.json()["detail"]
    detail = (await api.get(f"{R}/{rid}", headers=admin.auth)).json()
    assert [d["device_id"] for d in detail["devices"]] == [device]
    assert detail["devices"][0]["battery_pct"] is None


async def test_roles_and_areas_decide_who_sees_and_changes_residents(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", f"{area}/a")
    supervisor = await _user(pool, "supervisor", f"{area}/a")
    admin = await _user(pool, "admin", area)
    mine = await _resident(api, supervisor, f"{area}/a/community-1")
    theirs = await _resident(api, admin, f"{area}/ab")  # a prefix, not below

    denied = await api.post(R, json={**PROFILE, "area": f"{area}/a"}, headers=operator.auth)
    assert denied.status_code == 403
    assert "supervisor role" in denied.json()["detail"]
    outside = await api.post(R, json={**PROFILE, "area": f"{area}/b"}, headers=supervisor.auth)
    assert outside.status_code == 403
    default = await _resident(api, supervisor, area=None)  # type: ignore[arg-type]
    assert default["area"] == f"{area}/a"  # the creator's

    assert (await api.get(f"{R}/{mine['resident_id']}", headers=operator.auth)).status_code == 200
    path = f"{R}/{theirs['resident_id']}"
    for method, kwargs in (("get", {}), ("patch", {"json": {"phone": "110"}})):
        answer = await api.request(method, path, headers=supervisor.auth, **kwargs)
        assert answer.status_code == 403 and "outside yours" in answer.json()["detail"]
    for suffix in ("/timeline", "/positions", "/vitals", "/contacts", "/escalation"):
        assert (await api.get(path + suffix, headers=operator.auth)).status_code == 403
    moved = await api.patch(f"{R}/{mine['resident_id']}", json={"area": f"{area}/b"},
                            headers=supervisor.auth)  # fmt: skip
    assert moved.status_code == 403

    listed = await api.get(R, headers=operator.auth)
    ids = {r["resident_id"] for r in listed.json()["items"]}
    assert mine["resident_id"] in ids and theirs["resident_id"] not in ids
    assert (await api.get(R, params={"area": area}, headers=operator.auth)).status_code == 403
    assert (await api.patch(path, json={"phone": "110"}, headers=operator.auth)).status_code == 403


async def test_the_list_searches_by_name_and_pages(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    for name in ("Li Ming", "Li Hua", "Zhang 100%", "Zhang 1000", "Chen Li"):
        await _resident(api, supervisor, area, name=name)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    for _ in range(4):
        page = (await api.get(R, params=params, headers=supervisor.auth)).json()
        seen += [r["name"] for r in page["items"]]
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert seen == sorted(seen) and len(seen) == 5

    async def names(q: str) -> set[str]:
        page = await api.get(R, params={"q": q}, headers=supervisor.auth)
        return {r["name"] for r in page.json()["items"]}

    assert await names("li") == {"Li Ming", "Li Hua", "Chen Li"}
    assert await names("0%") == {"Zhang 100%"}  # % is a character here, not a wildcard
    other = await api.get(
        R, params={"cursor": "WyJhbGVydHM6bmV3ZXN0IiwxXQ"}, headers=supervisor.auth
    )
    assert other.status_code == 422


async def test_rule_overrides_are_validated_as_the_cli_does_and_admins_set_them(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    admin = await _user(pool, "admin", area)
    rid = (await _resident(api, supervisor, area))["resident_id"]
    good = {"vitals": {"heart_rate": {"critical_low": 38}}}
    path = f"{R}/{rid}/rules"
    assert (await api.put(path, json=good, headers=supervisor.auth)).status_code == 403
    answer = await api.put(path, json=good, headers=admin.auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rules"] == good
    bad = await api.put(
        path, json={"vitals": {"heart_rate": {"critical_low": "x"}}}, headers=admin.auth
    )
    assert bad.status_code == 422
    assert "vitals.heart_rate.critical_low" in bad.json()["detail"]
    unknown = await api.put(path, json={"nonsense": 1}, headers=admin.auth)
    assert unknown.status_code == 422 and "unknown key" in unknown.json()["detail"]
    assert (await api.get(f"{R}/{rid}", headers=admin.auth)).json()["rules"] == good
    audit = await _audit(pool, f"resident:{rid}")
    assert audit[-1]["action"] == "resident.rules"
    assert audit[-1]["before"] == {"rules": {}} and audit[-1]["after"] == {"rules": good}


# -- contacts and the ladder ---------------------------------------------------------------


async def test_contacts_round_trip_and_secrets_never_come_back(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    channels = [
        {"type": "webhook", "address": "https://hooks.example/care", "secret": SECRET},
        {"type": "email", "address": "wei@example.com"},
    ]
    created = await api.post(
        C, json={"name": "Wang Wei", "relationship": "family", "language": "zh-CN",
                 "phones": ["+86 138 0000 0000"], "channels": channels},
        headers=supervisor.auth,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    contact = created.json()
    cid = contact["contact_id"]
    assert contact["area"] == area  # the creator's
    assert contact["channels"] == [
        {"type": "webhook", "address": "https://hooks.example/care", "has_secret": True},
        {"type": "email", "address": "wei@example.com", "has_secret": False},
    ]
    # Re-sent without its secret (clients never see it), a channel keeps the stored one.
    patched = await api.patch(
        f"{C}/{cid}",
        json={"channels": [{k: v for k, v in channels[0].items() if k != "secret"}],
              "relationship": "neighbour"},
        headers=supervisor.auth,
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert patched.json()["channels"][0]["has_secret"] is True
    assert patched.json()["relationship"] == "neighbour"
    async with pool.acquire() as conn:
        assert await contacts.channel_secrets(conn, cid) == [
            {"type": "webhook", "address": "https://hooks.example/care", "secret": SECRET}
        ]

    answers = [
        created,
        patched,
        await api.get(f"{C}/{cid}", headers=supervisor.auth),
        await api.get(C, params={"q": "Wang"}, headers=supervisor.auth),
    ]
    assert cid in [c["contact_id"] for c in answers[-1].json()["items"]]
    for answer in answers:
        assert SECRET not in answer.text and '"secret"' not in answer.text
    audit = await _audit(pool, f"contact:{cid}")
    assert [a["action"] for a in audit] == ["contact.create", "contact.update"]
    assert SECRET not in str(audit)
    everything = await api.get("/api/v1/audit", params={"limit": 500}, headers=supervisor.auth)
    assert SECRET not in everything.text

    no_secret = await api.post(
        C, json={"name": "x", "relationship": "other", "channels": [channels[1], {
            "type": "webhook", "address": "https://hooks.example/x"}]},
        headers=supervisor.auth,
    )  # fmt: skip
    assert no_secret.status_code == 422 and "channels[1]" in no_secret.json()["detail"]

    assert (await api.delete(f"{C}/{cid}", headers=supervisor.auth)).status_code == 204
    assert (await api.get(f"{C}/{cid}", headers=supervisor.auth)).status_code == 404


async def test_contacts_are_scoped_and_operators_only_read(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", f"{area}/a")
    supervisor = await _user(pool, "supervisor", f"{area}/a")
    admin = await _user(pool, "admin", area)
    mine = await _contact(api, supervisor)
    theirs = await _contact(api, admin, area=f"{area}/b")
    body = {"name": "x", "relationship": "other", "language": "en", "channels": []}
    assert (await api.post(C, json=body, headers=operator.auth)).status_code == 403
    assert (await api.get(f"{C}/{mine}", headers=operator.auth)).status_code == 200
    assert (await api.get(f"{C}/{theirs}", headers=operator.auth)).status_code == 403
    assert (await api.delete(f"{C}/{theirs}", headers=supervisor.auth)).status_code == 403
    listed = await api.get(C, headers=operator.auth)
    ids = {c["contact_id"] for c in listed.json()["items"]}
    assert mine in ids and theirs not in ids
    outside = await api.post(C, json={**body, "area": f"{area}/b"}, headers=supervisor.auth)
    assert outside.status_code == 403


async def test_the_ladder_is_validated_stored_and_links_its_contacts(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", f"{area}/a")
    admin = await _user(pool, "admin", area)
    operator = await _user(pool, "operator", f"{area}/a")
    rid = (await _resident(api, supervisor, f"{area}/a"))["resident_id"]
    neighbour = await _contact(api, supervisor, name="Zhao", relationship="neighbour")
    worker = await _contact(api, supervisor, name="Sun", relationship="community_worker")
    daughter = await _contact(api, supervisor, name="Wang Wei")
    elsewhere = await _contact(api, admin, area=f"{area}/b")
    path = f"{R}/{rid}/escalation"

    empty = (await api.get(path, headers=operator.auth)).json()
    assert empty == {"resident_id": rid, "steps": [], "repeat": 0, "updated_at": None}
    ladder = {"steps": [{"contacts": [neighbour], "wait_s": 60},
                        {"contacts": [worker, daughter], "wait_s": 120}], "repeat": 2}  # fmt: skip
    assert (await api.put(path, json=ladder, headers=operator.auth)).status_code == 403
    stored = await api.put(path, json=ladder, headers=supervisor.auth)
    assert stored.status_code == 200, stored.text
    got = (await api.get(path, headers=operator.auth)).json()
    assert got["steps"] == [{**step, "schedules": []} for step in ladder["steps"]]
    assert got["repeat"] == ladder["repeat"]
    assert got["updated_at"] is not None

    wrong: list[tuple[dict[str, Any], str]] = [
        ({"steps": [], "repeat": 0}, "steps"),
        ({"steps": [{"contacts": [neighbour], "wait_s": 0}], "repeat": 0}, "wait_s"),
        ({"steps": [{"contacts": [neighbour], "wait_s": 86401}], "repeat": 0}, "wait_s"),
        ({"steps": [{"contacts": [neighbour], "wait_s": 60}], "repeat": 21}, "repeat"),
        ({"steps": [{"contacts": [], "wait_s": 60}], "repeat": 0}, "contacts"),
        ({"steps": [{"contacts": [neighbour, neighbour], "wait_s": 60}], "repeat": 0}, "twice"),
        ({"steps": [{"contacts": [2**62], "wait_s": 60}], "repeat": 0}, "in your area"),
        ({"steps": [{"contacts": [elsewhere], "wait_s": 60}], "repeat": 0}, "in your area"),
        ({"steps": [{"contacts": [neighbour], "wait_s": 60}]}, "repeat"),
        ({"steps": [{"contacts": [neighbour], "wait_s": 60, "x": 1}], "repeat": 0}, "x"),
        ({"steps": [{"contacts": ["one"], "wait_s": 60}], "repeat": 0}, "contacts"),
    ]
    for body, says in wrong:
        answer = await api.put(path, json=body, headers=supervisor.auth)
        assert answer.status_code == 422, (body, answer.text)
        assert says in str(answer.json()["detail"]), (body, answer.text)
    unchanged = (await api.get(path, headers=operator.auth)).json()["steps"]
    assert unchanged == [{**step, "schedules": []} for step in ladder["steps"]]

    linked = (await api.get(f"{R}/{rid}/contacts", headers=operator.auth)).json()["items"]
    assert {c["contact_id"]: c["on_ladder"] for c in linked} == {
        neighbour: True, worker: True, daughter: True}  # fmt: skip
    assert (await api.delete(f"{C}/{worker}", headers=supervisor.auth)).status_code == 409
    unlink = await api.delete(f"{R}/{rid}/contacts/{worker}", headers=supervisor.auth)
    assert unlink.status_code == 409
    extra = await _contact(api, supervisor, name="Dr Li", relationship="doctor")
    link = await api.put(f"{R}/{rid}/contacts/{extra}", headers=supervisor.auth)
    assert link.status_code == 204
    linked = (await api.get(f"{R}/{rid}/contacts", headers=operator.auth)).json()["items"]
    assert {c["contact_id"]: c["on_ladder"] for c in linked}[extra] is False
    assert (
        await api.delete(f"{R}/{rid}/contacts/{extra}", headers=supervisor.auth)
    ).status_code == 204
    forbidden = await api.put(f"{R}/{rid}/contacts/{elsewhere}", headers=supervisor.auth)
    assert forbidden.status_code == 403

    audit = await _audit(pool, f"resident:{rid}")
    ladder_rows = [a for a in audit if a["action"] == "resident.escalation"]
    assert len(ladder_rows) == 1 and ladder_rows[0]["before"]["steps"] == []
    assert ladder_rows[0]["after"]["steps"] == [{**s, "schedules": []} for s in ladder["steps"]]


# -- history -------------------------------------------------------------------------------


async def test_the_timeline_shows_an_sos_and_its_alert(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    supervisor = await _user(pool, "supervisor", area)
    rid = (await _resident(api, supervisor, area))["resident_id"]
    device = f"tl-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC).replace(microsecond=0)
    sos = _event(device, "sos", now - timedelta(minutes=5), lat=31.2, lon=121.44)
    beat = _event(device, "heartbeat", now - timedelta(minutes=30))
    old = _event(device, "heartbeat", now - timedelta(hours=30))  # outside the default 24 h
    async with pool.acquire() as conn:
        await add_device(conn, device_id=device, format="native", resident_id=rid)
        await event_store.store_rows(conn, [event_store.event_row(e) for e in (sos, beat, old)])
        (change,) = await store.apply_decisions(
            conn, [RaiseAlert.for_event(sos, "sos", "critical", "SOS pressed", 31.2, 121.44)]
        )
    answer = await api.get(f"{R}/{rid}/timeline", headers=operator.auth)
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    kinds = [(i["type"], i["kind"]) for i in items]
    assert kinds == [("alert", "sos"), ("event", "sos"), ("event", "heartbeat")]
    assert items[0]["alert_id"] == change["alert_id"] and items[0]["status"] == "open"
    assert items[1]["event_id"] == sos.event_id and items[1]["data"] == {"lat": 31.2, "lon": 121.44}
    assert answer.json()["next"] is None

    seen: list[tuple[str, str]] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = (await api.get(f"{R}/{rid}/timeline", params=params, headers=operator.auth)).json()
        seen += [(i["type"], i["kind"]) for i in page["items"]]
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert seen == kinds

    wide = await api.get(f"{R}/{rid}/timeline", headers=operator.auth,
                         params={"since": (now - timedelta(days=2)).isoformat()})  # fmt: skip
    assert [i["kind"] for i in wide.json()["items"]][-1] == "heartbeat"
    assert len(wide.json()["items"]) == 4


async def test_positions_and_vitals_are_downsampled_to_max_points(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    rid = (await _resident(api, supervisor, area))["resident_id"]
    device = f"ch-{uuid.uuid4().hex[:12]}"
    until = datetime.now(UTC).replace(microsecond=0)
    since = until - timedelta(hours=1)
    events = []
    for i in range(600):  # one every 6 s for an hour
        at = since + timedelta(seconds=6 * i)
        events.append(_event(device, "location", at, lat=31.0 + i / 1000, lon=121.0))
        events.append(_event(device, "vitals", at, heart_rate_bpm=60 + i % 40, spo2_pct=97))
    # At the end of the first bucket: a last-known position (no fix) after a real fix.
    events.append(_event(device, "location", since + timedelta(seconds=71), lat=1.0, lon=1.0,
                         fix=False))  # fmt: skip
    async with pool.acquire() as conn:
        await add_device(conn, device_id=device, format="native", resident_id=rid)
    await _store(pool, events)
    window = {"since": since.isoformat(), "until": until.isoformat()}

    answer = await api.get(f"{R}/{rid}/positions", params={**window, "max_points": 50},
                           headers=supervisor.auth)  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["bucket_s"] == 72
    points = body["items"]
    assert 0 < len(points) <= 50
    assert [p["at"] for p in points] == sorted(p["at"] for p in points)
    assert len({p["bucket"] for p in points}) == len(points)
    assert points[0]["lat"] != 1.0 and points[0]["fix"] is True  # the real fix wins

    answer = await api.get(f"{R}/{rid}/vitals", params={**window, "max_points": 10},
                           headers=supervisor.auth)  # fmt: skip
    series = answer.json()["series"]
    assert set(series) == {"heart_rate_bpm", "spo2_pct"}
    for metric, buckets in series.items():
        assert 0 < len(buckets) <= 10, metric
        assert sum(b["n"] for b in buckets) == 600
        assert all(b["min"] <= b["avg"] <= b["max"] for b in buckets)
    heart = series["heart_rate_bpm"]
    assert min(b["min"] for b in heart) == 60 and max(b["max"] for b in heart) == 99

    one = await api.get(f"{R}/{rid}/vitals", params={**window, "max_points": 1},
                        headers=supervisor.auth)  # fmt: skip
    assert [len(v) for v in one.json()["series"].values()] == [1, 1]


# -- hostile input -------------------------------------------------------------------------


async def test_hostile_input_is_4xx_never_500(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    rid = (await _resident(api, supervisor, area))["resident_id"]
    contact = {"name": "x", "relationship": "family", "channels": []}
    bad_residents = [
        {"name": "a\x00b"}, {"name": "   "}, {"name": "x" * 201}, {"phone": "call me"},
        {"phone": "+1"}, {"phone": "1" * 20}, {"birth_year": 1700}, {"home": {"lat": 91, "lon": 0}},
        {"home": {"lat": 1}}, {"timezone": "Mars/Olympus"}, {"timezone": "../../etc/passwd"},
        {"area": "a//b"}, {"area": "a\x01"}, {"extra": 1}, {"languages": ["not a tag"]},
        {"photo_url": "javascript:alert(1)"}, {"sex": "x"}, {"gp": {"phone": "1"}},
        {"medical_notes": "x" * 5000}, {"allergies": "\x1b[31m"},
    ]  # fmt: skip
    for change in bad_residents:
        answer = await api.post(R, json={**PROFILE, **change}, headers=supervisor.auth)
        assert answer.status_code == 422, (change, answer.status_code, answer.text)
    for change in ({"name": None}, {"timezone": None}, {"area": None}, {"phone": "abc"}):
        answer = await api.patch(f"{R}/{rid}", json=change, headers=supervisor.auth)
        assert answer.status_code == 422, (change, answer.status_code, answer.text)
    bad_contacts = [
        {"relationship": "lover"}, {"language": "x" * 30}, {"phones": ["abc"]},
        {"channels": [{"type": "pigeon", "address": "roof"}]},
        {"channels": [{"type": "email", "address": "not-an-address"}]},
        {"channels": [{"type": "sms", "address": "hello"}]},
        {"channels": [{"type": "webhook", "address": "ftp://x", "secret": "k"}]},
        {"channels": [{"type": "wecom", "address": "a\x00"}]},
        {"channels": [{"type": "sms", "address": "110", "secret": "\x00"}]},
        {"area": "x//y"},
    ]  # fmt: skip
    for change in bad_contacts:
        answer = await api.post(C, json={**contact, **change}, headers=supervisor.auth)
        assert answer.status_code == 422, (change, answer.status_code, answer.text)
    cases: list[tuple[str, dict[str, Any]]] = [
        (R, {"q": "a\x00"}), (R, {"area": "a//b"}), (R, {"limit": 0}), (R, {"cursor": "x\x00"}),
        (C, {"relationship": "x"}), (C, {"cursor": "!!"}),
        (f"{R}/{rid}/timeline", {"since": "2026-01-01T00:00:00"}),
        (f"{R}/{rid}/timeline", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        (f"{R}/{rid}/timeline", {"since": "2020-01-01T00:00:00Z"}),
        (f"{R}/{rid}/timeline", {"until": "0001-01-01T00:00:00Z"}),
        (f"{R}/{rid}/timeline", {"since": "9999-12-31T00:00:00Z"}),
        (f"{R}/{rid}/timeline", {"cursor": "WyJ0aW1lbGluZSJd"}),
        (f"{R}/{rid}/positions", {"max_points": 0}), (f"{R}/{rid}/vitals", {"max_points": 5001}),
        (f"{R}/99999999999999999999", {}),
    ]  # fmt: skip
    for url, params in cases:
        answer = await api.get(url, params=params, headers=supervisor.auth)
        assert answer.status_code == 422, (url, params, answer.status_code, answer.text)
        assert "detail" in answer.json()
    assert (await api.get(f"{R}/{2**62}", headers=supervisor.auth)).status_code == 404
    assert (await api.get(f"{C}/{2**62}", headers=supervisor.auth)).status_code == 404
    admin = await _user(pool, "admin", area)
    for rules in ([1, 2], "x", {"resident": {"timezone": "a\x00"}}):
        answer = await api.put(f"{R}/{rid}/rules", json=rules, headers=admin.auth)
        assert answer.status_code == 422, (rules, answer.text)


async def test_the_openapi_document_lists_the_people_endpoints(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/api/v1/openapi.json")).json()["paths"]
    for path in ("/api/v1/residents", "/api/v1/residents/{resident_id}",
                 "/api/v1/residents/{resident_id}/timeline", "/api/v1/contacts",
                 "/api/v1/contacts/{contact_id}", "/api/v1/residents/{resident_id}/escalation",
                 "/api/v1/residents/{resident_id}/contacts"):  # fmt: skip
        assert path in paths, path
