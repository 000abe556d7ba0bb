"""The monitoring-centre API against a real PostgreSQL: who may do what (tokens, roles,
areas), the alert queue, operators' changes through the alert lifecycle (history, outbox,
audit), and hostile input answered with 4xx, never 500.

The application runs in the test's event loop (httpx's ASGI transport); the `carewatch api`
process and `carewatch users` run as an operator runs them at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio

from alerts import store
from alerts.rules import RaiseAlert
from api import users
from api.app import create_app
from carewatch.cli_audit import os_user
from carewatch.embedded import EmbeddedStack, free_port
from devices import residents
from devices.registry import add_device
from plumbing.db import connect_pool
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "carewatch.cli"]
LIST_FIELDS = {  # `carewatch alerts list --json`
    "alert_id", "kind", "device_id", "severity", "status", "count", "first_ts", "last_ts",
    "opened_at", "updated_at", "lat", "lon", "summary", "resident_id",
}  # fmt: skip


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
    """A district of its own per test, so lists see only the test's alerts."""
    return f"test-{uuid.uuid4().hex[:8]}/xuhui"


@dataclass
class Login:
    name: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _user(pool: asyncpg.Pool, role: str, area: str = "") -> Login:
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        await users.add_user(conn, name=name, role=role, area=area)
        return Login(name, await users.issue_token(conn, name))


async def _alert(
    pool: asyncpg.Pool, area: str, kind: str = "sos", severity: str = "critical"
) -> int:
    """A new alert of a new resident living in `area`, as the rules raise it."""
    device = f"api-{uuid.uuid4().hex[:12]}"
    async with pool.acquire() as conn:
        resident = await residents.add_resident(conn, name="Wang Fang", area=area)
        await add_device(conn, device_id=device, format="native", resident_id=resident)
        raised = RaiseAlert(kind, severity, device, datetime.now(UTC), f"{device}:1", f"{kind}!")  # type: ignore[arg-type]
        (change,) = await store.apply_decisions(conn, [raised])
    alert_id: int = change["alert_id"]
    return alert_id


async def _audit(pool: asyncpg.Pool, target: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT actor, action, before, after FROM audit WHERE target = $1 ORDER BY audit_id",
            target,
        )
    return [
        {**dict(r), "before": orjson.loads(r["before"] or "null"),
         "after": orjson.loads(r["after"] or "null")}
        for r in rows
    ]  # fmt: skip


# -- who may do what -------------------------------------------------------------------


async def test_without_or_with_a_bad_token_it_is_401(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    for headers in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        answer = await api.get("/api/v1/alerts", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in answer.json()["detail"]
    for token in ("cw_" + "x" * 43, "nonsense", "cw_\u00e9", "cw_" + "x" * 5000):
        header = f"Bearer {token}".encode("latin-1")
        answer = await api.get("/api/v1/me", headers=[(b"Authorization", header)])
        assert answer.status_code == 401, token
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")

    login = await _user(pool, "operator", "shanghai")
    me = await api.get("/api/v1/me", headers=login.auth)
    assert me.status_code == 200
    assert me.json() | {"created_at": None} == {
        "name": login.name, "role": "operator", "area": "shanghai", "disabled": False,
        "created_at": None,
        "preferences": {"language": None, "time_zone": None, "large_text": False},
    }  # fmt: skip
    async with pool.acquire() as conn:
        assert await users.revoke_token(conn, login.token)
    assert (await api.get("/api/v1/me", headers=login.auth)).status_code == 401


async def test_login_trades_a_password_for_a_token(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    name = f"op-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        _, password = await users.add_user(conn, name=name, role="operator")
    answer = await api.post("/api/v1/login", json={"name": name, "password": password})
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["name"] == name

    wrong = await api.post("/api/v1/login", json={"name": name, "password": password + "x"})
    nobody = await api.post("/api/v1/login", json={"name": f"no-{name}", "password": password})
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json()  # which of the two was wrong is not told


async def test_roles_decide_what_a_user_may_do(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    supervisor = await _user(pool, "supervisor", area)
    new = {"name": f"x-{uuid.uuid4().hex[:8]}", "role": "operator"}
    for path in ("/api/v1/audit", "/api/v1/users"):
        denied = await api.get(path, headers=operator.auth)
        assert denied.status_code == 403
        assert (
            denied.json()["detail"] == "this needs the supervisor role or above; you are operator"
        )
        assert (await api.get(path, headers=supervisor.auth)).status_code == 200
    for who in (operator, supervisor):
        answer = await api.post("/api/v1/users", json=new, headers=who.auth)
        assert answer.status_code == 403
    alert = await _alert(pool, area)
    assign = await api.post(
        f"/api/v1/alerts/{alert}/assign", json={"user": operator.name}, headers=operator.auth
    )
    assert assign.status_code == 403


async def test_a_user_sees_and_changes_only_their_area_and_below(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", f"{area}/tianping")
    mine = await _alert(pool, f"{area}/tianping/community-3")
    neighbours = await _alert(pool, f"{area}/tianpingx")  # a prefix, not below
    above = await _alert(pool, area)

    listed = await api.get("/api/v1/alerts", params={"area": area.split("/")[0]},
                           headers=operator.auth)  # fmt: skip
    assert listed.status_code == 403
    listed = await api.get("/api/v1/alerts", headers=operator.auth)
    ids = [item["alert_id"] for item in listed.json()["items"]]
    assert mine in ids and neighbours not in ids and above not in ids

    assert (await api.get(f"/api/v1/alerts/{mine}", headers=operator.auth)).status_code == 200
    for alert in (neighbours, above):
        answer = await api.get(f"/api/v1/alerts/{alert}", headers=operator.auth)
        assert answer.status_code == 403
        assert "outside yours" in answer.json()["detail"]
        ack = await api.post(f"/api/v1/alerts/{alert}/ack", headers=operator.auth)
        assert ack.status_code == 403
        note = await api.post(
            f"/api/v1/alerts/{alert}/notes", json={"text": "hi"}, headers=operator.auth
        )
        assert note.status_code == 403
    async with pool.acquire() as conn:
        assert (await store.get_alert(conn, neighbours))["history"][-1]["change"] == "opened"
    assert await _audit(pool, f"alert:{neighbours}") == []

    top = await _user(pool, "operator")
    assert (await api.get(f"/api/v1/alerts/{above}", headers=top.auth)).status_code == 200
    unknown = await api.get("/api/v1/alerts/9000000000000", headers=top.auth)
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "no alert 9000000000000"}


# -- the queue -------------------------------------------------------------------------


async def test_the_list_filters_orders_and_pages(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    sos = [await _alert(pool, area) for _ in range(3)]
    battery = await _alert(pool, f"{area}/a", kind="battery_low", severity="warning")
    fall = await _alert(pool, f"{area}/b", kind="fall")
    async with pool.acquire() as conn:
        await store.acknowledge(conn, sos[0], by="someone")

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/api/v1/alerts", params=params, headers=operator.auth)).json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next"]
        if cursor is None:
            break
    assert [a["alert_id"] for a in seen] == sorted([*sos, battery, fall], reverse=True)
    assert len(seen) == 5  # every one once, across 3 pages
    item = next(a for a in seen if a["alert_id"] == battery)
    assert LIST_FIELDS | {"resident_name", "area"} <= item.keys()
    assert (item["resident_name"], item["area"], item["kind"]) == (
        "Wang Fang",
        f"{area}/a",
        "battery_low",
    )

    async def ids(**params: Any) -> list[int]:
        answer = await api.get("/api/v1/alerts", params=params, headers=operator.auth)
        assert answer.status_code == 200, answer.text
        return [a["alert_id"] for a in answer.json()["items"]]

    assert await ids(kind="fall") == [fall]
    assert await ids(severity="warning") == [battery]
    assert await ids(status="acknowledged") == [sos[0]]
    assert await ids(area=f"{area}/b") == [fall]
    resident = item["resident_id"]
    assert await ids(resident=resident) == [battery]
    assert await ids(since=datetime.now(UTC).isoformat()) == []
    assert await ids(until=(datetime.now(UTC) - timedelta(hours=1)).isoformat()) == []
    # Most urgent first: open critical, oldest first; then open warnings; then taken on.
    assert await ids(order="urgent") == [sos[1], sos[2], fall, battery, sos[0]]
    first = (await api.get("/api/v1/alerts", params={"order": "urgent", "limit": 2},
                           headers=operator.auth)).json()  # fmt: skip
    rest = await ids(order="urgent", cursor=first["next"])
    assert rest == [fall, battery, sos[0]]

    for cursor in (first["next"], "garbage", "W10"):  # another order's, not one, empty
        answer = await api.get("/api/v1/alerts", params={"cursor": cursor}, headers=operator.auth)
        assert answer.status_code == 422
        assert answer.json() == {"detail": "not a cursor of this list"}


# -- changes ---------------------------------------------------------------------------


async def test_ack_then_resolve_goes_through_the_lifecycle_and_the_audit(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    alert = await _alert(pool, f"{area}/tianping")
    path = f"/api/v1/alerts/{alert}"

    ack = await api.post(f"{path}/ack", json={"note": "calling her"}, headers=operator.auth)
    assert ack.status_code == 200, ack.text
    assert (ack.json()["status"], ack.json()["acknowledged_by"]) == ("acknowledged", operator.name)
    again = await api.post(f"{path}/ack", headers=operator.auth)  # no body: fine
    assert again.status_code == 200
    # The same changes (their publication may have been marked meanwhile).
    changes = [[(h["history_id"], h["change"]) for h in a.json()["history"]] for a in (ack, again)]
    assert changes[0] == changes[1]

    resolve = await api.post(
        f"{path}/resolve",
        json={"resolution": "false_alarm", "note": "pressed by mistake"},
        headers=operator.auth,
    )
    assert resolve.status_code == 200, resolve.text
    done = resolve.json()
    assert (done["status"], done["resolved_by"], done["resolution_code"], done["resolution"]) == (
        "resolved", operator.name, "false_alarm", "pressed by mistake"
    )  # fmt: skip
    assert [(h["change"], h["actor"], h["note"]) for h in done["history"]] == [
        ("opened", "rules", "sos!"),
        ("acknowledged", operator.name, "calling her"),
        ("resolved", operator.name, "pressed by mistake"),
    ]

    twice = await api.post(f"{path}/resolve", json={"resolution": "other"}, headers=operator.auth)
    assert twice.status_code == 409
    assert twice.json()["detail"].startswith(f"alert {alert} is already resolved: resolved by")
    late_ack = await api.post(f"{path}/ack", headers=operator.auth)
    assert late_ack.status_code == 409

    audit = await _audit(pool, f"alert:{alert}")
    assert [(a["actor"], a["action"]) for a in audit] == [
        (operator.name, "alert.ack"),
        (operator.name, "alert.resolve"),
    ]
    assert (audit[0]["before"]["status"], audit[0]["after"]["status"]) == ("open", "acknowledged")
    assert (audit[1]["before"]["status"], audit[1]["after"]["status"]) == (
        "acknowledged", "resolved"
    )  # fmt: skip
    # The outbox: the history rows carewatch.alerts.v1 is published from.
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT change, actor, status FROM alert_history WHERE alert_id = $1"
            " ORDER BY history_id",
            alert,
        )
    assert [tuple(r) for r in rows][1:] == [
        ("acknowledged", operator.name, "acknowledged"),
        ("resolved", operator.name, "resolved"),
    ]


async def test_an_alert_someone_else_took_on_is_409(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    first, second = await _user(pool, "operator", area), await _user(pool, "operator", area)
    alert = await _alert(pool, area)
    assert (await api.post(f"/api/v1/alerts/{alert}/ack", headers=first.auth)).status_code == 200
    taken = await api.post(f"/api/v1/alerts/{alert}/ack", headers=second.auth)
    assert taken.status_code == 409
    assert taken.json() == {"detail": f"alert {alert} is already acknowledged by {first.name}"}


async def test_notes_calls_assignments_and_holds(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    elsewhere = await _user(pool, "operator", f"{area}-other")
    supervisor = await _user(pool, "supervisor", area)
    alert = await _alert(pool, area)
    path = f"/api/v1/alerts/{alert}"

    note = await api.post(f"{path}/notes", json={"text": " 她说没事 \n"}, headers=operator.auth)
    assert note.status_code == 201, note.text
    assert (note.json()["author"], note.json()["text"]) == (operator.name, "她说没事")
    call = {"to": "daughter", "number": "+86 138 0000 0000", "outcome": "no_answer"}
    called = await api.post(f"{path}/calls", json=call, headers=operator.auth)
    assert called.status_code == 201, called.text
    assert called.json()["callee"] == "daughter" and called.json()["outcome"] == "no_answer"

    outside = await api.post(f"{path}/assign", json={"user": elsewhere.name},
                             headers=supervisor.auth)  # fmt: skip
    assert outside.status_code == 409 and "does not include" in outside.json()["detail"]
    unknown = await api.post(f"{path}/assign", json={"user": "nobody-here"},
                             headers=supervisor.auth)  # fmt: skip
    assert unknown.status_code == 422
    assigned = await api.post(f"{path}/assign", json={"user": operator.name},
                              headers=supervisor.auth)  # fmt: skip
    assert assigned.status_code == 200 and assigned.json()["assigned_to"] == operator.name

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    soon = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    bad = await api.post(f"{path}/hold", json={"reason": "r", "until": past}, headers=operator.auth)
    assert bad.status_code == 422
    held = await api.post(
        f"{path}/hold", json={"reason": "neighbour is on the way", "until": soon},
        headers=operator.auth,
    )  # fmt: skip
    assert held.status_code == 200, held.text
    detail = held.json()
    assert detail["status"] == "open" and detail["hold_reason"] == "neighbour is on the way"
    assert datetime.fromisoformat(detail["held_until"]) == datetime.fromisoformat(soon)
    assert [h["change"] for h in detail["history"]] == [
        "opened", "noted", "called", "assigned", "held"
    ]  # fmt: skip
    assert [n["text"] for n in detail["notes"]] == ["她说没事"]
    assert [c["number"] for c in detail["calls"]] == ["+86 138 0000 0000"]
    audit = await _audit(pool, f"alert:{alert}")
    assert [a["action"] for a in audit] == ["alert.note", "alert.call", "alert.assign",
                                            "alert.hold"]  # fmt: skip
    assert audit[0]["before"] is None and audit[0]["after"]["text"] == "她说没事"


async def test_hostile_or_malformed_input_is_4xx_never_500(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    alert = await _alert(pool, area)
    path = f"/api/v1/alerts/{alert}"
    auth = operator.auth

    unknown = await api.post(f"{path}/resolve", json={"resolution": "magic"}, headers=auth)
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "resolution"]
    for body in (None, {}, {"resolution": "test", "extra": 1}, [1, 2]):
        answer = await api.post(f"{path}/resolve", json=body, headers=auth)
        assert answer.status_code == 422, (body, answer.text)

    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("post", f"{path}/notes", {"json": {"text": "a\x00b"}}),
        ("post", f"{path}/notes", {"json": {"text": "   "}}),
        ("post", f"{path}/notes", {"json": {"text": "x" * 5000}}),
        ("post", f"{path}/ack", {"json": {"note": "\x00"}}),
        ("post", f"{path}/calls", {"json": {"to": "x", "number": "\x00", "outcome": "busy"}}),
        ("post", f"{path}/notes", {"content": b'{"text": "\xff\xfe"}'}),
        ("post", f"{path}/notes", {"content": b'{"text": '}),
        ("post", f"{path}/notes", {"content": b'{"text": "\\u0000"}'}),
        ("get", "/api/v1/alerts", {"params": {"kind": "s\x00s"}}),
        ("get", "/api/v1/alerts", {"params": {"area": f"{area}\x00"}}),
        ("get", "/api/v1/alerts", {"params": {"area": f"{area}//x"}}),
        ("get", "/api/v1/alerts", {"params": {"since": "2026-01-01T00:00:00"}}),
        ("get", "/api/v1/alerts", {"params": {"limit": "501"}}),
        ("get", "/api/v1/alerts", {"params": {"cursor": "\x00"}}),
        ("get", "/api/v1/alerts/99999999999999999999", {}),
        ("post", "/api/v1/login", {"json": {"name": "a\x00", "password": "x"}}),
    ]
    for method, url, kwargs in cases:
        answer = await api.request(method, url, headers=auth, **kwargs)
        assert answer.status_code == 422, (url, kwargs, answer.status_code, answer.text)
        assert "detail" in answer.json()

    huge = await api.post(f"{path}/notes", json={"text": "x" * 200_000}, headers=auth)
    assert huge.status_code == 413
    assert huge.json() == {"detail": "the body is larger than 65536 bytes"}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    chunked = await api.post(f"{path}/notes", content=chunks(), headers=auth)
    assert chunked.status_code == 413
    async with pool.acquire() as conn:
        assert [h["change"] for h in (await store.get_alert(conn, alert))["history"]] == ["opened"]


# -- users -----------------------------------------------------------------------------


async def test_an_admin_creates_an_operator_who_then_signs_in(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    admin = await _user(pool, "admin", area)
    name = f"op-{uuid.uuid4().hex[:8]}"
    created = await api.post(
        "/api/v1/users", json={"name": name, "role": "operator", "area": f"/{area}/tianping/"},
        headers=admin.auth,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["role"], body["area"]) == (name, "operator", f"{area}/tianping")
    login = await api.post("/api/v1/login", json={"name": name, "password": body["password"]})
    assert login.status_code == 200
    for token in (login.json()["token"], body["token"]):
        me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["name"] == name

    again = await api.post("/api/v1/users", json={"name": name, "role": "operator"},
                           headers=admin.auth)  # fmt: skip
    assert again.status_code == 409 and again.json() == {
        "detail": f"a user named {name!r} exists already"
    }
    above = await api.post("/api/v1/users", json={"name": f"{name}x", "role": "admin", "area": ""},
                           headers=admin.auth)  # fmt: skip
    assert above.status_code == 403
    listed = await api.get("/api/v1/users", headers=admin.auth)
    assert {u["name"] for u in listed.json()["items"]} == {admin.name, name}
    assert "password" not in listed.text and "hash" not in listed.text

    audit = await _audit(pool, f"user:{name}")
    assert [(a["actor"], a["action"]) for a in audit] == [
        (admin.name, "user.create"), (name, "token.issue")
    ]  # fmt: skip
    assert "password" not in orjson.dumps(audit).decode()


async def test_the_audit_trail_filters_and_pages(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    supervisor = await _user(pool, "supervisor", area)
    alerts = [await _alert(pool, area) for _ in range(3)]
    for alert in alerts:
        await api.post(f"/api/v1/alerts/{alert}/notes", json={"text": "ok"}, headers=operator.auth)

    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"actor": operator.name, "limit": 2}
    while True:
        page = (await api.get("/api/v1/audit", params=params, headers=supervisor.auth)).json()
        seen += page["items"]
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert [a["target"] for a in seen] == [f"alert:{a}" for a in reversed(alerts)]
    assert {(a["actor"], a["action"]) for a in seen} == {(operator.name, "alert.note")}
    later = datetime.now(UTC).isoformat()
    page = await api.get("/api/v1/audit", params={"since": later}, headers=supervisor.auth)
    assert page.json()["items"] == []


async def test_the_openapi_document_describes_the_api(api: httpx.AsyncClient) -> None:
    answer = await api.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    doc = answer.json()
    for path in ("/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/ack",
                 "/api/v1/alerts/{alert_id}/resolve", "/api/v1/alerts/{alert_id}/calls",
                 "/api/v1/audit", "/api/v1/users", "/api/v1/login", "/api/v1/me"):  # fmt: skip
        assert path in doc["paths"], path
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    docs = await api.get("/api/v1/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
    # Everything the page loads comes from here: no CDN on a monitoring centre's network.
    assert "https://" not in docs.text and "http://" not in docs.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/api/v1/docs/static/{asset}" in docs.text
        loaded = await api.get(f"/api/v1/docs/static/{asset}")
        assert loaded.status_code == 200 and len(loaded.content) > 10_000


# -- as an operator runs it ------------------------------------------------------------


def _env(stack: EmbeddedStack, tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREWATCH_")}
    return env | {
        "CAREWATCH_DATABASE_URL": stack.database_url,
        "CAREWATCH_DATA_DIR": str(tmp_path),
        **more,
    }


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_users_add_prints_a_password_and_a_token_once(
    api: httpx.AsyncClient, pool: asyncpg.Pool, stack: EmbeddedStack, tmp_path: Path, area: str
) -> None:
    env = _env(stack, tmp_path)
    name = f"cli-{uuid.uuid4().hex[:8]}"
    status, out, err = await _run("users", "add", name, "--role", "supervisor", "--area", area,
                                  env=env)  # fmt: skip
    assert status == 0, err
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == ["password", "token"], out
    password, token = (line.split(": ", 1)[1] for line in lines)
    me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == "supervisor" and me.json()["area"] == area
    login = await api.post("/api/v1/login", json={"name": name, "password": password})
    assert login.status_code == 200

    status, out, err = await _run("users", "token", name, env=env)
    assert status == 0, err
    (line,) = out.splitlines()
    assert line.startswith("token: cw_") and line.split(": ")[1] != token
    status, out, _ = await _run("users", "list", "--json", env=env)
    assert any(orjson.loads(row)["name"] == name for row in out.splitlines())

    status, _, err = await _run("users", "add", name, "--role", "operator", env=env)
    assert status == 1 and "exists already" in err
    audit = await _audit(pool, f"user:{name}")
    assert [(a["action"], a["actor"].startswith("cli:")) for a in audit] == [
        ("user.create", True), ("token.issue", False), ("token.issue", True)  # login, then CLI
    ]  # fmt: skip


async def test_a_disabled_user_and_a_revoked_token_are_refused_at_once(
    api: httpx.AsyncClient, pool: asyncpg.Pool, stack: EmbeddedStack, tmp_path: Path, area: str
) -> None:
    admin, other_admin = await _user(pool, "admin", area), await _user(pool, "admin", "elsewhere")
    operator = await _user(pool, "operator", area)
    me = "/api/v1/me"
    assert (await api.get(me, headers=operator.auth)).status_code == 200

    outside = await api.post(f"/api/v1/users/{operator.name}/disable", headers=other_admin.auth)
    assert outside.status_code == 403
    disabled = await api.post(f"/api/v1/users/{operator.name}/disable", headers=admin.auth)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert (await api.get(me, headers=operator.auth)).status_code == 401
    enabled = await api.post(f"/api/v1/users/{operator.name}/enable", headers=admin.auth)
    assert enabled.json()["disabled"] is False
    assert (await api.get(me, headers=operator.auth)).status_code == 401  # revoked for good

    env = _env(stack, tmp_path)
    status, out, err = await _run("users", "token", operator.name, env=env)
    assert status == 0, err
    fresh = {"Authorization": f"Bearer {out.split(': ')[1].strip()}"}
    assert (await api.get(me, headers=fresh)).status_code == 200
    assert (await api.post("/api/v1/logout", headers=fresh)).status_code == 204
    assert (await api.get(me, headers=fresh)).status_code == 401

    status, out, err = await _run("users", "disable", operator.name, env=env)
    assert status == 0, err
    assert (await _run("users", "token", operator.name, env=env))[0] == 1  # not for the disabled
    audit = await _audit(pool, f"user:{operator.name}")
    cli = f"cli:{os_user()}"
    assert [(a["action"], a["actor"]) for a in audit if a["action"].startswith("user.")] == [
        ("user.disable", admin.name), ("user.enable", admin.name), ("user.disable", cli)
    ]  # fmt: skip


async def test_the_api_process_serves_and_stops_on_sigterm(
    stack: EmbeddedStack, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(stack, tmp_path, CAREWATCH_API_PORT=str(port), CAREWATCH_METRICS_PORT="0")
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "api", env=env, stdout=log_file, stderr=log_file
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, within=30)
            assert (await client.get("/api/v1/openapi.json")).status_code == 200
            assert (await client.get("/api/v1/alerts")).status_code == 401
            metrics = (await client.get("/metrics")).text
            assert 'carewatch_api_request_seconds_count{method="GET",route="/api/v1/alerts",' \
                'status="401"} 1.0' in metrics  # fmt: skip
            # A live stream open: the stop ends it rather than waiting for it.
            operator = await _user(pool, "operator")
            async with client.stream("GET", "/api/v1/stream", headers=operator.auth) as stream:
                assert stream.status_code == 200
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(proc.wait(), 30) == 0
                lines = [line async for line in stream.aiter_lines()]  # it ended
                assert lines[:1] == ["retry: 2000"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [orjson.loads(line) for line in log_path.read_bytes().splitlines()]
    assert lines[-1]["msg"] == "stopped" and lines[-1]["proc"] == "api"
