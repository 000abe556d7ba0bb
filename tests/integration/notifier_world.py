"""A notifier with a clock moved by hand, the API answering its links, and real receivers
(an HTTP server that checks signatures, an SMTP server): the notifier tests' world.

Tests drive the stages themselves: `sync` (what an alerts.v1 record prompts), `run`
(time passes, then the chains' clock and delivery), so every step is awaited, never
slept for. tests/integration/conftest.py makes its fixtures everyone's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio

from alerts import store
from alerts.rules import RaiseAlert
from api import users
from api.app import create_app
from carewatch.embedded import EmbeddedStack
from carewatch.processes import NotifierParts, notifier_parts
from devices.registry import add_device
from notifier.clock import ManualClock
from notifier.links import Links, link_key
from plumbing.db import connect_pool
from plumbing.settings import Settings
from tests.integration.receivers import HttpReceiver, SmtpReceiver


@pytest_asyncio.fixture(scope="module")
async def notifier_pool(stack: EmbeddedStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(stack.database_url, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver()
    http.start()
    yield http
    http.stop()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    server = SmtpReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def notifier_settings(stack: EmbeddedStack, smtp: SmtpReceiver) -> Settings:
    return stack.settings.model_copy(update={
        "database_url": stack.database_url, "kafka_bootstrap": stack.kafka_bootstrap,
        "public_url": "http://carewatch.test", "smtp_url": f"smtp://127.0.0.1:{smtp.port}",
    })  # fmt: skip


@dataclass
class World:
    """A notifier with its own clock, the API that answers its links, and a supervisor."""

    pool: asyncpg.Pool
    clock: ManualClock
    notifier: NotifierParts
    api: httpx.AsyncClient
    boss: dict[str, str]  # an admin's Authorization header
    receiver: HttpReceiver

    async def run(self, seconds: float = 0) -> None:
        """Let `seconds` pass, then do everything due: the chains' steps, then sending."""
        self.clock.advance(seconds)
        await self.notifier.escalation.tick()
        while await self.notifier.delivery.send_due():
            pass

    async def sync(self, alert_id: int) -> None:
        """What the alerts.v1 record of a change prompts; then send what is due."""
        await self.notifier.escalation.sync(alert_id)
        await self.run()

    async def contact(self, name: str, *channels: dict[str, Any], **more: Any) -> int:
        body = {"name": name, "relationship": "family", "language": "zh-CN",
                "channels": list(channels), **more}  # fmt: skip
        answer = await self.api.post("/api/v1/contacts", json=body, headers=self.boss)
        assert answer.status_code == 201, answer.text
        contact_id: int = answer.json()["contact_id"]
        return contact_id

    def webhook(self, name: str) -> dict[str, Any]:
        """A webhook channel on the receiver, at a path of its own, signed."""
        path = f"/hook/{name}-{uuid.uuid4().hex[:6]}"
        self.receiver.secrets[path] = f"secret-{uuid.uuid4().hex}"
        return {"type": "webhook", "address": self.receiver.url(path),
                "secret": self.receiver.secrets[path]}  # fmt: skip

    async def resident(
        self, steps: list[dict[str, Any]], repeat: int = 0, *, area: str | None = None
    ) -> int:
        """A resident with this ladder; in the admin's area ('') unless `area` is given."""
        profile = {"name": "王芳", "address": "天平路 12 弄 3 号", "phone": "+86 21 6408 1234"}
        if area is not None:
            profile["area"] = area
        answer = await self.api.post("/api/v1/residents", json=profile, headers=self.boss)
        assert answer.status_code == 201, answer.text
        rid: int = answer.json()["resident_id"]
        answer = await self.api.put(
            f"/api/v1/residents/{rid}/escalation", json={"steps": steps, "repeat": repeat},
            headers=self.boss,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        return rid

    async def alert(self, resident_id: int, kind: str = "sos", severity: str = "critical") -> int:
        device = f"n-{uuid.uuid4().hex[:12]}"
        async with self.pool.acquire() as conn:
            await add_device(conn, device_id=device, format="native", resident_id=resident_id)
            (change,) = await store.apply_decisions(conn, [RaiseAlert(
                kind, severity, device, datetime.now(UTC), f"{device}:1", "SOS 按键",  # type: ignore[arg-type]
                lat=31.2, lon=121.44,
            )])  # fmt: skip
        alert_id: int = change["alert_id"]
        return alert_id

    def got(self, channel: dict[str, Any]) -> list[dict[str, Any]]:
        """The bodies a webhook channel received (2xx answered), in order."""
        return self.receiver.bodies(urlsplit(channel["address"]).path)

    async def log(self, alert_id: int) -> list[dict[str, Any]]:
        answer = await self.api.get(f"/api/v1/alerts/{alert_id}", headers=self.boss)
        assert answer.status_code == 200, answer.text
        notifications: list[dict[str, Any]] = answer.json()["notifications"]
        return notifications


@pytest_asyncio.fixture
async def world(
    notifier_pool: asyncpg.Pool, notifier_settings: Settings, receiver: HttpReceiver
) -> AsyncIterator[World]:
    async with open_world(notifier_pool, notifier_settings, receiver) as opened:
        yield opened


@asynccontextmanager
async def open_world(
    pool: asyncpg.Pool, settings: Settings, receiver: HttpReceiver
) -> AsyncIterator[World]:
    """A world whose notifier and API follow `settings` (a test wanting SMS or voice
    gateways, or a gateway secret, copies `notifier_settings` with them)."""
    clock = ManualClock()
    parts = notifier_parts(settings, pool, clock=clock)
    links = Links(key=link_key(settings), base_url=settings.public_url, ttl_s=3600)
    app = create_app(pool=pool, links=links, gateway_secret=settings.gateway_secret)
    name = f"admin-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        await users.add_user(conn, name=name, role="admin", area="")
        boss = {"Authorization": f"Bearer {await users.issue_token(conn, name)}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://carewatch.test"
    ) as api:
        try:
            yield World(pool, clock, parts, api, boss, receiver)
        finally:
            await parts.delivery.close_channels()
