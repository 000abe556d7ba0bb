"""E-mail through an SMTP server, with the standard library's smtplib in a thread.

smtplib is blocking but complete (STARTTLS, AUTH, SMTPUTF8) and adds no dependency; one
notification at a time in a worker thread costs nothing next to the server's round trips.

The Message-ID is derived from the notification id, so a resend (delivery is at least once)
is the same message to the recipient's mail system and to anyone reading the headers.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from notifier.message import ChannelError, Message, Sent
from plumbing.settings import ConfigError

__all__ = ["EmailChannel", "SmtpServer", "compose", "parse_smtp_url"]

TIMEOUT_S = 20.0  # per socket operation: connect, each command
_YES, _NO = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})
_NOT_IN_MSGID = re.compile(r"[^A-Za-z0-9._+=-]")


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to hand e-mail over; `tls`: implicit TLS (smtps, usually port 465)."""

    host: str
    port: int
    tls: bool = False
    starttls: bool = False
    user: str | None = None
    password: str | None = None


def parse_smtp_url(url: str, *, setting: str = "CAREWATCH_SMTP_URL") -> SmtpServer:
    """`smtp://[user:pass@]host[:port][?starttls=1]` or `smtps://...`; ConfigError if not.
    Messages never repeat the URL: it may hold a password."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError(f"{setting}: must start with smtp:// or smtps://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{setting}: the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ConfigError(f"{setting}: no host (smtp://[user:pass@]host:port)")
    query = parse_qs(parts.query, keep_blank_values=True)
    if unknown := sorted(set(query) - {"starttls"}):
        raise ConfigError(f"{setting}: unknown option(s) {unknown}; known: ['starttls']")
    starttls_value = query.get("starttls", ["0"])[-1].lower()
    if starttls_value not in _YES | _NO:
        raise ConfigError(f"{setting}: starttls must be 1 or 0")
    tls, starttls = parts.scheme == "smtps", starttls_value in _YES
    if tls and starttls:
        raise ConfigError(f"{setting}: smtps:// is TLS already; starttls is for smtp://")
    return SmtpServer(
        host=parts.hostname,
        port=port or (465 if tls else 25),
        tls=tls,
        starttls=starttls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def compose(message: Message, *, sender: str, now: float) -> EmailMessage:
    """The e-mail for `message`: plain text in UTF-8, headers that name the notification."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "carewatch.invalid"
    email = EmailMessage()
    try:
        email["From"] = sender
        email["To"] = message.address
        email["Subject"] = " ".join(message.subject.split())  # one line, whatever came
        email["Date"] = formatdate(now, usegmt=True)
        email["Message-ID"] = f"<{_NOT_IN_MSGID.sub('-', message.notification_id)}@{domain}>"
        email["X-Carewatch-Notification-Id"] = message.notification_id
        email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    except ValueError as exc:  # a line break or a malformed address in a header
        raise ChannelError(f"e-mail: cannot write the headers: {exc}", permanent=True) from exc
    # base64, not 8bit: 7-bit-clean for any server, and compact for Chinese text.
    email.set_content(message.text, cte="base64")
    return email


class EmailChannel:
    """Sends each message as one e-mail through `server`."""

    def __init__(
        self,
        server: SmtpServer,
        *,
        sender: str,
        timeout: float = TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._server = server
        self._sender = sender
        self._timeout = timeout
        self._clock = clock

    async def send(self, message: Message) -> Sent:
        if "@" not in parseaddr(message.address)[1]:
            raise ChannelError("e-mail: the address is not an e-mail address", permanent=True)
        email = compose(message, sender=self._sender, now=self._clock())
        await asyncio.to_thread(self._deliver, email)
        return "delivered"

    async def close(self) -> None:
        """Nothing to close: each message has its own SMTP connection."""

    def _deliver(self, email: EmailMessage) -> None:
        try:
            with self._connect() as smtp:
                if self._server.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._server.user is not None:
                    smtp.login(self._server.user, self._server.password or "")
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            code, answer = next(iter(exc.recipients.values()))
            raise _refused("the recipient", code, answer) from exc
        except smtplib.SMTPResponseException as exc:  # sender, data, login, greeting
            raise _refused("the message", exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS, AUTH or SMTPUTF8 there
            raise ChannelError(f"e-mail: the server cannot: {exc}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, dropped, timed out
            raise ChannelError(f"e-mail: {type(exc).__name__}: {exc}") from exc

    def _connect(self) -> smtplib.SMTP:
        server, timeout = self._server, self._timeout
        if server.tls:
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
        return smtplib.SMTP(server.host, server.port, timeout=timeout)


def _refused(what: str, code: int, answer: bytes | str) -> ChannelError:
    """An SMTP refusal: 5xx is final, 4xx says to try again later."""
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else answer
    return ChannelError(
        f"e-mail: the server refused {what}: {code} {' '.join(text.split())[:200]}",
        permanent=code >= 500,
    )
