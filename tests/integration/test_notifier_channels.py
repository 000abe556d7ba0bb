"""The notifier's channels against real servers on loopback: an HTTP receiver that checks
signatures the way a contact's webhook or a gateway would, and an aiosmtpd SMTP server.

What a person receives must arrive intact (Chinese, quotes, line breaks), signed, and
recognisable on a resend; what fails must say whether another try can help.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from carewatch.embedded import free_port
from notifier.channels import build_channels, callback_url
from notifier.channels.apps import notify
from notifier.channels.webhook import WebhookChannel
from notifier.message import ChannelError, Message
from plumbing.settings import ConfigError, Settings

pytestmark = pytest.mark.integration

SECRET = "whsec-家人-1"
SUBJECT = "【跌倒】王芳（88 岁）可能跌倒了"
TEXT = "王芳在卫生间跌倒，位置：徐汇区天平路 12 号。\n确认请打开：https://care.example/a/xyz"
SHORT = '王芳跌倒。回复"1"确认\n{to} 100% \\ 完'  # quotes, a break, braces, a backslash
ACK_URL = "https://care.example/api/v1/ack/abc"
BODY = {
    "notification_id": "n-7f3a",
    "alert": {"alert_id": 42, "kind": "fall", "resident": "王芳", "note": 'say "hi"'},
    "ack_url": ACK_URL,
}


def _message(**changes: Any) -> Message:
    message = Message(
        notification_id="n-7f3a",
        channel="webhook",
        address="",
        secret=SECRET,
        language="zh-CN",
        subject=SUBJECT,
        text=TEXT,
        short=SHORT,
        body=BODY,
        reply_code="1",
    )
    return replace(message, **changes)


# --- an HTTP receiver -----------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # by lower-case name; the last of several
    user_agents: list[str]
    body: bytes
    verified: bool  # the webhook signature checked out with SECRET


@dataclass
class Receiver:
    """Answers 200, or the status a path ends in (/status/503); /slow answers when the
    test ends. Records every request."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    receiver: Receiver

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        from notifier.channels.signing import verify

        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path, _, query = self.path.partition("?")
        timestamp = self.headers.get("X-Carewatch-Timestamp", "")
        signature = self.headers.get("X-Carewatch-Signature", "")
        self.receiver.requests.append(
            Request(
                method=self.command,
                path=path,
                query=parse_qs(query),
                headers={k.lower(): v for k, v in self.headers.items()},
                user_agents=self.headers.get_all("User-Agent", []),
                body=body,
                verified=verify(SECRET, timestamp, signature, body, now=time.time()),
            )
        )
        if path == "/slow":
            self.receiver.release.wait(30)
        status = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
        answer = f"answer to {path}: ".encode() + "错".encode() * 300
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads `requests`, not stderr


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    handler = type("Handler", (_Handler,), {"receiver": found})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll: shutdown() waits for the serving loop to notice.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused, and nobody else takes it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- webhooks -------------------------------------------------------------------------


async def test_a_webhook_arrives_signed_and_intact(receiver: Receiver) -> None:
    channel = WebhookChannel()
    try:
        sent = await channel.send(_message(address=f"{receiver.url}/hook?tenant=7"))
    finally:
        await channel.close()
    assert sent == "delivered"
    [request] = receiver.requests
    assert (request.method, request.path, request.query) == ("POST", "/hook", {"tenant": ["7"]})
    assert request.verified
    assert orjson.loads(request.body) == BODY
    assert "王芳".encode() in request.body  # UTF-8 as is, not \u escapes
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "carewatch-notifier"
    assert request.headers["x-carewatch-notification-id"] == "n-7f3a"
    assert abs(int(request.headers["x-carewatch-timestamp"]) - time.time()) < 60


async def test_a_webhook_signed_with_another_secret_does_not_verify(receiver: Receiver) -> None:
    channel = WebhookChannel()
    try:
        await channel.send(_message(address=f"{receiver.url}/hook", secret="not-the-one"))
    finally:
        await channel.close()
    assert not receiver.requests[0].verified


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(500, False), (503, False), (429, False), (408, False), (404, True), (401, True)],
)
async def test_a_refusal_says_whether_to_try_again(
    receiver: Receiver, status: int, permanent: bool
) -> None:
    channel = WebhookChannel()
    try:
        with pytest.raises(ChannelError) as error:
            await channel.send(_message(address=f"{receiver.url}/status/{status}"))
    finally:
        await channel.close()
    assert error.value.permanent is permanent
    reason = error.value.reason
    assert f"answered {status}: answer to /status/{status}: 错错" in reason
    assert len(reason) < 260  # the start of the answer, not all of it
    assert receiver.url not in reason  # an address may hold a token


async def test_an_unreachable_webhook_is_retried(refusing_port: int) -> None:
    channel = WebhookChannel()
    try:
        with pytest.raises(ChannelError) as error:
            await channel.send(_message(address=f"http://127.0.0.1:{refusing_port}/hook"))
    finally:
        await channel.close()
    assert not error.value.permanent
    assert "ConnectError" in error.value.reason


async def test_a_webhook_that_does_not_answer_is_retried(receiver: Receiver) -> None:
    channel = WebhookChannel(timeout=0.5)
    try:
        with pytest.raises(ChannelError) as error:
            await channel.send(_message(address=f"{receiver.url}/slow"))
    finally:
        await channel.close()
    assert not error.value.permanent
    assert "no answer within 0.5 s" in error.value.reason


@pytest.mark.parametrize(
    "changes",
    [{"secret": None}, {"secret": ""}, {"address": "ftp://example.org/hook"}],
)
async def test_a_webhook_that_cannot_be_sent_is_not_retried(changes: dict[str, Any]) -> None:
    channel = WebhookChannel()
    try:
        with pytest.raises(ChannelError) as error:
            await channel.send(_message(**{"address": "http://127.0.0.1:9/hook", **changes}))
    finally:
        await channel.close()
    assert error.value.permanent


# --- e-mail ---------------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    received: list[Envelope] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_RCPT(  # aiosmtpd's hook names
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("full@"):
            return "452 4.2.2 mailbox full, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        # handled=False: aiosmtpd itself answers a refusal (535).
        return AuthResult(success=data.password == b"pa ss@1", handled=False)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    # AUTH without TLS is for this loopback test only; it lets the test see the login.
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def _read(envelope: Envelope) -> EmailMessage:
    assert isinstance(envelope.content, bytes)
    parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_an_email_arrives_in_chinese_and_names_its_notification(mailbox: Mailbox) -> None:
    settings = Settings(
        smtp_url=f"smtp://care:pa%20ss%401@127.0.0.1:{mailbox.port}",
        smtp_from="关爱中心 <care@carewatch.example>",
    )
    channel = build_channels(settings)["email"]
    message = _message(channel="email", address="wang.wei@example.org")
    try:
        assert await channel.send(message) == "delivered"
        assert await channel.send(message) == "delivered"  # a resend
    finally:
        await channel.close()
    assert mailbox.logins == [(b"care", b"pa ss@1")] * 2
    first, again = mailbox.received
    assert first.mail_from == "care@carewatch.example"
    assert first.rcpt_tos == ["wang.wei@example.org"]
    assert isinstance(first.content, bytes)
    first.content.decode("ascii")  # every header and the body encoded for 7-bit transport
    mail = _read(first)
    assert mail["Subject"] == SUBJECT
    assert mail["From"].addresses[0].display_name == "关爱中心"
    assert mail["X-Carewatch-Notification-Id"] == "n-7f3a"
    assert "n-7f3a" in mail["Message-ID"]
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().rstrip("\n") == TEXT
    assert _read(again)["Message-ID"] == mail["Message-ID"]  # the same message, recognisably


@pytest.mark.parametrize(("mailbox_name", "permanent"), [("nobody", True), ("full", False)])
async def test_a_refused_recipient_says_whether_to_try_again(
    mailbox: Mailbox, mailbox_name: str, permanent: bool
) -> None:
    channel = build_channels(Settings(smtp_url=f"smtp://127.0.0.1:{mailbox.port}"))["email"]
    with pytest.raises(ChannelError) as error:
        await channel.send(_message(address=f"{mailbox_name}@example.org"))
    assert error.value.permanent is permanent
    assert ("550" if permanent else "452") in error.value.reason
    assert not mailbox.received


async def test_a_refused_login_is_not_retried(mailbox: Mailbox) -> None:
    url = f"smtp://care:wrong@127.0.0.1:{mailbox.port}"
    channel = build_channels(Settings(smtp_url=url))["email"]
    with pytest.raises(ChannelError) as error:
        await channel.send(_message(address="wang.wei@example.org"))
    assert error.value.permanent and "535" in error.value.reason
    assert "wrong" not in error.value.reason


async def test_an_unreachable_mail_server_is_retried(refusing_port: int) -> None:
    channel = build_channels(Settings(smtp_url=f"smtp://127.0.0.1:{refusing_port}"))["email"]
    with pytest.raises(ChannelError) as error:
        await channel.send(_message(address="wang.wei@example.org"))
    assert not error.value.permanent


async def test_an_address_that_is_no_email_address_is_not_sent() -> None:
    channel = build_channels(Settings(smtp_url="smtp://127.0.0.1:9"))["email"]
    for address in ("+86 139 0000 0000", "a@b.example\r\nBcc: everyone@example.org"):
        with pytest.raises(ChannelError) as error:
            await channel.send(_message(address=address))
        assert error.value.permanent


# --- SMS and voice gateways -----------------------------------------------------------


def _sms_template(base: str) -> dict[str, Any]:
    return {
        "url": f"{base}/sms/send/{{to}}?ref={{notification_id}}",
        "headers": {"Authorization": "Bearer T0KEN", "X-Lang": "{language}"},
        "json": {
            "to": "{to}",
            "text": "{text}",
            "ref": "{notification_id}",
            "extra": {
                "hint": "回复 {reply_code} 确认",
                "callback": "{callback_url}",
                "list": ["{to}", 3, True, None],
                "braces": "{{literal}}",
            },
        },
    }


def _voice_template(base: str) -> dict[str, Any]:
    return {
        "url": f"{base}/voice/call",
        "method": "post",
        "headers": {"user-agent": "vendor-sdk/2"},
        "params": {"lang": "{language}"},
        "form": {"callee": "{to}", "tts": "{text}", "notify": "{callback_url}"},
    }


def _settings(**templates: dict[str, Any]) -> Settings:
    gateways = {f"{kind}_gateway": orjson.dumps(t).decode() for kind, t in templates.items()}
    return Settings.model_validate({"public_url": "https://care.example/", **gateways})


async def test_an_sms_gateway_gets_the_message_in_its_json(receiver: Receiver) -> None:
    channel = build_channels(_settings(sms=_sms_template(receiver.url)))["sms"]
    try:
        sent = await channel.send(_message(channel="sms", address="+86 139-0000 (0000)"))
    finally:
        await channel.close()
    assert sent == "delivered"
    [request] = receiver.requests
    assert (request.method, request.path, request.query) == (
        "POST",
        "/sms/send/%2B8613900000000",  # values in the URL are percent-encoded
        {"ref": ["n-7f3a"]},
    )
    assert request.headers["authorization"] == "Bearer T0KEN"
    assert request.headers["x-lang"] == "zh-CN"
    assert request.user_agents == ["carewatch-notifier"]
    assert orjson.loads(request.body) == {
        "to": "+8613900000000",
        "text": SHORT,
        "ref": "n-7f3a",
        "extra": {
            "hint": "回复 1 确认",
            "callback": "https://care.example/api/v1/gateways/sms",
            "list": ["+8613900000000", 3, True, None],
            "braces": "{literal}",
        },
    }


async def test_a_voice_gateway_gets_a_form_and_the_call_is_only_calling(
    receiver: Receiver,
) -> None:
    channel = build_channels(_settings(voice=_voice_template(receiver.url)))["voice"]
    try:
        sent = await channel.send(_message(channel="voice", address="13900000000"))
    finally:
        await channel.close()
    assert sent == "calling"
    [request] = receiver.requests
    assert (request.path, request.query) == ("/voice/call", {"lang": ["zh-CN"]})
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.user_agents == ["vendor-sdk/2"]  # the template's, not ours as well
    assert parse_qs(request.body.decode()) == {
        "callee": ["13900000000"],
        "tts": [SHORT],
        "notify": ["https://care.example/api/v1/gateways/voice"],
    }


@pytest.mark.parametrize(("status", "permanent"), [(502, False), (400, True)])
async def test_a_gateway_refusal_says_whether_to_try_again(
    receiver: Receiver, status: int, permanent: bool
) -> None:
    template = {"url": f"{receiver.url}/status/{status}", "json": {"to": "{to}"}}
    channel = build_channels(_settings(sms=template))["sms"]
    try:
        with pytest.raises(ChannelError) as error:
            await channel.send(_message(address="13900000000"))
    finally:
        await channel.close()
    assert error.value.permanent is permanent
    assert f"sms gateway answered {status}" in error.value.reason


def test_gateways_call_back_to_the_api_as_configured() -> None:
    assert callback_url(Settings(public_url="", api_host="10.0.0.5", api_port=8443), "sms") == (
        "http://10.0.0.5:8443/api/v1/gateways/sms"
    )
    assert callback_url(Settings(public_url="", api_host="::1", api_port=80), "voice") == (
        "http://[::1]:80/api/v1/gateways/voice"
    )
    assert callback_url(Settings(public_url="https://x.example/care/"), "voice") == (
        "https://x.example/care/api/v1/gateways/voice"
    )


# --- the bot apps, through apprise ----------------------------------------------------


async def test_the_bots_send_path_delivers_through_apprise(receiver: Receiver) -> None:
    # apprise's generic JSON target stands in for the bots' servers: the same `notify`
    # the WeCom, DingTalk and Feishu channels call, with another apprise URL.
    port = receiver.url.rsplit(":", 1)[1]
    await notify(f"json://127.0.0.1:{port}/bot/hook", app="wecom", title=SUBJECT, body=TEXT)
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/bot/hook")
    sent = orjson.loads(request.body)
    assert (sent["title"], sent["message"]) == (SUBJECT, TEXT)


async def test_apprise_writes_no_token_and_no_payload_to_the_log(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    with caplog.at_level(logging.DEBUG):
        await notify(f"json://user:t0ken@127.0.0.1:{port}/h", app="feishu", title="t", body=TEXT)
    assert receiver.requests[0].headers["authorization"].startswith("Basic ")  # it was used
    assert "t0ken" not in caplog.text and "王芳" not in caplog.text


async def test_a_bot_that_refuses_is_retried(receiver: Receiver) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    with pytest.raises(ChannelError) as error:
        await notify(f"json://127.0.0.1:{port}/status/500", app="dingtalk", title="t", body="b")
    assert not error.value.permanent
    assert error.value.reason.startswith("dingtalk: ")


async def test_a_bot_address_apprise_refuses_is_not_retried() -> None:
    with pytest.raises(ChannelError) as error:
        await notify("nosuchapp://x", app="feishu", title="t", body="b")
    assert error.value.permanent


# --- configuration --------------------------------------------------------------------


def test_only_configured_channels_are_built(mailbox: Mailbox) -> None:
    assert set(build_channels(Settings())) == {"webhook", "wecom", "dingtalk", "feishu"}
    every = _settings(sms=_sms_template("http://x"), voice=_voice_template("http://x"))
    every = every.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{mailbox.port}"})
    assert set(build_channels(every)) == {
        "webhook",
        "email",
        "sms",
        "voice",
        "wecom",
        "dingtalk",
        "feishu",
    }


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"smtp_url": "ftp://mail.example"}, "CAREWATCH_SMTP_URL: must start with smtp://"),
        ({"smtp_url": "smtp://mail.example:99999"}, "CAREWATCH_SMTP_URL: the port"),
        ({"smtp_url": "smtp://u:secretpw@:25"}, "CAREWATCH_SMTP_URL: no host"),
        ({"smtp_url": "smtps://mail.example?starttls=1"}, "CAREWATCH_SMTP_URL: smtps:// is TLS"),
        ({"smtp_url": "smtp://mail.example?tls=1"}, "CAREWATCH_SMTP_URL: unknown option"),
        ({"smtp_url": "smtp://mail.example?starttls=maybe"}, "starttls must be 1 or 0"),
        ({"smtp_url": "smtp://mail.example", "smtp_from": "care"}, "CAREWATCH_SMTP_FROM"),
        ({"sms_gateway": "{url: x}"}, "CAREWATCH_SMS_GATEWAY: not JSON"),
        ({"sms_gateway": "[]"}, "CAREWATCH_SMS_GATEWAY: a JSON object"),
        ({"voice_gateway": '{"json": {}}'}, 'CAREWATCH_VOICE_GATEWAY: "url" must be'),
        ({"sms_gateway": '{"url": "x://y"}'}, '"url" must be an http(s) URL'),
        ({"sms_gateway": '{"url": "http://y", "method": "FETCH"}'}, '"method" must be'),
        ({"sms_gateway": '{"url": "http://y", "header": {}}'}, "unknown key(s) ['header']"),
        ({"sms_gateway": '{"url": "http://y", "json": {}, "form": {}}'}, '"json" or "form"'),
        ({"sms_gateway": '{"url": "http://y", "form": {"n": 1}}'}, '"form" must be an object'),
        (
            {"sms_gateway": '{"url": "http://y", "json": {"a": [{"b": "{phone}"}]}}'},
            "CAREWATCH_SMS_GATEWAY: json.a[0].b: unknown placeholder {phone}",
        ),
        ({"sms_gateway": '{"url": "http://y/{to.x}"}'}, "url: unknown placeholder {to.x}"),
        ({"sms_gateway": '{"url": "http://y/{to!r}"}'}, "url: unknown placeholder {to}"),
        ({"voice_gateway": '{"url": "http://y", "params": {"a": "{}"}}'}, "unknown placeholder {}"),
        ({"voice_gateway": '{"url": "http://y", "params": {"a": "{to"}}'}, "literal braces"),
    ],
)
def test_bad_configuration_says_which_setting_and_what_is_wrong(
    settings: dict[str, str], said: str
) -> None:
    with pytest.raises(ConfigError) as error:
        build_channels(Settings.model_validate(settings))
    assert said in str(error.value)
    assert "secretpw" not in str(error.value)
