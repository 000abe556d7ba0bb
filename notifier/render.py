"""What a notification says, in the contact's language (zh-CN or en).

Rendered once, when the notification is decided, and stored with it: every retry sends the
same words and the same JSON, so a receiver deduplicating by `notification_id` loses
nothing. The webhook body is the contract of DESIGN.md (`notification_id`, `alert`,
`ack_url`); the texts say the same for people: who, what, where (a map link), and how to
answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["LANGUAGES", "body_for", "map_url", "texts"]

LANGUAGES = ("zh-CN", "en")

_KINDS = {
    "sos": ("SOS 紧急呼叫", "SOS call"),
    "fall": ("跌倒", "Fall"),
    "geofence_exit": ("离开安全区域", "Left the safe zone"),
    "heart_rate_high": ("心率过高", "Heart rate high"),
    "heart_rate_low": ("心率过低", "Heart rate low"),
    "spo2_low": ("血氧过低", "Blood oxygen low"),
    "body_temp_high": ("发热", "Fever"),
    "inactivity": ("长时间无活动", "No activity"),
    "device_offline": ("设备离线", "Device offline"),
    "battery_low": ("电量低", "Battery low"),
    "not_worn": ("设备未佩戴", "Device not worn"),
}
_SEVERITY = {
    "critical": ("紧急", "URGENT"),
    "warning": ("提醒", "Warning"),
    "info": ("通知", "Note"),
}


def _zh(language: str) -> bool:
    return language.lower().startswith("zh")


def _pick(pair: tuple[str, str], language: str) -> str:
    return pair[0] if _zh(language) else pair[1]


def map_url(lat: float | None, lon: float | None, language: str) -> str:
    """A map anyone can open on a phone: AMap for Chinese (it converts WGS-84 itself),
    OpenStreetMap otherwise; '' without a position."""
    if lat is None or lon is None:
        return ""
    if _zh(language):
        return (
            f"https://uri.amap.com/marker?position={lon:.6f},{lat:.6f}"
            "&coordinate=wgs84&callnative=1"
        )
    return (
        f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=17/{lat:.6f}/{lon:.6f}"
    )


def body_for(
    *,
    notification_id: str,
    purpose: str,
    alert: dict[str, Any],
    contact: dict[str, Any],
    ack_url: str,
    language: str,
    cycle: int,
    round: int,
    step: int,
) -> dict[str, Any]:
    """The webhook's JSON: everything a receiver needs without calling back."""
    position = None
    if alert.get("lat") is not None and alert.get("lon") is not None:
        position = {"lat": alert["lat"], "lon": alert["lon"]}
    resident = None
    if alert.get("resident_id") is not None:
        resident = {
            "resident_id": alert["resident_id"],
            "name": alert.get("resident_name"),
            "address": alert.get("resident_address"),
            "phone": alert.get("resident_phone"),
        }
    return {
        "notification_id": notification_id,
        "type": purpose,
        "alert": {
            "alert_id": alert["alert_id"],
            "kind": alert["kind"],
            "severity": alert["severity"],
            "status": alert["status"],
            "summary": alert["summary"],
            "count": alert["count"],
            "device_id": alert["device_id"],
            "area": alert.get("area", ""),
            "opened_at": _iso(alert["opened_at"]),
            "acknowledged_by": alert.get("acknowledged_by"),
            "resolved_by": alert.get("resolved_by"),
            "resolution": alert.get("resolution"),
            "position": position,
            "resident": resident,
        },
        "contact": {"contact_id": contact.get("contact_id"), "name": contact["name"]},
        "escalation": {"cycle": cycle, "round": round, "step": step},
        "ack_url": ack_url,
        "map_url": map_url(alert.get("lat"), alert.get("lon"), language),
        "language": language,
    }


def texts(
    body: dict[str, Any], *, reply_code: str = "", time_zone: str = "Asia/Shanghai"
) -> tuple[str, str, str]:
    """(subject, text, short) for people: an e-mail's subject and body, a chat message,
    and what fits one SMS or a voice call."""
    language, alert, purpose = body["language"], body["alert"], body["type"]
    zh = _zh(language)
    kind = _pick(_KINDS.get(alert["kind"], (alert["kind"], alert["kind"])), language)
    who = (alert["resident"] or {}).get("name") or alert["device_id"]
    when = _local(alert["opened_at"], time_zone)
    if purpose == "resolved":
        by = alert.get("resolved_by") or ""
        subject = f"【已处理】{who} {kind}" if zh else f"[Resolved] {who}: {kind}"
        lines = [
            f"{who} 的{kind}警报已处理完毕（{by}）：{alert.get('resolution') or ''}"
            if zh
            else f"The {kind.lower()} alert for {who} is resolved ({by}): "
            f"{alert.get('resolution') or ''}",
            "无需再采取行动，谢谢。" if zh else "Nothing more to do. Thank you.",
        ]
        short = lines[0]
        return subject, "\n".join(lines), short
    level = _pick(_SEVERITY.get(alert["severity"], ("", "")), language)
    if purpose == "supervisor":
        subject = (
            f"【值班长】{who} {kind} 超时未接警" if zh
            else f"[Supervisor] {who}: {kind} not taken by any operator"
        )  # fmt: skip
    else:
        subject = f"【{level}】{who} {kind}" if zh else f"[{level}] {who}: {kind}"
    resident = alert["resident"] or {}
    where = body["map_url"] or ("位置未知" if zh else "position unknown")
    lines = [
        subject,
        (f"时间：{when}" if zh else f"When: {when}"),
        (f"情况：{alert['summary']}" if zh else f"What: {alert['summary']}"),
    ]
    if resident.get("address"):
        lines.append(f"地址：{resident['address']}" if zh else f"Address: {resident['address']}")
    if resident.get("phone"):
        lines.append(f"电话：{resident['phone']}" if zh else f"Phone: {resident['phone']}")
    lines.append(f"位置：{where}" if zh else f"Map: {where}")
    lines.append(
        f"能前往请点击确认：{body['ack_url']}" if zh
        else f"If you can go, confirm here: {body['ack_url']}"
    )  # fmt: skip
    answer = ""
    if reply_code:
        answer = (
            f"回复 {reply_code} 确认前往，回复 {reply_code} 0 表示无法前往。" if zh
            else f"Reply {reply_code} if you can go, {reply_code} 0 if you cannot."
        )  # fmt: skip
        lines.append(answer)
    short = " ".join(
        part for part in (subject, alert["summary"], answer or body["ack_url"]) if part
    )
    return subject, "\n".join(lines), short


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _local(value: str, time_zone: str) -> str:
    try:
        return (
            datetime.fromisoformat(value).astimezone(ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M")
        )
    except (ValueError, KeyError):
        return value
