"""What the operator console needs besides the alert queue, over the API against a real
PostgreSQL: work orders (dispatch, accept, report, follow-up) through the alert's history
and the audit trail, the acknowledgement statistics with known delays (per operator, per
shift of a centre east of UTC), and each user's console preferences.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import pytest_asyncio

from alerts import store
from api.app import create_app
from carewatch.embedded import EmbeddedStack
from plumbing.db import connect_pool
from tests.integration.test_api import _alert, _audit, _user

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest_asyncio.fixture(scope="module")
async def pool(stack: EmbeddedStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(stack.database_url, max_size=8)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module")
async def api(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    # 12-hour shifts from 07:00 Shanghai time: 23:00 and 11:00 UTC, so shifts taken in UTC
    # by mistake would split the alerts differently.
    app = create_app(pool=pool, centre_tz="Asia/Shanghai", shift_starts="07:00,19:00")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


@pytest.fixture
def area() -> str:
    """A district of its own per test, so lists and figures see only the test's alerts."""
    return f"test-{uuid.uuid4().hex[:8]}/minhang"


# -- work orders -----------------------------------------------------------------------


async def test_a_work_order_goes_through_its_steps_into_the_alerts_history(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    alert = await _alert(pool, f"{area}/xinzhuang")
    body = {"assignee": " 社区网格员 王芳 ", "phone": "+86 138 0000 0000", "due_min": 20,
            "note": "门铃坏了 请敲门"}  # fmt: skip
    sent = await api.post(f"/api/v1/alerts/{alert}/dispatch", json=body, headers=operator.auth)
    assert sent.status_code == 201, sent.text
    order = sent.json()
    assert (order["alert_id"], order["assignee"], order["status"], order["overdue"]) == (
        alert, "社区网格员 王芳", "dispatched", False
    )  # fmt: skip
    assert (order["created_by"], order["dispatch_note"]) == (operator.name, "门铃坏了 请敲门")
    due = datetime.fromisoformat(order["due_at"]) - datetime.fromisoformat(order["created_at"])
    assert due == timedelta(minutes=20)
    path = f"/api/v1/work-orders/{order['order_id']}"

    accepted = (await api.post(f"{path}/accept", headers=operator.auth)).json()  # no body
    assert (accepted["status"], accepted["accepted_by"]) == ("accepted", operator.name)
    report = {"outcome": "visited_ok", "note": "老人安好"}
    reported = (await api.post(f"{path}/report", json=report, headers=operator.auth)).json()
    assert (reported["status"], reported["outcome"], reported["report_note"]) == (
        "reported", "visited_ok", "老人安好"
    )  # fmt: skip
    resolve = {"resolution": "assisted_at_home"}
    resolved = await api.post(f"/api/v1/alerts/{alert}/resolve", json=resolve,
                              headers=operator.auth)  # fmt: skip
    assert resolved.status_code == 200
    # The call back comes after the alert is closed: the order goes on.
    followed = await api.post(f"{path}/follow-up", json={"note": "次日回访 一切正常"},
                              headers=operator.auth)  # fmt: skip
    assert followed.status_code == 200, followed.text
    done = followed.json()
    assert (done["status"], done["followed_up_by"], done["overdue"]) == (
        "followed_up", operator.name, False
    )  # fmt: skip

    detail = (await api.get(f"/api/v1/alerts/{alert}", headers=operator.auth)).json()
    assert [(h["change"], h["actor"], h["status"]) for h in detail["history"]] == [
        ("opened", "rules", "open"),
        ("dispatched", operator.name, "open"),
        ("order_accepted", operator.name, "open"),
        ("order_reported", operator.name, "open"),
        ("resolved", operator.name, "resolved"),
        ("followed_up", operator.name, "resolved"),
    ]
    number = order["order_id"]
    assert detail["history"][1]["note"].startswith(
        f"order {number}: 社区网格员 王芳 (+86 138 0000 0000), on site by "
    )
    assert detail["history"][3]["note"] == f"order {number}: visited_ok: 老人安好"
    assert detail["work_orders"] == [done]

    audit = await _audit(pool, f"work_order:{number}")
    assert [(a["actor"], a["action"]) for a in audit] == [
        (operator.name, f"work_order.{step}")
        for step in ("dispatch", "accept", "report", "follow_up")
    ]
    assert audit[0]["before"] is None and audit[0]["after"]["status"] == "dispatched"
    assert (audit[2]["before"]["status"], audit[2]["after"]["status"]) == ("accepted", "reported")

    late = await api.post(f"/api/v1/alerts/{alert}/dispatch", json={"assignee": "李"},
                          headers=operator.auth)  # fmt: skip
    assert late.status_code == 409 and "resolved" in late.json()["detail"]
    missing = await api.post("/api/v1/work-orders/999999999/accept", headers=operator.auth)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no work order 999999999"}
    unknown = await api.post("/api/v1/alerts/999999999/dispatch", json={"assignee": "李"},
                             headers=operator.auth)  # fmt: skip
    assert unknown.status_code == 404


async def test_steps_out_of_order_are_409_and_change_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    alert = await _alert(pool, area)
    sent = await api.post(f"/api/v1/alerts/{alert}/dispatch", json={"assignee": "护理员 张"},
                          headers=operator.auth)  # fmt: skip
    path = f"/api/v1/work-orders/{sent.json()['order_id']}"

    early = await api.post(f"{path}/report", json={"outcome": "not_home"}, headers=operator.auth)
    assert early.status_code == 409
    assert early.json()["detail"] == (
        f"work order {sent.json()['order_id']} cannot be reported: it is dispatched"
        " (it must be accepted first)"
    )
    assert (await api.post(f"{path}/follow-up", json={"note": "x"},
                           headers=operator.auth)).status_code == 409  # fmt: skip
    assert (await api.post(f"{path}/accept", json={"note": "on my way"},
                           headers=operator.auth)).status_code == 200  # fmt: skip
    twice = await api.post(f"{path}/accept", headers=operator.auth)
    assert twice.status_code == 409
    for bad in ({"outcome": "fine"}, {}, {"outcome": "assisted", "extra": 1}):
        answer = await api.post(f"{path}/report", json=bad, headers=operator.auth)
        assert answer.status_code == 422, bad
    assert (await api.post(f"{path}/follow-up", json={"note": "  "},
                           headers=operator.auth)).status_code == 422  # fmt: skip

    detail = (await api.get(f"/api/v1/alerts/{alert}", headers=operator.auth)).json()
    assert [h["change"] for h in detail["history"]] == ["opened", "dispatched", "order_accepted"]
    assert detail["work_orders"][0]["accept_note"] == "on my way"
    assert len(await _audit(pool, f"work_order:{sent.json()['order_id']}")) == 2


async def test_orders_outside_the_users_area_are_403(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    mine = await _user(pool, "operator", area)
    theirs = await _user(pool, "operator", f"{area}x")  # a prefix, not below
    alert = await _alert(pool, f"{area}/jiangchuan")
    refused = await api.post(f"/api/v1/alerts/{alert}/dispatch", json={"assignee": "王"},
                             headers=theirs.auth)  # fmt: skip
    assert refused.status_code == 403
    sent = await api.post(f"/api/v1/alerts/{alert}/dispatch", json={"assignee": "王"},
                          headers=mine.auth)  # fmt: skip
    path = f"/api/v1/work-orders/{sent.json()['order_id']}"
    assert (await api.post(f"{path}/accept", headers=theirs.auth)).status_code == 403
    listed = await api.get("/api/v1/work-orders", headers=theirs.auth)
    assert sent.json()["order_id"] not in [o["order_id"] for o in listed.json()["items"]]
    detail = (await api.get(f"/api/v1/alerts/{alert}", headers=mine.auth)).json()
    assert [h["change"] for h in detail["history"]] == ["opened", "dispatched"]


async def test_the_list_flags_overdue_orders_filters_and_pages(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    orders = []
    for minutes in (30, 10, 60):
        alert = await _alert(pool, area)
        sent = await api.post(f"/api/v1/alerts/{alert}/dispatch",
                              json={"assignee": "网格员", "due_min": minutes},
                              headers=operator.auth)  # fmt: skip
        orders.append(sent.json()["order_id"])
    late, soon, later = orders
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE work_orders SET due_at = now() - interval '5 minutes' WHERE order_id = $1", late
        )

    async def ids(**params: Any) -> list[int]:
        answer = await api.get("/api/v1/work-orders", params=params, headers=operator.auth)
        assert answer.status_code == 200, answer.text
        return [o["order_id"] for o in answer.json()["items"]]

    assert await ids() == [later, soon, late]  # newest first
    assert await ids(overdue="true") == [late]
    assert await ids(overdue="false") == [later, soon]
    assert await ids(order="due") == [late, soon, later]
    first = (await api.get("/api/v1/work-orders", params={"order": "due", "limit": 2},
                           headers=operator.auth)).json()  # fmt: skip
    assert [o["order_id"] for o in first["items"]] == [late, soon] and first["next"]
    item = first["items"][0]
    assert (item["overdue"], item["alert_kind"], item["area"]) == (True, "sos", area)
    assert item["resident_name"] == "Wang Fang"
    rest = await ids(order="due", limit=2, cursor=first["next"])
    assert rest == [later]
    wrong = await api.get("/api/v1/work-orders", params={"cursor": first["next"]},
                          headers=operator.auth)  # fmt: skip
    assert wrong.status_code == 422  # the `due` list's cursor, not `newest`'s

    # Reported: no longer overdue, whatever the time.
    path = f"/api/v1/work-orders/{late}"
    await api.post(f"{path}/accept", headers=operator.auth)
    reported = await api.post(f"{path}/report", json={"outcome": "not_home"},
                              headers=operator.auth)  # fmt: skip
    assert reported.json()["overdue"] is False
    assert await ids(overdue="true") == []
    assert await ids(status="reported") == [late]
    assert (await api.get("/api/v1/work-orders", params={"status": "lost"},
                          headers=operator.auth)).status_code == 422  # fmt: skip


# -- acknowledgement statistics --------------------------------------------------------


async def _handled(
    pool: asyncpg.Pool,
    area: str,
    opened: datetime,
    delay_s: float | None,
    by: str,
    kind: str = "sos",
) -> int:
    """An alert opened at `opened`, acknowledged by `by` `delay_s` later (None: not yet)."""
    alert = await _alert(pool, area, kind=kind)
    async with pool.acquire() as conn:
        if delay_s is not None:
            await store.acknowledge(conn, alert, by=by)
            await conn.execute(
                "UPDATE alert_history SET at = $2 WHERE alert_id = $1 AND change = 'acknowledged'",
                alert, opened + timedelta(seconds=delay_s),
            )  # fmt: skip
        await conn.execute("UPDATE alerts SET opened_at = $2 WHERE alert_id = $1", alert, opened)
    return alert


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


async def test_acknowledgement_figures_overall_per_operator_and_per_shift(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    li, wu = f"li-{uuid.uuid4().hex[:6]}", f"wu-{uuid.uuid4().hex[:6]}"
    await _handled(pool, area, _local("2026-03-01 06:59:30"), 30, li)  # night shift
    await _handled(pool, area, _local("2026-03-01 07:00:00"), 90, li)  # day shift
    await _handled(pool, area, _local("2026-03-01 18:59:00"), 200, wu)  # day shift
    await _handled(pool, area, _local("2026-03-01 09:00:00"), 10, wu, kind="fall")  # day
    await _handled(pool, area, _local("2026-03-01 19:00:00"), None, li)  # night, never acked
    await _handled(pool, area, _local("2026-03-02 00:00:00"), 5, li)  # after the window
    await _handled(pool, f"{area}x", _local("2026-03-01 10:00:00"), 5, li)  # outside the area
    window = {"since": "2026-03-01T00:00:00+08:00", "until": "2026-03-01T16:00:00Z"}

    answer = await api.get("/api/v1/stats/acknowledgement", params=window,
                           headers=supervisor.auth)  # fmt: skip
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    assert (stats["since"], stats["until"], stats["targets_s"]) == (
        "2026-03-01T00:00:00+08:00", "2026-03-01T16:00:00Z", [60, 180]
    )  # fmt: skip
    # Delays 30, 90, 200, 10 and one never acknowledged (it counts against both targets).
    assert stats["overall"] == _figures(5, 4, 40.0, 60.0, 60.0, 183.5)
    assert stats["by_operator"] == sorted(
        [{"operator": li, **_figures(2, 2, 50.0, 100.0, 60.0, 87.0)},
         {"operator": wu, **_figures(2, 2, 50.0, 50.0, 105.0, 190.5)}],
        key=lambda s: s["operator"],
    )  # fmt: skip
    assert [(s["label"], s["shift_start"], s["shift_end"]) for s in stats["by_shift"]] == [
        ("2026-02-28 19:00-07:00", "2026-02-28T19:00:00+08:00", "2026-03-01T07:00:00+08:00"),
        ("2026-03-01 07:00-19:00", "2026-03-01T07:00:00+08:00", "2026-03-01T19:00:00+08:00"),
        ("2026-03-01 19:00-07:00", "2026-03-01T19:00:00+08:00", "2026-03-02T07:00:00+08:00"),
    ]
    shifts = [{k: s[k] for k in _figures(0, 0, 0, 0, 0, 0)} for s in stats["by_shift"]]
    assert shifts == [
        _figures(1, 1, 100.0, 100.0, 30.0, 30.0),
        _figures(3, 3, 33.3, 66.7, 90.0, 189.0),
        _figures(1, 0, 0.0, 0.0, None, None),
    ]

    falls = await api.get("/api/v1/stats/acknowledgement", params={**window, "kind": "fall"},
                          headers=supervisor.auth)  # fmt: skip
    assert falls.json()["overall"] == _figures(1, 1, 100.0, 100.0, 10.0, 10.0)
    assert [s["operator"] for s in falls.json()["by_operator"]] == [wu]


async def test_an_alert_younger_than_a_target_is_not_counted_against_it(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    supervisor = await _user(pool, "supervisor", area)
    await _handled(pool, area, datetime.now(UTC) - timedelta(seconds=100), None, "x")
    answer = await api.get("/api/v1/stats/acknowledgement", headers=supervisor.auth)
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    until, since = (datetime.fromisoformat(stats[k]) for k in ("until", "since"))
    assert until - since == timedelta(hours=24)  # the default window
    # 100 s old: late for 60 s, not yet for 180 s.
    assert stats["overall"] == _figures(1, 0, 0.0, None, None, None)


async def test_acknowledgement_figures_are_for_supervisors_of_the_area(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    supervisor = await _user(pool, "supervisor", f"{area}/xinzhuang")
    url = "/api/v1/stats/acknowledgement"
    assert (await api.get(url, headers=operator.auth)).status_code == 403
    outside = await api.get(url, params={"area": area}, headers=supervisor.auth)
    assert outside.status_code == 403
    for params in (
        {"since": "2026-03-01T00:00:00"},  # no zone
        {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
        {"since": "2025-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},  # too long
        {"until": "0001-01-01T00:00:00Z"},
        {"since": "9999-12-31T00:00:00Z", "until": "9999-12-31T23:00:00Z"},
        {"kind": "S O S"},
    ):
        answer = await api.get(url, params=params, headers=supervisor.auth)
        assert answer.status_code == 422, (params, answer.text)


def _figures(
    alerts: int,
    acknowledged: int,
    within_60: float | None,
    within_180: float | None,
    p50: float | None,
    p95: float | None,
) -> dict[str, Any]:
    return {"alerts": alerts, "acknowledged": acknowledged, "within_60s_pct": within_60,
            "within_180s_pct": within_180, "p50_s": p50, "p95_s": p95}  # fmt: skip


# -- preferences -----------------------------------------------------------------------


async def test_console_preferences_round_trip_and_a_bad_zone_is_422(
    api: httpx.AsyncClient, pool: asyncpg.Pool, area: str
) -> None:
    operator = await _user(pool, "operator", area)
    url = "/api/v1/me/preferences"
    wanted = {"language": "en", "time_zone": "Europe/Berlin", "large_text": True}
    answer = await api.put(url, json=wanted, headers=operator.auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["preferences"] == wanted and answer.json()["name"] == operator.name
    me = await api.get("/api/v1/me", headers=operator.auth)
    assert me.json()["preferences"] == wanted

    for bad in (
        {**wanted, "time_zone": "Mars/Olympus_Mons"},
        {**wanted, "time_zone": "Asia"},
        {**wanted, "time_zone": "../../etc/passwd"},
        {**wanted, "time_zone": "x\x00"},
        {**wanted, "language": "fr"},
        {"language": "en", "time_zone": None},  # large_text left out
        {**wanted, "theme": "dark"},
    ):
        refused = await api.put(url, json=bad, headers=operator.auth)
        assert refused.status_code == 422, (bad, refused.text)
    unknown = await api.put(url, json={**wanted, "time_zone": "Mars/Olympus_Mons"},
                            headers=operator.auth)  # fmt: skip
    assert unknown.json() == {
        "detail": "time zone 'Mars/Olympus_Mons': an IANA zone such as Asia/Shanghai"
    }

    default = {"language": None, "time_zone": None, "large_text": False}
    assert (await api.put(url, json=default, headers=operator.auth)).json()["preferences"] == (
        default
    )
    assert (await api.put(url, json=default, headers=operator.auth)).status_code == 200
    audit = await _audit(pool, f"user:{operator.name}")
    changes = [(a["action"], a["before"], a["after"]) for a in audit]
    assert changes == [  # the repeat changed nothing: no row
        ("user.preferences", default, wanted),
        ("user.preferences", wanted, default),
    ]
