"""Signing in, over the API and in the console: a name that keeps failing is refused for a
while (429, even with the right password), and the console's sessions expire by
themselves, whatever the browser keeps."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import pytest_asyncio

from api import users
from api.app import create_app
from api.credentials import SESSION_COOKIE
from carewatch.embedded import EmbeddedStack
from console.app import install
from console.session import SESSION_S
from plumbing.db import connect_pool

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def pool(stack: EmbeddedStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(stack.database_url, max_size=4)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def http(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh application each test: the sign-in limit is per process."""
    app = create_app(pool=pool)
    install(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        yield client


async def _user(pool: asyncpg.Pool) -> tuple[str, str]:
    async with pool.acquire() as conn:
        user, password = await users.add_user(
            conn, name=f"op-{uuid.uuid4().hex[:8]}", role="operator"
        )
    return user.name, password


async def test_the_api_refuses_a_name_after_five_failures_even_with_the_password(
    pool: asyncpg.Pool, http: httpx.AsyncClient
) -> None:
    name, password = await _user(pool)
    for _ in range(5):
        wrong = await http.post("/api/v1/login", json={"name": name, "password": "guess"})
        assert wrong.status_code == 401
    refused = await http.post("/api/v1/login", json={"name": name, "password": password})
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 300
    assert "too many failed sign-ins" in refused.json()["detail"]
    other, other_password = await _user(pool)  # another user is not locked out
    fine = await http.post("/api/v1/login", json={"name": other, "password": other_password})
    assert fine.status_code == 200


async def test_the_console_counts_against_the_same_limit(
    pool: asyncpg.Pool, http: httpx.AsyncClient
) -> None:
    name, password = await _user(pool)
    for _ in range(3):
        await http.post("/api/v1/login", json={"name": name, "password": "guess"})
    for _ in range(2):
        page = await http.post("/login", data={"name": name, "password": "guess"})
        assert page.status_code == 401
    page = await http.post(
        "/login", data={"name": name, "password": password}, headers={"Accept-Language": "en"}
    )
    assert page.status_code == 429
    assert "Too many failed sign-ins" in page.text
    assert SESSION_COOKIE not in page.cookies


async def test_a_console_session_expires_with_its_shift(
    pool: asyncpg.Pool, http: httpx.AsyncClient
) -> None:
    name, password = await _user(pool)
    signed_in = await http.post("/login", data={"name": name, "password": password})
    assert signed_in.status_code == 303
    token = signed_in.cookies[SESSION_COOKIE]
    async with pool.acquire() as conn:
        lasts = await conn.fetchval(
            "SELECT extract(epoch FROM expires_at - created_at) FROM api_tokens"
            " WHERE token_hash = sha256($1::text::bytea)",
            token,
        )
        assert lasts == pytest.approx(SESSION_S, abs=5)
        assert await users.user_for_token(conn, token) is not None
        # The shift is over: the same token is refused, cookie or not.
        await conn.execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second'"
            " WHERE token_hash = sha256($1::text::bytea)",
            token,
        )
        assert await users.user_for_token(conn, token) is None
    http.cookies.set(SESSION_COOKIE, token)
    assert (await http.get("/api/v1/me")).status_code == 401
    assert (await http.get("/")).status_code == 303  # back to the sign-in page


async def test_program_tokens_do_not_expire(pool: asyncpg.Pool) -> None:
    name, _password = await _user(pool)
    async with pool.acquire() as conn:
        token = await users.issue_token(conn, name)
        assert (
            await conn.fetchval(
                "SELECT expires_at FROM api_tokens WHERE token_hash = sha256($1::text::bytea)",
                token,
            )
            is None
        )
        assert await users.user_for_token(conn, token) is not None
