"""What comes after a notification is sent: acknowledgements that time out, repeats, the
supervisor on duty, quiet hours, the answers people give (ack links, SMS replies, voice
keypresses), rounds that run out, and channels that keep failing. Real PostgreSQL, real
receivers, a clock moved by hand (tests/integration/notifier_world.py)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio

from alerts import store
from alerts.rules import RaiseAlert
from notifier.channels.signing import sign
from notifier.links import Links, link_key
from plumbing.settings import Settings
from tests.integration.notifier_world import World, open_world
from tests.integration.receivers import HttpReceiver

pytestmark = pytest.mark.integration


def _link(body: dict[str, Any]) -> str:
    """The path and query of a notification's ack link (the API is served in-process)."""
    link = urlsplit(body["ack_url"])
    return f"{link.path}?{link.query}"


async def _alert(world: World, alert_id: int) -> dict[str, Any]:
    answer = await world.api.get(f"/api/v1/alerts/{alert_id}", headers=world.boss)
    assert answer.status_code == 200, answer.text
    alert: dict[str, Any] = answer.json()
    return alert


def _quiet_around(now: datetime, zone: str, *, before_s: int, after_s: int) -> dict[str, str]:
    """Quiet hours from `before_s` before `now` to `after_s` after it, in `zone`'s local
    time (whole seconds: they end at most a second before now + after_s)."""
    local = now.astimezone(ZoneInfo(zone)).replace(microsecond=0)
    start, end = local - timedelta(seconds=before_s), local + timedelta(seconds=after_s)
    return {"start": start.time().isoformat(), "end": end.time().isoformat()}


def _phone() -> str:
    """A mobile number written as people write it (spaces), unique to the test."""
    digits = f"{uuid.uuid4().int % 10**8:08d}"
    return f"+86 139 {digits[:4]} {digits[4:]}"


# -- the acknowledgement's timeout, repeats --------------------------------------------


async def test_an_acknowledgement_left_unresolved_reopens_the_alert_and_escalates_anew(
    world: World,
) -> None:
    first, second = world.webhook("reopen-first"), world.webhook("reopen-second")
    a = await world.contact("王丽", first)
    b = await world.contact("李阿姨", second, relationship="neighbour")
    rid = await world.resident([{"contacts": [a], "wait_s": 60}, {"contacts": [b], "wait_s": 60}])
    alert_id = await world.alert(rid)
    await world.sync(alert_id)
    (told,) = world.got(first)

    async with world.pool.acquire() as conn:
        await store.acknowledge(conn, alert_id, by="op-7")
    await world.sync(alert_id)
    await world.run(1799)  # the step's 60 s wait passed long ago: the chain stopped
    assert len(world.got(first)) == 1 and world.got(second) == []

    await world.run(2)  # ack_timeout_s (1800) is over, and nobody resolved it
    alert = await _alert(world, alert_id)
    assert alert["status"] == "open" and alert["acknowledged_by"] is None
    (reopened,) = [h for h in alert["history"] if h["change"] == "reopened"]
    assert reopened["actor"] == "notifier" and reopened["status"] == "open"
    again = world.got(first)[1:]
    assert len(again) == 1
    assert again[0]["notification_id"] != told["notification_id"]
    assert again[0]["escalation"] == {"cycle": 1, "round": 0, "step": 0}
    assert again[0]["alert"]["status"] == "open"

    assert world.got(second) == []
    await world.run(61)  # the re-opened alert escalates as a new one does
    (escalated,) = world.got(second)
    assert escalated["escalation"] == {"cycle": 1, "round": 0, "step": 1}


async def test_a_repeat_of_an_acknowledged_alert_notifies_nobody(world: World) -> None:
    first, second = world.webhook("repeat-first"), world.webhook("repeat-second")
    a = await world.contact("王丽", first)
    b = await world.contact("李阿姨", second, relationship="neighbour")
    rid = await world.resident([{"contacts": [a], "wait_s": 60}, {"contacts": [b], "wait_s": 60}])
    alert_id = await world.alert(rid)
    await world.sync(alert_id)
    async with world.pool.acquire() as conn:
        await store.acknowledge(conn, alert_id, by="op-7")
    await world.sync(alert_id)

    async with world.pool.acquire() as conn:
        device = await conn.fetchval("SELECT device_id FROM alerts WHERE alert_id = $1", alert_id)
        (change,) = await store.apply_decisions(conn, [RaiseAlert(
            "sos", "critical", device, datetime.now(UTC), f"{device}:2", "SOS 按键",
        )])  # fmt: skip
    assert (change["alert_id"], change["change"], change["count"]) == (alert_id, "repeated", 2)
    await world.sync(alert_id)
    await world.run(600)
    assert len(world.got(first)) == 1 and world.got(second) == []
    alert = await _alert(world, alert_id)
    assert (alert["status"], alert["count"]) == ("acknowledged", 2)
    assert [n["status"] for n in alert["notifications"]] == ["delivered"]


# -- the supervisor on duty ------------------------------------------------------------


async def test_the_supervisor_on_duty_hears_of_an_alert_nobody_took_within_a_minute(
    world: World,
) -> None:
    area = f"t-{uuid.uuid4().hex[:8]}/xuhui"
    family, boss_hook = world.webhook("family"), world.webhook("supervisor")
    a = await world.contact("王丽", family)
    chief = await world.contact("值班长 陈", boss_hook, relationship="other")
    schedule = {
        "name": f"主管 {area}", "area": area, "role": "supervisors",
        "rotations": [{"contacts": [chief], "shift_s": 7 * 86400,
                       "start": (world.clock.now() - timedelta(days=1)).isoformat()}],
    }  # fmt: skip
    made = await world.api.post("/api/v1/schedules", json=schedule, headers=world.boss)
    assert made.status_code == 201, made.text
    steps = [{"contacts": [a], "wait_s": 600}]
    ignored = await world.alert(await world.resident(steps, area=area))
    taken = await world.alert(await world.resident(steps, area=area))
    await world.sync(ignored)
    await world.sync(taken)
    assert len(world.got(family)) == 2

    async with world.pool.acquire() as conn:
        await store.acknowledge(conn, taken, by="op-7")  # within the minute
    await world.sync(taken)
    await world.run(59)
    assert world.got(boss_hook) == []
    # operator_ack_target_s (60) is over for both alerts (counted from when they opened,
    # by the wall clock, a little after this world's clock started)
    await world.run(15)
    (told,) = world.got(boss_hook)
    assert told["type"] == "supervisor"
    assert told["alert"]["alert_id"] == ignored and told["alert"]["area"] == area
    assert told["contact"]["name"] == "值班长 陈"
    await world.run(600)  # once, and never about the alert an operator took
    assert len(world.got(boss_hook)) == 1


# -- quiet hours ----------------------------------------------------------------------


async def test_quiet_hours_hold_a_warning_until_they_end_but_not_a_critical_alert(
    world: World,
) -> None:
    hook = world.webhook("sleeping")
    # Tokyo, not the default Shanghai: the hours are read in the contact's own zone.
    quiet = _quiet_around(world.clock.now(), "Asia/Tokyo", before_s=3600, after_s=3600)
    a = await world.contact("睡着的女儿", hook, time_zone="Asia/Tokyo", quiet_hours=quiet)
    rid = await world.resident([{"contacts": [a], "wait_s": 7200}])

    warning = await world.alert(rid, kind="battery_low", severity="warning")
    await world.sync(warning)
    assert world.got(hook) == []
    assert [n["status"] for n in await world.log(warning)] == ["pending"]

    critical = await world.alert(rid)
    await world.sync(critical)
    assert [b["alert"]["alert_id"] for b in world.got(hook)] == [critical]

    await world.run(3598)  # still quiet
    assert [b["alert"]["alert_id"] for b in world.got(hook)] == [critical]
    await world.run(3)  # quiet hours are over
    assert [b["alert"]["alert_id"] for b in world.got(hook)] == [critical, warning]
    assert [n["status"] for n in await world.log(warning)] == ["delivered"]


# -- SMS and voice gateways -----------------------------------------------------------


@dataclass
class Gateways:
    world: World
    sms: str  # the receiver's paths the gateways' requests go to
    voice: str
    secret: str  # what the gateways sign their callbacks with

    def requests(self, path: str) -> list[dict[str, Any]]:
        return self.world.receiver.bodies(path)

    async def call_back(
        self, kind: str, payload: dict[str, Any], *, secret: str | None = None
    ) -> httpx.Response:
        """What the gateway does when a reply or a call's outcome comes in: a signed POST."""
        body, at = orjson.dumps(payload), int(time.time())
        headers = {
            "Content-Type": "application/json", "X-Carewatch-Timestamp": str(at),
            "X-Carewatch-Signature": sign(secret or self.secret, at, body),
        }  # fmt: skip
        return await self.world.api.post(f"/api/v1/gateways/{kind}", content=body, headers=headers)


@pytest_asyncio.fixture
async def gateways(
    notifier_pool: asyncpg.Pool, notifier_settings: Settings, receiver: HttpReceiver
) -> AsyncIterator[Gateways]:
    tag = uuid.uuid4().hex[:8]
    sms, voice, secret = f"/gateway/sms-{tag}", f"/gateway/voice-{tag}", f"gw-{uuid.uuid4().hex}"

    def template(path: str) -> str:
        fields = {"to": "{to}", "text": "{text}", "ref": "{notification_id}",
                  "callback": "{callback_url}"}  # fmt: skip
        return orjson.dumps({"url": receiver.url(path), "json": fields}).decode()

    settings = notifier_settings.model_copy(update={
        "sms_gateway": template(sms), "voice_gateway": template(voice), "gateway_secret": secret,
    })  # fmt: skip
    async with open_world(notifier_pool, settings, receiver) as world:
        yield Gateways(world, sms, voice, secret)


async def test_an_sms_reply_with_the_code_accepts_and_with_a_zero_declines(
    gateways: Gateways,
) -> None:
    world, number = gateways.world, _phone()
    after = world.webhook("after-sms")
    texter = await world.contact("发短信的儿子", {"type": "sms", "address": number})
    b = await world.contact("邻居", after, relationship="neighbour")
    steps = [{"contacts": [texter], "wait_s": 600}, {"contacts": [b], "wait_s": 600}]
    first = await world.alert(await world.resident(steps))
    await world.sync(first)
    (sent,) = gateways.requests(gateways.sms)
    sender = sent["to"]  # the number as the gateway got it, and so as replies come from it
    assert sender == number.replace(" ", "")
    assert sent["callback"] == "http://carewatch.test/api/v1/gateways/sms"
    (code,) = re.findall(r"回复 (\d{6}) 确认", sent["text"])

    forged = await gateways.call_back(
        "sms", {"from": sender, "text": code}, secret="not-the-gateway"
    )
    assert forged.status_code == 401
    other = f"{(int(code) + 1) % 10**6:06d}"
    unknown = await gateways.call_back("sms", {"from": sender, "text": other})
    assert unknown.status_code == 404
    assert (await _alert(world, first))["status"] == "open"

    accepted = await gateways.call_back("sms", {"from": sender, "text": f" {code} "})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["answer"], accepted.json()["alert_status"]) == (
        "accepted", "acknowledged",
    )  # fmt: skip
    assert "发短信的儿子" in accepted.json()["acknowledged_by"]
    await world.sync(first)
    await world.run(700)  # past step 1's wait: the chain stopped
    assert world.got(after) == []

    second = await world.alert(await world.resident(steps))
    await world.sync(second)
    later = gateways.requests(gateways.sms)[1]
    (code,) = re.findall(r"回复 (\d{6}) 确认", later["text"])
    declined = await gateways.call_back("sms", {"from": sender, "text": f"{code} 0"})
    assert declined.status_code == 200, declined.text
    assert (declined.json()["answer"], declined.json()["alert_status"]) == ("declined", "open")
    await world.run(1)  # not the 600 s wait
    assert [b["alert"]["alert_id"] for b in world.got(after)] == [second]


async def test_a_keypress_in_a_call_accepts_and_an_unanswered_call_moves_on(
    gateways: Gateways,
) -> None:
    world = gateways.world
    after = world.webhook("after-call")
    caller = await world.contact("接电话的女儿", {"type": "voice", "address": _phone()})
    b = await world.contact("邻居", after, relationship="neighbour")
    steps = [{"contacts": [caller], "wait_s": 600}, {"contacts": [b], "wait_s": 600}]
    first = await world.alert(await world.resident(steps))
    await world.sync(first)
    (call,) = gateways.requests(gateways.voice)
    (entry,) = await world.log(first)
    assert (entry["notification_id"], entry["status"]) == (call["ref"], "calling")

    pressed = {"notification_id": call["ref"], "status": "answered", "digits": "1"}
    accepted = await gateways.call_back("voice", pressed)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["answer"], accepted.json()["alert_status"]) == (
        "accepted", "acknowledged",
    )  # fmt: skip
    await world.sync(first)
    await world.run(700)
    assert world.got(after) == []

    second = await world.alert(await world.resident(steps))
    await world.sync(second)
    call = gateways.requests(gateways.voice)[1]
    missed = await gateways.call_back(
        "voice", {"notification_id": call["ref"], "status": "no_answer"}
    )
    assert missed.status_code == 200, missed.text
    assert missed.json()["answer"] == "no_answer"
    await world.run(1)  # long before the step's 600 s
    assert [b["alert"]["alert_id"] for b in world.got(after)] == [second]


# -- ack links ------------------------------------------------------------------------


async def test_ack_links_expire_cannot_be_forged_and_speak_the_contacts_language(
    world: World, notifier_settings: Settings
) -> None:
    hook, british = world.webhook("english"), world.webhook("british")
    a = await world.contact("Li Na", hook, language="en")
    b = await world.contact("Tom", british, language="en-GB")
    rid = await world.resident([{"contacts": [a, b], "wait_s": 600}])
    alert_id = await world.alert(rid)
    await world.sync(alert_id)
    (body,) = world.got(hook)
    assert [b["language"] for b in world.got(british)] == ["en"]  # a regional English too

    page = await world.api.get(_link(body))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in page.text
    assert "If you can go, confirm here" in page.text and "I'm going" in page.text
    assert "我去处理" not in page.text

    # The link the notifier gave a day and a minute ago: signed with its key, and over.
    ttl = notifier_settings.ack_link_ttl_s
    old = Links(key=link_key(notifier_settings), base_url="http://carewatch.test", ttl_s=ttl)
    expired = _link({"ack_url": old.url(body["notification_id"], time.time() - ttl - 60)})
    shown = await world.api.get(expired)
    assert shown.status_code == 410
    assert shown.headers["content-type"].startswith("text/html")
    assert "此链接已过期" in shown.text and "This link has expired" in shown.text
    pressed = await world.api.post(expired, data={"answer": "accept"})
    assert pressed.status_code == 410

    forged = await world.api.get(_link(body).replace("s=", "s=f"))
    assert forged.status_code == 403
    assert forged.headers["content-type"].startswith("text/html")
    assert (await _alert(world, alert_id))["status"] == "open"


# -- rounds ---------------------------------------------------------------------------


async def test_a_ladder_goes_round_repeat_times_then_is_exhausted(world: World) -> None:
    first, second = world.webhook("round-first"), world.webhook("round-second")
    a = await world.contact("王丽", first)
    b = await world.contact("李阿姨", second, relationship="neighbour")
    steps = [{"contacts": [a], "wait_s": 60}, {"contacts": [b], "wait_s": 60}]
    alert_id = await world.alert(await world.resident(steps, repeat=1))
    await world.sync(alert_id)
    for _ in range(3):
        await world.run(61)
    assert [b["escalation"] for b in world.got(first)] == [
        {"cycle": 0, "round": 0, "step": 0}, {"cycle": 0, "round": 1, "step": 0},
    ]  # fmt: skip
    assert [b["escalation"]["round"] for b in world.got(second)] == [0, 1]
    assert len({b["notification_id"] for b in world.got(first)}) == 2

    await world.run(61)
    await world.run(3600)
    assert (len(world.got(first)), len(world.got(second))) == (2, 2)
    async with world.pool.acquire() as conn:
        state = await conn.fetchval(
            "SELECT state FROM notification_chains WHERE alert_id = $1", alert_id
        )
    assert state == "exhausted"
    assert (await _alert(world, alert_id))["status"] == "open"  # still for an operator


# -- cancellation, failures -----------------------------------------------------------


async def test_an_acceptance_cancels_what_is_still_waiting_for_quiet_hours_to_end(
    world: World,
) -> None:
    sleeper, awake = world.webhook("sleeper"), world.webhook("awake")
    quiet = _quiet_around(world.clock.now(), "Asia/Shanghai", before_s=600, after_s=1200)
    q = await world.contact("睡着的女儿", sleeper, quiet_hours=quiet)
    n = await world.contact("醒着的儿子", awake)
    rid = await world.resident([{"contacts": [q, n], "wait_s": 3600}])
    alert_id = await world.alert(rid, kind="battery_low", severity="warning")
    await world.sync(alert_id)
    statuses = {e["contact_name"]: e["status"] for e in await world.log(alert_id)}
    assert statuses == {"睡着的女儿": "pending", "醒着的儿子": "delivered"}

    (body,) = world.got(awake)
    accepted = await world.api.post(_link(body), headers={"Accept": "application/json"})
    assert accepted.status_code == 200, accepted.text
    await world.sync(alert_id)
    statuses = {e["contact_name"]: e["status"] for e in await world.log(alert_id)}
    assert statuses == {"睡着的女儿": "cancelled", "醒着的儿子": "accepted"}

    await world.run(1201)  # quiet hours are over (the ack timeout, 1800 s, is not)
    assert world.got(sleeper) == []
    assert [r for r in world.receiver.requests if r.path == urlsplit(sleeper["address"]).path] == []


async def test_a_channel_that_keeps_failing_moves_the_chain_on_at_once(world: World) -> None:
    broken, next_one = world.webhook("broken"), world.webhook("next")
    path = urlsplit(broken["address"]).path
    world.receiver.failures[path] = 1000
    a = await world.contact("坏掉的手机", broken)
    b = await world.contact("邻居", next_one, relationship="neighbour")
    steps = [{"contacts": [a], "wait_s": 3600}, {"contacts": [b], "wait_s": 3600}]
    alert_id = await world.alert(await world.resident(steps))

    def tries() -> int:
        return len([r for r in world.receiver.requests if r.path == path])

    await world.sync(alert_id)
    assert tries() == 1
    await world.run(1)  # backoff 1 s
    assert tries() == 2
    await world.run(1)  # backoff 2 s: not yet
    assert tries() == 2
    await world.run(1)
    assert tries() == 3
    await world.run(5)  # backoff 5 s; the fourth try is the last (notify_attempts)
    assert tries() == 4
    (entry,) = await world.log(alert_id)
    assert (entry["status"], entry["attempts"]) == ("failed", 4)
    assert entry["last_error"]

    await world.run(0)  # no time passes: nobody can answer step 1, so step 2 is due now
    (body,) = world.got(next_one)
    assert body["escalation"]["step"] == 1
    await world.run(60)
    assert tries() == 4


async def test_a_late_failure_or_decline_of_an_earlier_step_does_not_cut_the_next_wait_short(
    world: World,
) -> None:
    broken, busy = world.webhook("late-broken"), world.webhook("late-busy")
    waiting, last = world.webhook("late-waiting"), world.webhook("late-last")
    world.receiver.failures[urlsplit(broken["address"]).path] = 1000
    a = await world.contact("坏掉的手机", broken)
    d = await world.contact("忙碌的儿子", busy)
    b = await world.contact("正在赶来的邻居", waiting, relationship="neighbour")
    c = await world.contact("最后一位", last, relationship="other")
    steps = [{"contacts": [a, d], "wait_s": 5}, {"contacts": [b], "wait_s": 600},
             {"contacts": [c], "wait_s": 600}]  # fmt: skip
    alert_id = await world.alert(await world.resident(steps))
    await world.sync(alert_id)  # a: first try fails; d: delivered
    await world.run(1)  # a: second try (then 2 s)
    await world.run(4)  # step 1 is due: b is told; a's third try (then 5 s)
    assert len(world.got(waiting)) == 1
    (told,) = world.got(busy)
    declined = await world.api.post(_link(told), data={"answer": "decline"})
    assert declined.status_code == 200  # d says no, but step 0 is over: b's wait goes on
    await world.run(5)  # a's fourth and last try fails: nothing of step 0 is left
    statuses = {e["contact_name"]: e["status"] for e in await world.log(alert_id)}
    assert statuses["坏掉的手机"] == "failed" and statuses["忙碌的儿子"] == "declined"
    await world.run(1)
    assert world.got(last) == []  # b still has the rest of step 1's 600 s
    await world.run(600)
    assert len(world.got(last)) == 1
