"""WeCom (企业微信), DingTalk (钉钉) and Feishu (飞书) group bots, through apprise.

apprise already speaks each bot's API (DingTalk's signed robots included), so carewatch
only turns the contact's address into an apprise URL. A contact may give the address the
app shows when the bot is made, or the apprise URL:

    wecom     https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K    wecombot://K
    dingtalk  https://oapi.dingtalk.com/robot/send?access_token=T      dingtalk://T
              a signed robot: its secret (SEC...) as the channel's secret, or dingtalk://S@T
    feishu    https://open.feishu.cn/open-apis/bot/v2/hook/T           feishu://T
              Lark, the international edition: https://open.larksuite.com/... or lark://T

The URL is rebuilt from the token alone, so no apprise option rides in with an address.
apprise keeps nothing on disk here, loads no plugin from anywhere, and masks secrets in its
log lines; its DEBUG lines (bot URLs with their tokens, whole payloads about residents) are
never written, whatever carewatch's own log level.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlsplit

from apprise import Apprise, AppriseAsset, NotifyFormat

from notifier.message import ChannelError, Message, Sent

__all__ = ["APPS", "AppChannel", "apprise_url", "notify"]

TIMEOUT_S = 15.0  # apprise's own limits are 4 s to connect and 4 s to read
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,200}")
_ALNUM = re.compile(r"[A-Za-z0-9]{1,200}")  # DingTalk's tokens and secrets (apprise's rule)
_FEISHU_HOOK = "/open-apis/bot/v2/hook/"


def _wecom(parts: SplitResult, secret: str | None) -> str | None:
    # A WeCom group robot has no signing secret: a secret given is not needed.
    if parts.scheme == "wecombot" and parts.path in ("", "/"):
        return f"wecombot://{_match(_TOKEN, unquote(parts.netloc))}"
    if _host(parts) == "qyapi.weixin.qq.com" and parts.path.rstrip("/") == "/cgi-bin/webhook/send":
        return f"wecombot://{_match(_TOKEN, _query(parts, 'key'))}"
    return None


def _dingtalk(parts: SplitResult, secret: str | None) -> str | None:
    if parts.scheme == "dingtalk" and parts.path in ("", "/"):
        in_url, _, token = unquote(parts.netloc).rpartition("@")
        secret = secret or in_url
    elif _host(parts) == "oapi.dingtalk.com" and parts.path.rstrip("/") == "/robot/send":
        token = _query(parts, "access_token")
    else:
        return None
    token = _match(_ALNUM, token)
    if not secret:
        return f"dingtalk://{token}/"
    if not _ALNUM.fullmatch(secret):
        raise ChannelError("dingtalk: the robot's secret is not letters and digits", permanent=True)
    return f"dingtalk://{quote(secret, safe='')}@{token}/"


def _feishu(parts: SplitResult, secret: str | None) -> str | None:
    if parts.scheme in ("feishu", "lark") and parts.path in ("", "/"):
        schema, token = parts.scheme, unquote(parts.netloc)
    elif _host(parts) in ("open.feishu.cn", "open.larksuite.com") and parts.path.startswith(
        _FEISHU_HOOK
    ):
        schema = "feishu" if _host(parts) == "open.feishu.cn" else "lark"
        token = parts.path[len(_FEISHU_HOOK) :].rstrip("/")
    else:
        return None
    if secret:
        # apprise cannot sign Feishu requests; a bot that checks signatures refuses them.
        raise ChannelError(
            "feishu: signed bots are not supported; turn off the bot's signature check"
            " (keep its keyword or IP allowlist) and remove the channel's secret",
            permanent=True,
        )
    return f"{schema}://{_match(_TOKEN, token)}"


_APPS: dict[str, tuple[str, Callable[[SplitResult, str | None], str | None]]] = {
    "wecom": ("a WeCom group robot's webhook URL or wecombot://KEY", _wecom),
    "dingtalk": ("a DingTalk robot's webhook URL or dingtalk://TOKEN", _dingtalk),
    "feishu": ("a Feishu bot's webhook URL or feishu://TOKEN", _feishu),
}
APPS = tuple(_APPS)


class _NotThisApp(ValueError):
    pass


def apprise_url(channel_type: str, address: str, secret: str | None) -> str:
    """The apprise URL of a bot address of `channel_type` (wecom, dingtalk or feishu);
    ChannelError, permanent, if the address is not one of that app's. Reasons never
    repeat the address: it holds the bot's token."""
    if channel_type not in _APPS:
        raise ChannelError(f"{channel_type}: not a bot channel", permanent=True)
    wanted, parse = _APPS[channel_type]
    try:
        url = parse(urlsplit(address.strip()), secret)
    except _NotThisApp:
        url = None
    if url is None:
        raise ChannelError(f"{channel_type}: the address is not {wanted}", permanent=True)
    return url


def _host(parts: SplitResult) -> str:
    return (parts.hostname or "").lower() if parts.scheme in ("https", "http") else ""


def _query(parts: SplitResult, key: str) -> str:
    values = parse_qs(parts.query).get(key, [])
    if len(values) != 1:
        raise _NotThisApp
    return values[0]


def _match(pattern: re.Pattern[str], value: str) -> str:
    if not pattern.fullmatch(value):
        raise _NotThisApp
    return value


async def notify(url: str, *, app: str, title: str, body: str, timeout: float = TIMEOUT_S) -> None:
    """Send one plain-text notification to one apprise URL; ChannelError if it was not
    accepted. apprise says only yes or no (the why is in its log), so a no is retryable."""
    _quiet_apprise()
    apprise = Apprise(asset=AppriseAsset(storage_mode="memory", secure_logging=True))
    if not apprise.add(url):
        raise ChannelError(f"{app}: apprise does not accept the address", permanent=True)
    try:
        async with asyncio.timeout(timeout):
            result = await apprise.async_notify(
                body=body, title=title, body_format=NotifyFormat.TEXT
            )
    except TimeoutError as exc:
        raise ChannelError(f"{app}: no answer within {timeout:g} s") from exc
    if not result:
        status = getattr(result, "status", None)  # apprise 2: FAILURE, TIMEOUT ...
        detail = f" ({status.name.lower()})" if status is not None else ""
        raise ChannelError(f"{app}: the bot did not take the message{detail}")


def _quiet_apprise() -> None:
    apprise_log = logging.getLogger("apprise")
    if apprise_log.getEffectiveLevel() < logging.INFO:
        apprise_log.setLevel(logging.INFO)


class AppChannel:
    """One of the bot apps: the contact's address becomes an apprise URL, sent by `notify`."""

    def __init__(self, channel_type: str, *, timeout: float = TIMEOUT_S) -> None:
        if channel_type not in _APPS:
            raise ValueError(f"not a bot app: {channel_type!r}")
        self._type = channel_type
        self._timeout = timeout

    async def send(self, message: Message) -> Sent:
        url = apprise_url(self._type, message.address, message.secret)
        await notify(
            url, app=self._type, title=message.subject, body=message.text, timeout=self._timeout
        )
        return "delivered"

    async def close(self) -> None:
        """Nothing to close: apprise opens a connection per message."""
