"""The notifier's escalation, acknowledgement, retries and resolution notices against real
PostgreSQL and real receivers, with a clock moved by hand (tests/integration/notifier_world.py)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest

from alerts import store
from api import users
from tests.integration.notifier_world import World
from tests.integration.receivers import SmtpReceiver

pytestmark = pytest.mark.integration


async def test_an_sos_notifies_step_one_at_once_and_step_two_after_the_wait(
    world: World,
) -> None:
    first, second = world.webhook("daughter"), world.webhook("neighbour")
    a = await world.contact("王丽", first)
    b = await world.contact("李阿姨", second, relationship="neighbour")
    rid = await world.resident([{"contacts": [a], "wait_s": 60}, {"contacts": [b], "wait_s": 60}])

    alert_id = await world.alert(rid)
    await world.sync(alert_id)
    (body,) = world.got(first)
    assert world.got(second) == []
    assert body["alert"]["alert_id"] == alert_id
    assert (body["alert"]["kind"], body["alert"]["status"]) == ("sos", "open")
    assert body["alert"]["resident"]["name"] == "王芳"
    assert body["ack_url"].startswith("http://carewatch.test/ack/")
    assert body["notification_id"] and body["contact"]["name"] == "王丽"
    assert all(r.signed for r in world.receiver.requests if r.path in world.receiver.secrets)

    await world.run(59)  # the wait is not over: nobody else yet
    assert world.got(second) == []
    await world.run(2)
    (escalated,) = world.got(second)
    assert escalated["escalation"]["step"] == 1
    assert escalated["notification_id"] != body["notification_id"]
    assert len(world.got(first)) == 1  # step 1 is not told again within the round

    log = await world.log(alert_id)
    assert [(n["contact_name"], n["channel"], n["status"]) for n in log] == [
        ("王丽", "webhook", "delivered"), ("李阿姨", "webhook", "delivered"),
    ]  # fmt: skip


async def test_the_ack_url_stops_the_chain_and_shows_the_contact_in_the_history(
    world: World,
) -> None:
    first, second = world.webhook("son"), world.webhook("carer")
    a = await world.contact("张伟", first)
    b = await world.contact("社区 刘", second, relationship="community_worker")
    rid = await world.resident([{"contacts": [a], "wait_s": 30}, {"contacts": [b], "wait_s": 30}])
    alert_id = await world.alert(rid)
    await world.sync(alert_id)
    (body,) = world.got(first)

    link = urlsplit(body["ack_url"])
    target = f"{link.path}?{link.query}"
    page = await world.api.get(target)
    assert page.status_code == 200 and "王芳" in page.text and "我去处理" in page.text
    accepted = await world.api.post(target, headers={"Accept": "application/json"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["answer"] == "accepted"
    assert accepted.json()["alert_status"] == "acknowledged"

    await world.sync(alert_id)  # the acknowledgement's own alerts.v1 record
    await world.run(1799)  # up to the acknowledgement's timeout (30 min)
    assert world.got(second) == []  # the chain stopped: nobody else is woken

    alert = (await world.api.get(f"/api/v1/alerts/{alert_id}", headers=world.boss)).json()
    (ack,) = [h for h in alert["history"] if h["change"] == "acknowledged"]
    assert "张伟" in ack["actor"] and alert["acknowledged_by"] == ack["actor"]
    assert [n["status"] for n in alert["notifications"]] == ["accepted"]
    forged = await world.api.post(target.replace("s=", "s=0"))
    assert forged.status_code == 403


async def test_a_receiver_failing_twice_then_succeeding_gets_it_exactly_once(
    world: World,
) -> None:
    hook = world.webhook("flaky")
    path = urlsplit(hook["address"]).path
    world.receiver.failures[path] = 2
    a = await world.contact("Flaky Phone", hook, language="en")
    rid = await world.resident([{"contacts": [a], "wait_s": 600}])
    alert_id = await world.alert(rid)

    await world.sync(alert_id)  # first try: 500
    await world.run(1)  # second: 500
    assert world.got(hook) == []
    await world.run(2)  # third: 200
    tries = [r for r in world.receiver.requests if r.path == path]
    assert len(tries) == 3
    assert len({r.json()["notification_id"] for r in tries}) == 1  # one id, three tries
    assert len(world.got(hook)) == 1  # what a receiver deduplicating by id keeps
    await world.run(60)
    assert len([r for r in world.receiver.requests if r.path == path]) == 3
    (entry,) = await world.log(alert_id)
    assert (entry["status"], entry["attempts"]) == ("delivered", 3)


async def test_a_resolution_notice_reaches_everyone_who_was_notified(
    world: World, smtp: SmtpReceiver
) -> None:
    first, second = world.webhook("first"), world.webhook("second")
    mailbox = f"carer-{uuid.uuid4().hex[:6]}@example.cn"
    a = await world.contact("王丽", first)
    b = await world.contact("Li Na", second, {"type": "email", "address": mailbox}, language="en")
    never = world.webhook("never")
    c = await world.contact("没轮到", never)
    rid = await world.resident([
        {"contacts": [a], "wait_s": 30}, {"contacts": [b], "wait_s": 30},
        {"contacts": [c], "wait_s": 30},
    ])  # fmt: skip
    alert_id = await world.alert(rid)
    await world.sync(alert_id)
    await world.run(31)  # step 2: Li Na by webhook and by e-mail
    assert [m["To"] for m in smtp.messages].count(mailbox) == 1

    async with world.pool.acquire() as conn:
        await store.resolve(conn, alert_id, by="op-1", note="到场，无事", code="false_alarm")
    await world.sync(alert_id)
    assert [b["type"] for b in world.got(first)] == ["alert", "resolved"]
    assert [b["type"] for b in world.got(second)] == ["alert", "resolved"]
    assert world.got(never) == []  # never told, so never told it is over
    mails = [m for m in smtp.messages if m["To"] == mailbox]
    assert len(mails) == 2 and "Resolved" in str(mails[1]["Subject"])
    await world.run(600)
    assert world.got(never) == []


async def test_a_decline_escalates_at_once(world: World) -> None:
    first, second = world.webhook("busy"), world.webhook("next")
    a = await world.contact("忙碌的儿子", first)
    b = await world.contact("邻居", second, relationship="neighbour")
    rid = await world.resident([{"contacts": [a], "wait_s": 600}, {"contacts": [b], "wait_s": 600}])
    alert_id = await world.alert(rid)
    await world.sync(alert_id)
    link = urlsplit(world.got(first)[0]["ack_url"])
    declined = await world.api.post(f"{link.path}?{link.query}", data={"answer": "decline"})
    assert declined.status_code == 200 and "无法前往" in declined.text
    # The API stamps the decline with the wall's clock, ahead of the world's by however
    # long the test has run: 30 s covers that, and is far from the step's 600 s wait.
    await world.run(30)
    assert len(world.got(second)) == 1
    statuses = {n["contact_name"]: n["status"] for n in await world.log(alert_id)}
    assert statuses == {"忙碌的儿子": "declined", "邻居": "delivered"}


async def test_without_a_ladder_the_default_for_the_severity_is_followed(world: World) -> None:
    own, fallback = world.webhook("ladder"), world.webhook("default")
    a = await world.contact("梯队联系人", own)
    b = await world.contact("值班社工", fallback, relationship="community_worker")
    rid = await world.resident([{"contacts": [a], "wait_s": 60}])
    default = {"steps": [{"contacts": [b], "wait_s": 60}], "repeat": 0}
    path = "/api/v1/escalation-defaults/warning"
    async with world.pool.acquire() as conn:
        await users.add_user(conn, name=(local := f"admin-{uuid.uuid4().hex[:6]}"),
                             role="admin", area="sh")  # fmt: skip
        token = await users.issue_token(conn, local)
    refused = await world.api.put(path, json=default, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403  # an area's admin cannot set every area's default
    answer = await world.api.put(path, json=default, headers=world.boss)
    assert answer.status_code == 200 and answer.json()["source"] == "set"

    removed = await world.api.delete(f"/api/v1/residents/{rid}/escalation", headers=world.boss)
    assert removed.status_code == 204
    alert_id = await world.alert(rid, kind="geofence_exit", severity="warning")
    await world.sync(alert_id)
    assert world.got(own) == [] and len(world.got(fallback)) == 1
    again = await world.api.delete(f"/api/v1/residents/{rid}/escalation", headers=world.boss)
    assert again.status_code == 404
    async with world.pool.acquire() as conn:  # other tests expect the built-in default
        await conn.execute("DELETE FROM escalation_defaults WHERE severity = 'warning'")
