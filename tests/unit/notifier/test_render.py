"""What a notification says: the webhook body's contract, and the words in both languages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from notifier.render import body_for, texts

ALERT: dict[str, Any] = {
    "alert_id": 7, "kind": "sos", "severity": "critical", "status": "open", "count": 1,
    "summary": "SOS pressed", "device_id": "w-1", "area": "sh/xuhui",
    "opened_at": datetime(2026, 12, 4, 12, 0, tzinfo=UTC), "lat": 31.2, "lon": 121.44,
    "resident_id": 3, "resident_name": "王芳", "resident_address": "天平路 12 弄",
    "resident_phone": "+86 21 6408 1234",
}  # fmt: skip


def _body(language: str, purpose: str = "alert", **alert: Any) -> dict[str, Any]:
    return body_for(
        notification_id="a7-c0-r0-s0-k1-p0", purpose=purpose, alert={**ALERT, **alert},
        contact={"contact_id": 1, "name": "王丽"}, ack_url="https://cw.example/ack/x?e=1&s=2",
        language=language, cycle=0, round=0, step=0,
    )  # fmt: skip


def test_the_webhook_body_carries_the_contract() -> None:
    body = _body("zh-CN")
    assert {"notification_id", "alert", "ack_url", "type"} <= body.keys()
    assert {"alert_id", "kind", "status"} <= body["alert"].keys()
    assert body["alert"]["resident"] == {
        "resident_id": 3, "name": "王芳", "address": "天平路 12 弄", "phone": "+86 21 6408 1234",
    }  # fmt: skip
    assert body["alert"]["opened_at"] == "2026-12-04T12:00:00+00:00"
    assert body["map_url"].startswith("https://uri.amap.com/marker?position=121.440000,31.200000")


def test_chinese_words_say_who_what_where_and_how_to_answer() -> None:
    subject, text, short = texts(_body("zh-CN"), reply_code="123456")
    assert subject == "【紧急】王芳 SOS 紧急呼叫"
    assert "时间：2026-12-04 20:00" in text  # the contact's zone: Shanghai
    assert "天平路 12 弄" in text and "uri.amap.com" in text
    assert "https://cw.example/ack/x?e=1&s=2" in text
    assert "回复 123456 确认前往" in short


def test_english_words_and_no_position() -> None:
    subject, text, short = texts(_body("en", lat=None, lon=None), time_zone="Europe/London")
    assert subject == "[URGENT] 王芳: SOS call"
    assert "Map: position unknown" in text and "When: 2026-12-04 12:00" in text
    assert "https://cw.example/ack/x?e=1&s=2" in short


def test_a_resolution_says_it_is_over() -> None:
    body = _body("en", purpose="resolved", status="resolved", resolved_by="op-1",
                 resolution="false alarm")  # fmt: skip
    subject, text, _ = texts(body)
    assert subject.startswith("[Resolved]") and "false alarm" in text
    assert "Nothing more to do" in text
