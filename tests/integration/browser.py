"""What the console's browser tests share: the API and console served on a free port
(the same application `carewatch api` serves), Debian's Chromium driven by Playwright,
signing in, and axe-core's verdict on a page.

Chromium plays sound without a click first (`--autoplay-policy`): a monitoring centre
sets the same policy for its console (docs/console.md); the console shows a notice when a
browser blocks it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from api import users
from api.app import create_app
from api.feed import AlertFeed
from console.app import ConsoleConfig, install
from plumbing.db import connect_pool
from plumbing.http import HealthServer

__all__ = [
    "CHROMIUM",
    "SCREENSHOTS",
    "Console",
    "axe_problems",
    "chromium",
    "serve_console",
    "sign_in",
]

CHROMIUM = os.environ.get("CAREWATCH_CHROMIUM", "/usr/bin/chromium")
# Where the screenshots of docs/console.md are written when CAREWATCH_SCREENSHOTS=1.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",  # nothing but loopback is reachable here
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Console:
    url: str
    pool: asyncpg.Pool

    async def user(self, role: str = "operator", area: str = "") -> tuple[str, str]:
        """A new user's name and password."""
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        async with self.pool.acquire() as conn:
            _user, password = await users.add_user(conn, name=name, role=role, area=area)
        return name, password


@asynccontextmanager
async def serve_console(
    database_url: str, config: ConsoleConfig | None = None
) -> AsyncIterator[Console]:
    async with AsyncExitStack() as stack:
        pool = await connect_pool(database_url, max_size=8)
        stack.push_async_callback(pool.close)
        feed = AlertFeed(database_url=database_url, pool=pool)
        app = create_app(pool=pool, feed=feed)
        install(app, config or ConsoleConfig())
        server = HealthServer(
            host="127.0.0.1", port=0, health=lambda: {"ok": True}, app=app, name="console"
        )
        await stack.enter_async_context(server)
        await stack.enter_async_context(feed)
        yield Console(url=f"http://127.0.0.1:{server.port}", pool=pool)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(
    browser: Browser,
    console: Console,
    name: str,
    password: str,
    *,
    locale: str = "en-US",
    timezone: str = "Asia/Shanghai",
) -> tuple[BrowserContext, Page]:
    """A new browser context (its own cookies) in `locale`, signed in, on the queue."""
    context = await browser.new_context(
        locale=locale, timezone_id=timezone, viewport={"width": 1440, "height": 1000}
    )
    page = await context.new_page()
    await page.goto(f"{console.url}/login")
    await page.fill("#name", name)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{console.url}/")
    return context, page


async def axe_problems(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    found: list[dict[str, Any]] = results.response["violations"]
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


async def screenshot(page: Page, name: str) -> None:
    """Keep a screenshot for docs/console.md (only when CAREWATCH_SCREENSHOTS=1)."""
    if os.environ.get("CAREWATCH_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)
