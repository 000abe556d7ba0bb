"""An SOS pressed on a device reaches a person's webhook through the whole chain: MQTT,
ingest, the rules worker, the alerts.v1 outbox, and a notifier process's own components
(its consumer, clock and delivery, on the wall clock); the ack link then takes it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio

from api.app import create_app
from carewatch.processes import NotifierParts, notifier_parts
from devices import contacts, residents
from notifier.links import Links, link_key
from plumbing.settings import Settings
from tests.integration.conftest import Pipeline, eventually
from tests.integration.receivers import HttpReceiver

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def notifier(pipeline: Pipeline, notifier_settings: Settings) -> AsyncIterator[NotifierParts]:
    settings = notifier_settings.model_copy(
        update={"notifier_group": f"test-notifier-{uuid.uuid4().hex[:8]}"}
    )
    parts = notifier_parts(settings, pipeline.db)
    for component in parts.components():
        await component.start()
    yield parts
    for component in reversed(parts.components()):
        await component.stop()


async def test_an_sos_press_reaches_the_first_contact_and_the_ack_link_takes_it(
    pipeline: Pipeline,
    notifier: NotifierParts,
    notifier_settings: Settings,
    receiver: HttpReceiver,
) -> None:
    path = f"/hook/e2e-{uuid.uuid4().hex[:6]}"
    receiver.secrets[path] = secret = uuid.uuid4().hex
    async with pipeline.db.acquire() as conn:
        resident = await residents.add_resident(conn, name="赵大爷", timezone="Asia/Shanghai")
        son = await contacts.create_contact(
            conn, {"name": "赵强", "relationship": "family", "language": "zh-CN"},
            [{"type": "webhook", "address": receiver.url(path), "secret": secret}],
        )  # fmt: skip
        await contacts.set_ladder(
            conn, resident, [{"contacts": [son["contact_id"]], "wait_s": 120}], 0
        )
    device = await pipeline.register(resident_id=resident)

    await pipeline.publish(device, {"kind": "sos", "msg_id": f"sos-{uuid.uuid4()}"})

    async def delivered() -> dict[str, Any] | None:
        bodies = receiver.bodies(path)
        return bodies[0] if bodies else None

    body = await eventually(delivered)
    assert (body["alert"]["kind"], body["alert"]["status"]) == ("sos", "open")
    assert body["alert"]["resident"]["name"] == "赵大爷" and body["contact"]["name"] == "赵强"

    links = Links(key=link_key(notifier_settings), base_url=notifier_settings.public_url, ttl_s=60)
    app = create_app(pool=pipeline.db, links=links)
    link = urlsplit(body["ack_url"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://carewatch.test"
    ) as api:
        answer = await api.post(f"{link.path}?{link.query}", json={"answer": "accept"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["alert_status"] == "acknowledged"
    alerts = await pipeline.alerts(device)
    assert [a["acknowledged_by"] for a in alerts if a["kind"] == "sos"] == [
        f"赵强 (contact {son['contact_id']})"
    ]
