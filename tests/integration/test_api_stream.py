"""`/api/v1/stream` over a real HTTP connection: alert changes arrive as they commit,
only those of the user's area, and a client that reconnects with `Last-Event-ID` gets
what it missed first."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio

from alerts import store
from api.app import create_app
from api.feed import AlertFeed
from carewatch.embedded import EmbeddedStack
from plumbing.db import connect_pool
from plumbing.http import HealthServer
from tests.integration.conftest import eventually
from tests.integration.test_api import Login, _alert, _user

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def pool(stack: EmbeddedStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(stack.database_url, max_size=8)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module")
async def feed(stack: EmbeddedStack, pool: asyncpg.Pool) -> AsyncIterator[AlertFeed]:
    # A long interval: changes must come by PostgreSQL's notification, not by the clock.
    async with AlertFeed(database_url=stack.database_url, pool=pool, interval_s=30) as feed:
        yield feed


@pytest_asyncio.fixture(scope="module")
async def api_url(pool: asyncpg.Pool, feed: AlertFeed) -> AsyncIterator[str]:
    app = create_app(pool=pool, feed=feed)
    async with HealthServer(host="127.0.0.1", port=0, health=feed.health, app=app) as server:
        yield f"http://127.0.0.1:{server.port}/api/v1"


class Events:
    """The events of one open stream, parsed as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, within: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._next(), within)

    async def _next(self) -> dict[str, Any]:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if "data" in fields:
                    return {"id": int(fields["id"]), "event": fields["event"],
                            "data": orjson.loads(fields["data"])}  # fmt: skip
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        raise EOFError("the stream ended")


@contextlib.asynccontextmanager
async def opened(url: str, login: Login, **headers: str) -> AsyncIterator[Events]:
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{url}/stream", headers={**login.auth, **headers}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Events(response)


def area() -> str:
    return f"stream-{uuid.uuid4().hex[:8]}/xuhui"


async def _subscribed(feed: AlertFeed) -> None:
    """Until the stream just opened is the feed's (the response starts before that)."""

    async def listening() -> bool:
        return bool(feed.health()["streams"] >= 1)

    await eventually(listening, within=5)


async def test_changes_of_the_users_area_arrive_as_they_commit(
    api_url: str, pool: asyncpg.Pool, feed: AlertFeed
) -> None:
    mine, theirs = area(), area()
    operator = await _user(pool, "operator", mine)
    async with opened(api_url, operator) as events:
        await _subscribed(feed)
        await _alert(pool, theirs)  # another area's: never shown to this operator
        alert_id = await _alert(pool, mine)
        async with pool.acquire() as conn:
            await store.acknowledge(conn, alert_id, by=operator.name, note="on it")

        opened_change, acked = await events.next(), await events.next()

    assert opened_change["event"] == "alert"
    assert opened_change["data"]["alert_id"] == acked["data"]["alert_id"] == alert_id
    assert (opened_change["data"]["change"], acked["data"]["change"]) == ("opened", "acknowledged")
    assert acked["data"]["actor"] == operator.name and acked["data"]["area"] == mine
    assert acked["id"] == acked["data"]["history_id"] > opened_change["id"]


async def test_a_client_that_reconnects_gets_what_it_missed_first(
    api_url: str, pool: asyncpg.Pool, feed: AlertFeed
) -> None:
    mine = area()
    supervisor = await _user(pool, "supervisor", mine)
    async with opened(api_url, supervisor) as events:
        await _subscribed(feed)
        alert_id = await _alert(pool, mine)
        seen = await events.next()
    # Disconnected: the alert is acknowledged and resolved meanwhile.
    async with pool.acquire() as conn:
        await store.acknowledge(conn, alert_id, by="someone", note=None)
        await store.resolve(conn, alert_id, by="someone", note="false alarm")

    async with opened(api_url, supervisor, **{"Last-Event-ID": str(seen["id"])}) as events:
        missed = [await events.next(), await events.next()]

    assert [e["data"]["change"] for e in missed] == ["acknowledged", "resolved"]
    assert all(e["data"]["alert_id"] == alert_id for e in missed)


async def test_without_a_token_or_with_a_bad_last_event_id_it_is_refused(
    api_url: str, pool: asyncpg.Pool
) -> None:
    operator = await _user(pool, "operator", area())
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{api_url}/stream")).status_code == 401
        bad = await client.get(
            f"{api_url}/stream", headers={**operator.auth, "Last-Event-ID": "yesterday"}
        )
        assert bad.status_code == 422


async def test_streams_do_not_hold_database_connections(
    api_url: str, pool: asyncpg.Pool, feed: AlertFeed
) -> None:
    """More streams than the pool has connections (8): each still opens and gets changes."""
    mine = area()
    operator = await _user(pool, "operator", mine)
    async with contextlib.AsyncExitStack() as streams:
        clients = [await streams.enter_async_context(opened(api_url, operator)) for _ in range(12)]

        async def all_subscribed() -> bool:
            return bool(feed.health()["streams"] >= 12)

        await eventually(all_subscribed, within=5)
        alert_id = await _alert(pool, mine)
        changes = [await events.next() for events in clients]

    assert {c["data"]["alert_id"] for c in changes} == {alert_id}
