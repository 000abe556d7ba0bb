"""`carewatch bench-console`: the operator console in a real browser, measured.

It starts the embedded stack and the services as `up` does, signs an operator in with
Debian's Chromium (Playwright) and measures, in the browser:

- **SOS press -> rendered row**: devices press SOS one a second on their alarm topic
  while `rate` events/s of ordinary traffic flow from other devices; the page notes
  (MutationObserver, then the next animation frame) when each alarm's row is on screen;
  the press time is taken just before the publish. Both clocks are this machine's.
- **the queue with `open_alerts` open alarms**: the page loaded afresh (navigation start to
  the load event, rows included), and the live refresh (`/ui/queue` fetched and swapped).

It prints the percentiles and writes a JSON report (docs/console-benchmark.md reads one).
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from alerts import store
from alerts.rules import RaiseAlert
from api import users
from carewatch.bench import in_a_fresh_directory, percentiles, write_report
from carewatch.extras import needs_extra
from carewatch.simulate import raise_fd_limit, register_fleet
from devices.codecs.native import alarm_topic_for
from plumbing.db import connect_pool
from plumbing.mqtt import MqttClient, with_login
from plumbing.settings import Settings
from simulators.load import LoadGenerator

with needs_extra("browser", "carewatch bench-console"):
    from playwright.async_api import Page, async_playwright

    from carewatch.supervisor import Supervisor
    from carewatch.up import start_all, start_api

__all__ = ["ConsoleBenchPlan", "run_bench_console"]

CHROMIUM = os.environ.get("CAREWATCH_CHROMIUM", "/usr/bin/chromium")
_ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required",
         "--disable-background-networking", "--no-first-run"]  # fmt: skip

# Notes when each open alarm's row is on screen: the frame after it entered the DOM.
_WATCH_ROWS = """
window.cwRows = {};
new MutationObserver(() => {
  for (const row of document.querySelectorAll("#queue tr.row[data-status=open]")) {
    const id = row.dataset.alertId;
    if (!(id in window.cwRows)) {
      window.cwRows[id] = null;
      requestAnimationFrame(() => { window.cwRows[id] = Date.now(); });
    }
  }
}).observe(document.querySelector("#queue"), {childList: true, subtree: true});
"""
# When the page's rows are on screen: the first frame after the document is parsed
# (Chromium's paint timing entries are rounded to 100 ms here, too coarse to report).
_ON_SCREEN = """document.addEventListener("DOMContentLoaded", () =>
  requestAnimationFrame(() => { window.cwShown = performance.now(); }));"""
_LOAD_TIME = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  return {shown_ms: window.cwShown, load_ms: nav.loadEventEnd,
          response_ms: nav.responseEnd - nav.requestStart,
          rows: document.querySelectorAll("#queue tr.row").length};
}"""
_REFRESH_TIME = """async () => {
  const start = performance.now();
  await htmx.ajax("GET", "/ui/queue", {target: "#queue", swap: "innerHTML"});
  await new Promise((done) => requestAnimationFrame(done));
  return performance.now() - start;
}"""


@dataclass(frozen=True)
class ConsoleBenchPlan:
    rate: int = 1_000  # background events/s
    load_devices: int = 40
    presses: int = 60  # one a second
    open_alerts: int = 500
    loads: int = 20

    @classmethod
    def small(cls) -> ConsoleBenchPlan:
        return cls(rate=200, load_devices=10, presses=10, open_alerts=100, loads=5)


def run_bench_console(settings: Settings, plan: ConsoleBenchPlan, *, report: Path | None) -> int:
    raise_fd_limit(plan.load_devices + plan.presses + 1024)
    result = in_a_fresh_directory(
        "carewatch-bench-console-",
        lambda d: _bench(settings.model_copy(update={"data_dir": d}), plan),
    )
    _print(result)
    write_report(result, report)
    return 0


async def _bench(settings: Settings, plan: ConsoleBenchPlan) -> dict[str, Any]:
    async with AsyncExitStack() as exits:
        print("starting the embedded stack and the services…", flush=True)
        started = await start_all(exits, settings, gateway_port=0)
        url = (await start_api(exits, settings.model_copy(update={"api_port": 0}), started))[:-1]
        children = started.children
        await exits.enter_async_context(
            Supervisor(children={name: child for name, (child, _) in children.items()})
        )
        pool = await connect_pool(started.stack.database_url, min_size=1, max_size=4)
        exits.push_async_callback(pool.close)
        name, password = await _operator(pool)
        playwright = await exits.enter_async_context(async_playwright())
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        exits.push_async_callback(browser.close)
        page = await (await browser.new_context(locale="zh-CN")).new_page()
        await _sign_in(page, url, name, password)
        # The queue first, on the running system; then its alarms are closed, so the
        # presses' rows are the queue's most urgent and must show.
        queue = await _queue_timings(pool, page, url, plan)
        await page.goto(f"{url}/")
        await page.wait_for_selector("#live[data-state=live]")
        presses = await _press_under_load(started, pool, page, plan)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "system": platform.platform(), "load_avg": os.getloadavg()},
        "plan": asdict(plan),
        "press_to_row_ms": presses,
        "queue": queue,
    }  # fmt: skip


async def _operator(pool: asyncpg.Pool) -> tuple[str, str]:
    async with pool.acquire() as conn:
        user, password = await users.add_user(conn, name="bench-operator", role="operator")
    return user.name, password


async def _sign_in(page: Page, url: str, name: str, password: str) -> None:
    await page.goto(f"{url}/login")
    await page.fill("#name", name)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/")
    await page.wait_for_selector("#live[data-state=live]")


async def _press_under_load(
    started: Any, pool: asyncpg.Pool, page: Page, plan: ConsoleBenchPlan
) -> dict[str, Any]:
    stack, tag = started.stack, uuid.uuid4().hex[:6]
    load_ids = [f"bench-console-{tag}-load-{n:03d}" for n in range(plan.load_devices)]
    sos_ids = [f"bench-console-{tag}-sos-{n:03d}" for n in range(plan.presses)]
    secrets = await register_fleet(started.stack.settings, load_ids + sos_ids, stack.mqtt_url)
    load = LoadGenerator(url=stack.mqtt_url, protocol=stack.mqtt_protocol,
                         devices={d: secrets[d] for d in load_ids})  # fmt: skip
    buttons = {
        d: MqttClient(
            url=with_login(stack.mqtt_url, d, secrets[d]), client_id=d, protocol=stack.mqtt_protocol
        )
        for d in sos_ids
    }
    await load.connect()
    await asyncio.gather(*(b.start() for b in buttons.values()))
    await page.evaluate(_WATCH_ROWS)
    pressed: dict[str, float] = {}
    try:
        driving = asyncio.create_task(load.drive(plan.rate, plan.presses + 5.0))
        await asyncio.sleep(2.0)  # the load is flowing
        for device, button in buttons.items():
            pressed[device] = time.time()
            # As docs/native-format.md asks: the alarm topic, and a msg_id.
            press = orjson.dumps({"kind": "sos", "msg_id": f"{device}-1"})
            await button.publish(alarm_topic_for(device), press)
            await asyncio.sleep(1.0)
        await driving
        await _until_rows(page, pool, sos_ids)
    finally:
        await asyncio.gather(*(b.stop() for b in buttons.values()), return_exceptions=True)
        await load.close()
    shown: dict[str, int] = await page.evaluate("window.cwRows")
    delays = []
    async with pool.acquire() as conn:
        for device in sos_ids:
            for alert in await store.alerts_of_device(conn, device):
                if alert["kind"] == "sos" and shown.get(str(alert["alert_id"])):
                    delays.append((shown[str(alert["alert_id"])] / 1000 - pressed[device]) * 1000)
    return {"presses": len(pressed), "rendered": len(delays), "background_rate": plan.rate,
            **percentiles(delays)}  # fmt: skip


async def _until_rows(page: Page, pool: asyncpg.Pool, devices: list[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = await page.evaluate("Object.values(window.cwRows).filter(Boolean).length")
        if shown >= len(devices):
            return
        await asyncio.sleep(0.2)


async def _queue_timings(
    pool: asyncpg.Pool, page: Page, url: str, plan: ConsoleBenchPlan
) -> dict[str, Any]:
    opened = await _open_alarms(pool, plan.open_alerts)
    await page.context.add_init_script(_ON_SCREEN)
    await asyncio.sleep(5.0)  # the open page has taken in the 500 changes
    result: dict[str, Any] = {"open_alarms": plan.open_alerts}
    for shown, path in (("shown", "/"), ("all", "/?all=1")):
        shown_at, loads, refreshes, responses, rows = [], [], [], [], 0
        for _ in range(plan.loads):
            await page.goto(f"{url}{path}")
            await page.wait_for_load_state("load")
            timing = await page.evaluate(_LOAD_TIME)
            shown_at.append(timing["shown_ms"])
            loads.append(timing["load_ms"])
            responses.append(timing["response_ms"])
            rows = timing["rows"]
            refreshes.append(
                await page.evaluate(_REFRESH_TIME.replace("/ui/queue", f"/ui/queue{path[1:]}"))
            )
        result[shown] = {"rows": rows, "on_screen_ms": percentiles(shown_at),
                         "response_ms": percentiles(responses),
                         "page_load_ms": percentiles(loads),
                         "live_refresh_ms": percentiles(refreshes)}  # fmt: skip
    async with pool.acquire() as conn:
        for alert in opened:
            await store.resolve(conn, alert["alert_id"], by="bench", note="bench", code="test")
    return result


async def _open_alarms(pool: asyncpg.Pool, count: int) -> list[dict[str, Any]]:
    """`count` more open alarms (a mass event), straight into the store."""
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:6]
    decisions = [
        RaiseAlert(
            "sos" if n % 3 else "fall",
            "critical",
            f"bench-mass-{tag}-{n:04d}",
            now,
            f"bench-mass-{tag}-{n}",
            "SOS button pressed",
        )
        for n in range(count)
    ]
    async with pool.acquire() as conn:
        return await store.apply_decisions(conn, decisions)  # type: ignore[arg-type]


def _print(result: dict[str, Any]) -> None:
    press, queue = result["press_to_row_ms"], result["queue"]
    print(
        f"SOS press -> row on screen ({press['background_rate']} events/s of background load,"
        f" {press['rendered']}/{press['presses']} rendered): p50 {press['p50']:.0f} ms"
        f"  p95 {press['p95']:.0f} ms  p99 {press['p99']:.0f} ms"
    )
    for shown in ("shown", "all"):
        part = queue[shown]
        paint, load, refresh = (
            part[k] for k in ("on_screen_ms", "page_load_ms", "live_refresh_ms")
        )
        print(
            f"queue, {queue['open_alarms']}+ open alarms, {part['rows']} rows on the page:"
            f" rows on screen p50 {paint['p50']:.0f} / p95 {paint['p95']:.0f} ms,"
            f" load p50 {load['p50']:.0f} / p95 {load['p95']:.0f} ms,"
            f" live refresh p50 {refresh['p50']:.0f} / p95 {refresh['p95']:.0f} ms"
        )
