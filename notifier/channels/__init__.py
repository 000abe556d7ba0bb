"""The send stage: one integration per channel type, each a `Channel`.

    webhook   webhook.py   signed JSON POST (DESIGN.md's contract), always
    email     email.py     SMTP, when CAREWATCH_SMTP_URL is set
    sms       gateway.py   an HTTP gateway from CAREWATCH_SMS_GATEWAY's template
    voice     gateway.py   the same, CAREWATCH_VOICE_GATEWAY; the answer comes by callback
    wecom     apps.py      group bots through apprise, always
    dingtalk
    feishu

An integration tries once: it returns what happened (`Sent`) or raises ChannelError, and
the delivery stage decides about retrying (STYLE.md, Notifications). A channel type that
is not configured is simply absent from `build_channels`' answer; what to do about a
contact who has only such channels is the caller's decision.
"""

from __future__ import annotations

from typing import Literal, Protocol

import httpx

from notifier.channels.apps import APPS, AppChannel
from notifier.channels.email import EmailChannel, parse_smtp_url
from notifier.channels.gateway import GatewayChannel, parse_template
from notifier.channels.webhook import WebhookChannel
from notifier.links import base_url
from notifier.message import Message, Sent
from plumbing.settings import ConfigError, Settings

__all__ = ["Channel", "build_channels", "callback_url"]

GATEWAY_CALLBACKS = "/api/v1/gateways/"


class Channel(Protocol):
    """One channel type's integration."""

    async def send(self, message: Message) -> Sent:
        """Hand `message` over once; ChannelError(reason, permanent=...) if that failed."""
        ...

    async def close(self) -> None:
        """Release what the integration holds (connections); safe to call twice."""
        ...


def build_channels(
    settings: Settings, *, http: httpx.AsyncClient | None = None
) -> dict[str, Channel]:
    """The integrations `settings` configure, by channel type. `http`: a client for the
    HTTP ones to share (the caller closes it); without one each opens and closes its own.
    ConfigError if a setting is unusable, so a bad template stops the notifier at start
    rather than at the first emergency."""
    channels: dict[str, Channel] = {"webhook": WebhookChannel(http=http)}
    if settings.smtp_url:
        if "@" not in settings.smtp_from:
            raise ConfigError("CAREWATCH_SMTP_FROM: not an e-mail address")
        server = parse_smtp_url(settings.smtp_url)
        channels["email"] = EmailChannel(server, sender=settings.smtp_from)
    gateways: dict[Literal["sms", "voice"], str] = {
        "sms": settings.sms_gateway,
        "voice": settings.voice_gateway,
    }
    for kind, text in gateways.items():
        if text:
            template = parse_template(text, setting=f"CAREWATCH_{kind.upper()}_GATEWAY")
            channels[kind] = GatewayChannel(
                kind, template, callback_url=callback_url(settings, kind), http=http
            )
    for app in APPS:
        channels[app] = AppChannel(app)
    return channels


def callback_url(settings: Settings, kind: str) -> str:
    """Where the `kind` gateway reports back (replies, call outcomes): the API, as the
    gateway reaches it."""
    return f"{base_url(settings)}{GATEWAY_CALLBACKS}{kind}"
