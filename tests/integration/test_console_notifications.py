"""The alarm view's notification log in a real Chromium: who the notifier told, on which
channel, at which step, and what came of it (an icon and a word each, a failure with its
error), with times in the viewer's zone; in Chinese and English, with no serious
accessibility problem (axe-core). The rows are written straight into `notifications`, as
the notifier writes them (plumbing/migrations/0015_notifications.sql)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from alerts import store
from alerts.rules.base import RaiseAlert
from console import i18n
from devices import contacts, residents
from devices.registry import add_device
from tests.integration.browser import Console, axe_problems, sign_in

pytestmark = pytest.mark.integration

# When each notification was decided: the first one 10 minutes ago.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


@dataclass
class Notified:
    area: str
    alert_id: int  # told three times: accepted, failed (round 2), resolution notice
    quiet_id: int  # told nobody yet


async def _alert(conn: asyncpg.Connection, area: str, name: str) -> int:
    """An open SOS alarm of a new resident of `area` (a device that never sends)."""
    resident = await residents.create_resident(conn, {"name": name, "area": area})
    device_id = f"t-{uuid.uuid4().hex[:12]}"
    await add_device(
        conn, device_id=device_id, format="native", resident_id=resident["resident_id"]
    )
    decision = RaiseAlert(
        "sos", "critical", device_id, datetime.now(UTC), uuid.uuid4().hex, "SOS pressed"
    )
    (alert,) = await store.apply_decisions(conn, [decision])
    return int(alert["alert_id"])


_INSERT = """
INSERT INTO notifications (notification_id, alert_id, purpose, cycle, round, step,
    contact_id, contact_name, channel, position, address, language, message, status,
    attempts, due_at, last_error, created_at, sent_at, answered_at)
VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, 0, $9, 'zh-CN', '{}', $10, $11, $13, $12, $13,
    $14, $15)
"""


@pytest_asyncio.fixture(scope="module")
async def notified(console: Console) -> Notified:
    area = f"test-{uuid.uuid4().hex[:6]}/xuhui"
    async with console.pool.acquire() as conn, conn.transaction():
        alert_id = await _alert(conn, area, "Zhou Guilan")
        quiet_id = await _alert(conn, area, "Wu Lan")
        daughter = await contacts.create_contact(
            conn, {"name": "王丽", "relationship": "family", "phones": ["13900000002"],
                   "area": area},
            [{"type": "sms", "address": "13900000002", "secret": None}],
        )  # fmt: skip
        who = daughter["contact_id"]
        minute = timedelta(minutes=1)
        rows = [  # purpose, round, step, contact, name, channel, address, status, tries,
            # error, created, sent, answered
            ("alert", 0, 0, who, "王丽", "sms", "13900000002", "accepted", 1, None,
             START, START, START + minute),
            ("alert", 1, 1, None, "李阿姨", "voice", "13900000003", "failed", 3,
             "SIP 503 service unavailable", START + 2 * minute, None, None),
            ("resolved", 0, 0, who, "王丽", "wecom", "wl-wecom", "delivered", 1, None,
             START + 4 * minute, START + 4 * minute, None),
        ]  # fmt: skip
        for row in rows:
            await conn.execute(_INSERT, uuid.uuid4().hex, alert_id, *row)
    return Notified(area, alert_id, quiet_id)


def _time(value: datetime, zone: str, language: str) -> str:
    """A time as the console writes it for a viewer in `zone`."""
    return i18n.format_time(value, ZoneInfo(zone), language, "short")


async def _open(page: Page, console: Console, alert_id: int) -> None:
    await page.goto(f"{console.url}/alerts/{alert_id}")
    await page.wait_for_load_state("networkidle")


async def test_the_alarm_view_lists_the_notifications_in_chinese(
    console: Console, browser: Browser, notified: Notified
) -> None:
    name, password = await console.user("operator", notified.area)
    context, page = await sign_in(browser, console, name, password, locale="zh-CN")
    await _open(page, console, notified.alert_id)
    table = page.get_by_role("table", name="通知记录")
    await expect(table.locator("thead th")).to_have_text(
        ["时间", "联系人", "通知方式", "步骤", "状态"]
    )
    rows = table.locator("tbody tr")
    await expect(rows).to_have_count(3)
    accepted, failed, resolved = rows.nth(0), rows.nth(1), rows.nth(2)
    await expect(accepted.locator("td")).to_have_text(
        [_time(START, "Asia/Shanghai", "zh-CN"), "王丽", "短信", "第 1 步", "✔ 已接受"]
    )
    await expect(failed.locator("td").nth(1)).to_have_text("李阿姨")
    await expect(failed.locator("td").nth(2)).to_have_text("语音电话")
    await expect(failed.locator("td").nth(3)).to_have_text("第 2 步（第 2 轮）")
    status = failed.locator("td").nth(4)
    await expect(status.locator(".notified")).to_have_text("⚠ 发送失败")
    await expect(status.locator(".muted")).to_have_text("SIP 503 service unavailable")
    await expect(resolved.locator("td").nth(2)).to_have_text("企业微信")
    await expect(resolved.locator("td").nth(3)).to_have_text("处理完毕通知")
    await expect(resolved.locator("td").nth(4)).to_have_text("✉ 已送达（未回复）")
    assert await axe_problems(page) == []

    await _open(page, console, notified.quiet_id)
    await expect(page.locator("section.notifications")).to_contain_text("尚未通知任何人")
    await expect(page.locator("table.notifications")).to_have_count(0)
    await context.close()


async def test_the_alarm_view_lists_the_notifications_in_english(
    console: Console, browser: Browser, notified: Notified
) -> None:
    name, password = await console.user("operator", notified.area)
    context, page = await sign_in(
        browser, console, name, password, locale="en-US", timezone="Europe/Berlin"
    )
    await _open(page, console, notified.alert_id)
    rows = page.get_by_role("table", name="Notifications").locator("tbody tr")
    await expect(rows.nth(0).locator("td")).to_have_text(
        [_time(START, "Europe/Berlin", "en"), "王丽", "SMS", "Step 1", "✔ Accepted"]
    )
    await expect(rows.nth(1).locator("td").nth(3)).to_have_text("Step 2 (round 2)")
    await expect(rows.nth(1).locator(".notified")).to_have_text("⚠ Failed")
    await expect(rows.nth(2).locator("td").nth(3)).to_have_text("Resolution notice")
    assert await axe_problems(page) == []

    await _open(page, console, notified.quiet_id)
    await expect(page.locator("section.notifications")).to_contain_text("Nobody notified yet.")
    assert await axe_problems(page) == []
    await context.close()
