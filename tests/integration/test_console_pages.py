"""The console's other pages in a real Chromium: device health, the residents' directory
and a resident's page, the map (without tiles, as on a closed network), the
acknowledgement statistics and the work orders; each in English and Chinese, each showing
only the user's area, and none with a serious accessibility problem (axe-core).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from alerts import store, work_orders
from alerts.rules.base import RaiseAlert
from devices import contacts, residents
from devices.registry import add_device
from tests.integration.browser import Console, axe_problems, sign_in
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration

HOME = (31.2002, 121.4401)  # 徐汇区, Shanghai
ZONES = [
    {"name": "家", "center": list(HOME), "radius_m": 300},
    {"name": "公园", "polygon": [[31.205, 121.445], [31.205, 121.45], [31.209, 121.45],
                                 [31.209, 121.445]]},
]  # fmt: skip


def _area(name: str = "xuhui") -> str:
    return f"test-{uuid.uuid4().hex[:6]}/{name}"


async def _resident(pipeline: Pipeline, area: str, name: str, **profile: Any) -> int:
    async with pipeline.db.acquire() as conn:
        row = await residents.create_resident(conn, {"name": name, "area": area, **profile})
    return int(row["resident_id"])


async def _device(pipeline: Pipeline, resident_id: int) -> str:
    """A device of the resident that never sends anything (no broker account needed)."""
    device_id = f"t-{uuid.uuid4().hex[:12]}"
    async with pipeline.db.acquire() as conn:
        await add_device(conn, device_id=device_id, format="native", resident_id=resident_id)
    return device_id


async def _goto(page: Page, console: Console, path: str) -> None:
    await page.goto(f"{console.url}{path}")
    await page.wait_for_load_state("networkidle")


@dataclass
class Centre:
    """An area's residents and devices, a resident of another area, and a second area
    with two alarms taken on (one late) and a work order, for the statistics."""

    area: str
    sun: int  # a resident with contacts, zones and a position
    wearer: str  # Sun's device: battery low, and a position
    silent: str  # a device never heard from
    well: str  # a device that is fine
    elsewhere: int  # a resident of another area
    stats_area: str
    alerts: list[int]
    operator: str  # who took the alarms on


async def _people(pipeline: Pipeline, area: str) -> tuple[int, int, int]:
    sun = await _resident(
        pipeline, area, "Sun Lan", sex="female", birth_year=1940, living_alone=True,
        address="长宁区愚园路 88 弄 5 号", phone="+86 138 1111 2222", allergies="青霉素",
    )  # fmt: skip
    qian = await _resident(pipeline, area, "Qian Wei", address="徐汇区天平路 3 号")
    elsewhere = await _resident(pipeline, _area("minhang"), "Sun Outside", phone="13811112222")
    async with pipeline.db.acquire() as conn, conn.transaction():
        daughter = await contacts.create_contact(
            conn, {"name": "孙丽", "relationship": "family", "phones": ["13900000012"],
                   "area": area}, [],
        )  # fmt: skip
        neighbour = await contacts.create_contact(
            conn, {"name": "周阿姨", "relationship": "neighbour", "phones": ["13900000013"],
                   "area": area}, [],
        )  # fmt: skip
        steps = [{"contacts": [neighbour["contact_id"]], "wait_s": 60},
                 {"contacts": [daughter["contact_id"]], "wait_s": 60}]  # fmt: skip
        await contacts.set_ladder(conn, sun, steps, 1)
        await residents.set_rule_overrides(conn, sun, {"geofence": {"zones": ZONES}})
    return sun, qian, elsewhere


async def _alarms(pipeline: Pipeline, console: Console, area: str) -> tuple[list[int], str]:
    """Two SOS alarms in `area`, one taken on at once and one after 5 minutes, by one
    operator; a visit dispatched about the late one, already overdue."""
    operator, _password = await console.user("operator", area)
    alerts = []
    for name, delay in (("Zhou Min", 0), ("Wu Fang", 300)):
        device = await _device(pipeline, await _resident(pipeline, area, name))
        async with pipeline.db.acquire() as conn:
            decision = RaiseAlert(
                "sos", "critical", device, datetime.now(UTC), uuid.uuid4().hex, "SOS pressed"
            )
            (alert,) = await store.apply_decisions(conn, [decision])
            await conn.execute(
                "UPDATE alerts SET opened_at = opened_at - make_interval(secs => $2)"
                " WHERE alert_id = $1",
                alert["alert_id"], delay,
            )  # fmt: skip
            await store.acknowledge(conn, alert["alert_id"], by=operator)
        alerts.append(int(alert["alert_id"]))
    async with pipeline.db.acquire() as conn:
        await work_orders.dispatch(
            conn, alerts[1], by=operator, assignee="社区网格员 王芳", phone="13700000001",
            due_in=timedelta(minutes=-5),
        )  # fmt: skip
    return alerts, operator


@pytest_asyncio.fixture(scope="module")
async def centre(pipeline: Pipeline, console: Console) -> Centre:
    area = _area()
    sun, qian, elsewhere = await _people(pipeline, area)
    wearer = await pipeline.register(resident_id=sun)
    well = await pipeline.register(resident_id=qian)
    silent = await _device(pipeline, qian)
    await pipeline.publish(wearer, [
        {"kind": "battery", "battery_pct": 9, "msg_id": "b"},
        {"kind": "location", "lat": HOME[0] + 0.001, "lon": HOME[1], "msg_id": "l"},
    ])  # fmt: skip
    await pipeline.publish(well, [{"kind": "battery", "battery_pct": 80, "msg_id": "b"},
                                  {"kind": "worn", "worn": True, "msg_id": "w"}])  # fmt: skip
    await pipeline.wait_events(wearer, 2)
    await pipeline.wait_events(well, 2)
    stats_area = _area("changning")
    alerts, operator = await _alarms(pipeline, console, stats_area)
    return Centre(area, sun, wearer, silent, well, elsewhere, stats_area, alerts, operator)


async def test_device_health_puts_problems_first_with_icon_and_word(
    console: Console, browser: Browser, centre: Centre
) -> None:
    name, password = await console.user("operator", centre.area)
    context, page = await sign_in(browser, console, name, password, locale="en-US")
    await page.get_by_role("link", name="Devices").click()
    await expect(page.locator("h1")).to_have_text("Device health")
    await expect(page.locator("nav a[href='/devices']")).to_have_attribute("aria-current", "page")
    rows = page.locator("tr.device")
    await expect(rows).to_have_count(3)  # this area's only
    assert await rows.evaluate_all("rows => rows.map(r => r.id)") == [
        f"device-{centre.silent}", f"device-{centre.wearer}", f"device-{centre.well}",
    ]  # fmt: skip
    await expect(rows.nth(0)).to_have_attribute("data-health", "never_heard")
    await expect(rows.nth(0).locator(".verdicts")).to_have_text("? Never heard")
    await expect(rows.nth(1)).to_have_attribute("data-health", "battery_low")
    await expect(rows.nth(1)).to_contain_text("9 %")
    await expect(rows.nth(1).locator(".verdicts")).to_have_text("▼ Battery low")
    await expect(rows.nth(2)).to_have_attribute("data-health", "ok")
    await expect(rows.nth(2).locator(".verdicts")).to_have_text("✓ OK")

    await page.locator("a.filter[data-state=battery_low]").click()
    await expect(page.locator("tr.device")).to_have_count(1)
    await expect(page.locator("tr.device")).to_have_id(f"device-{centre.wearer}")
    await context.close()

    context, page = await sign_in(browser, console, name, password, locale="zh-CN")
    await _goto(page, console, "/devices")
    await expect(page.locator("h1")).to_have_text("设备状态")
    await expect(page.locator(f"#device-{centre.wearer} .verdicts")).to_have_text("▼ 电量低")
    await expect(page.locator(f"#device-{centre.silent} .verdicts")).to_have_text("? 从未上线")
    await context.close()


async def test_the_directory_searches_name_address_and_phone_within_the_area(
    console: Console, browser: Browser, centre: Centre
) -> None:
    name, password = await console.user("operator", centre.area)
    context, page = await sign_in(browser, console, name, password, locale="en-US")
    await page.get_by_role("link", name="Residents").click()
    await expect(page.locator("h1")).to_have_text("Residents")
    listed = page.locator("tr.resident td:first-child a")
    await expect(listed).to_have_text(["Qian Wei", "Sun Lan"])
    for query in ("sun", "愚园路", "13811112222", "138 1111"):
        await _goto(page, console, f"/residents?q={query}")
        await expect(listed).to_have_text(["Sun Lan"])  # not "Sun Outside", elsewhere
    # Typing searches as you go (htmx), and the address follows.
    await page.fill("#q", "天平路")
    await expect(listed).to_have_text(["Qian Wei"])
    await page.wait_for_url("**/residents?q=*")
    await page.fill("#q", "nobody-at-all")
    await expect(page.locator("#results .empty")).to_contain_text("nobody-at-all")
    await context.close()

    context, page = await sign_in(browser, console, name, password, locale="zh-CN")
    await _goto(page, console, "/residents")
    await expect(page.locator("h1")).to_have_text("老人")
    await expect(page.get_by_label("按姓名、地址或电话搜索")).to_be_visible()
    await context.close()


async def test_a_resident_page_shows_card_ladder_devices_zones_and_alarms(
    console: Console, browser: Browser, centre: Centre
) -> None:
    name, password = await console.user("operator", centre.area)
    context, page = await sign_in(browser, console, name, password, locale="en-US")
    await _goto(page, console, "/residents?q=Sun")
    await page.get_by_role("link", name="Sun Lan").click()
    await page.wait_for_url(f"**/residents/{centre.sun}")
    await expect(page.locator("h1")).to_have_text("Sun Lan")
    await expect(page.locator(".card-list")).to_contain_text("青霉素")
    await expect(page.locator(".card-list")).to_contain_text("yes, lives alone")
    ladder = page.locator(".ladder li")
    await expect(ladder).to_have_count(2)
    await expect(ladder.nth(0)).to_contain_text("周阿姨")  # the ladder's first step
    await expect(ladder.nth(1)).to_contain_text("孙丽")
    await expect(page.locator(".ladder a[href='tel:13900000013']")).to_be_visible()
    await expect(page.locator(f"#device-{centre.wearer}")).to_contain_text("Battery low")
    await expect(page.locator(".zones li")).to_have_count(2)
    await expect(page.locator(".map.leaflet-container path.leaflet-interactive")).to_have_count(3)
    await expect(page.locator(".timeline")).to_contain_text("Position")
    await context.close()

    # The same resident, to a user of another area: not shown.
    other, password = await console.user("operator", _area("pudong"))
    context, page = await sign_in(browser, console, other, password, locale="zh-CN")
    answer = await page.goto(f"{console.url}/residents/{centre.sun}")
    assert answer is not None and answer.status == 403
    await expect(page.locator("h1")).to_have_text("不在您的辖区")
    await expect(page.locator("body")).not_to_contain_text("Sun Lan")
    await _goto(page, console, "/residents?q=Sun")
    await expect(page.locator("tr.resident")).to_have_count(0)
    await context.close()


async def test_the_map_draws_positions_and_zones_without_tiles(
    console: Console, browser: Browser, centre: Centre
) -> None:
    name, password = await console.user("operator", centre.area)
    context, page = await sign_in(browser, console, name, password, locale="en-US")
    await page.get_by_role("link", name="Map").click()
    await expect(page.locator("h1")).to_have_text("Map")
    box = page.locator(".map.large")
    await expect(box).to_have_class(re.compile(r"\bleaflet-container\b.*\bno-tiles\b"))
    await expect(box).to_have_attribute("data-points", "1")
    await expect(box).to_have_attribute("data-zones", "2")
    await expect(box.locator("img.leaflet-tile")).to_have_count(0)
    await expect(box.locator("path.leaflet-interactive")).to_have_count(3)  # point, 2 zones
    await expect(box.locator(".leaflet-tooltip.map-label")).to_have_text("Sun Lan")
    await expect(box.locator(".leaflet-control-scale")).to_be_visible()
    await expect(page.locator("table.positions tbody tr")).to_have_count(1)
    await expect(page.locator("table.positions")).not_to_contain_text("Sun Outside")
    await context.close()

    context, page = await sign_in(browser, console, name, password, locale="zh-CN")
    await _goto(page, console, "/map")
    await expect(page.locator("h1")).to_have_text("地图")
    await expect(page.locator(".map .leaflet-tooltip.map-label")).to_have_text("Sun Lan")
    await context.close()


async def test_statistics_and_work_orders_for_a_supervisor(
    console: Console, browser: Browser, centre: Centre
) -> None:
    name, password = await console.user("supervisor", centre.stats_area)
    context, page = await sign_in(browser, console, name, password, locale="en-US")
    await page.get_by_role("link", name="Statistics").click()
    await expect(page.locator("h1")).to_have_text("Time to acknowledge")
    await expect(page.locator(".targets")).to_contain_text("97.5 %")
    await expect(page.get_by_role("link", name="Today")).to_have_attribute("aria-current", "page")
    # One alarm opened 5 minutes ago may be yesterday's just after midnight: the 7 days.
    await page.get_by_role("link", name="Last 7 days").click()
    overall = page.locator("table.overall tbody tr")
    await expect(overall.locator("td").nth(0)).to_have_text("2")
    await expect(overall.locator("td").nth(1)).to_have_text("2")
    await expect(overall.locator(".within-60")).to_contain_text("50.0 %")
    await expect(overall.locator(".within-60")).to_contain_text("✖ below target")
    await expect(overall.locator(".within-180")).to_contain_text("50.0 %")
    operator = page.locator("table.by-operator tbody tr")
    await expect(operator).to_have_count(1)
    await expect(operator.locator("th")).to_have_text(centre.operator)
    await expect(operator.locator(".p95")).not_to_have_text("—")
    await expect(page.locator("table.by-shift tbody tr.below")).not_to_have_count(0)

    await page.get_by_role("link", name="Work orders").click()
    await expect(page.locator("h1")).to_have_text("Work orders")
    order = page.locator("tr.order")
    await expect(order).to_have_count(1)
    await expect(order).to_contain_text("社区网格员 王芳")
    await expect(order).to_contain_text("✖ overdue")
    await order.locator(f"a[href='/alerts/{centre.alerts[1]}']").click()
    await expect(
        page.locator(f"#alarm .alarm-view[data-alert-id='{centre.alerts[1]}']")
    ).to_be_visible()
    await context.close()

    context, page = await sign_in(browser, console, name, password, locale="zh-CN")
    await _goto(page, console, "/stats?window=7d")
    await expect(page.locator("h1")).to_have_text("接警时效")
    await expect(page.locator("table.overall .within-60")).to_contain_text("未达标")
    await _goto(page, console, "/work-orders?overdue=1")
    await expect(page.locator("h1")).to_have_text("工单")
    await expect(page.locator("tr.order")).to_contain_text("已超时")
    await context.close()

    # An operator has no statistics.
    name, password = await console.user("operator", centre.area)
    context, page = await sign_in(browser, console, name, password, locale="en-US")
    await expect(page.get_by_role("link", name="Statistics")).to_have_count(0)
    answer = await page.goto(f"{console.url}/stats")
    assert answer is not None and answer.status == 403
    await expect(page.locator("h1")).to_have_text("For supervisors only")
    await context.close()


HEADINGS = {
    "/devices": ("Device health", "设备状态"),
    "/residents": ("Residents", "老人"),
    "/map": ("Map", "地图"),
    "/stats": ("Time to acknowledge", "接警时效"),
    "/work-orders": ("Work orders", "工单"),
}


async def test_no_serious_accessibility_problem_on_the_pages(
    console: Console, browser: Browser, centre: Centre
) -> None:
    name, password = await console.user("supervisor", centre.area)
    paths = [*HEADINGS, f"/residents/{centre.sun}", "/residents?q=nobody-at-all",
             f"/residents/{centre.elsewhere}"]  # fmt: skip
    for locale in ("en-US", "zh-CN"):
        context, page = await sign_in(browser, console, name, password, locale=locale)
        for path in paths:
            await _goto(page, console, path)
            if path in HEADINGS:
                heading = HEADINGS[path][locale == "zh-CN"]
                await expect(page.locator("h1")).to_have_text(heading)
            assert await axe_problems(page) == [], (locale, path)
        await context.close()
