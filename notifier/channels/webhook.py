"""Webhooks: the alert as a signed JSON document POSTed to the contact's URL.

The receiver checks `X-Carewatch-Signature` with the secret it was given (DESIGN.md's
contract; `signing.verify` is the reference) and deduplicates on
`X-Carewatch-Notification-Id`, since delivery is at least once.

`post` and its answer classification are shared with the SMS and voice gateways: 408,
429, 5xx, timeouts and broken connections are worth another try; any other refusal is not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from notifier.channels.signing import sign
from notifier.message import ChannelError, Message, Sent

__all__ = ["TIMEOUT_S", "USER_AGENT", "WebhookChannel", "post"]

TIMEOUT_S = 10.0
USER_AGENT = "carewatch-notifier"
_RETRYABLE = frozenset({408, 425, 429})
_SNIPPET_BYTES = 1024  # read no more of an answer than a reason can show
_SNIPPET_CHARS = 200


async def post(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    timeout: float = TIMEOUT_S,
    **request: Any,
) -> None:
    """Send one request; return on a 2xx answer, else raise ChannelError saying why.

    `timeout` bounds the whole exchange, not each read. Reasons never carry the URL: it
    may hold a token, and reasons are stored and shown.
    """
    try:
        async with asyncio.timeout(timeout):
            async with http.stream(method, url, timeout=timeout, **request) as response:
                if response.is_success:
                    return
                snippet = await _snippet(response)
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
        # The request itself is unsendable (not http(s), a header with a line break):
        # it would be the same next time.
        raise ChannelError(f"{what}: cannot send this request: {exc}", permanent=True) from exc
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise ChannelError(f"{what}: no answer within {timeout:g} s") from exc
    except httpx.TransportError as exc:
        raise ChannelError(f"{what}: {type(exc).__name__}: {exc}") from exc
    status = response.status_code
    raise ChannelError(
        f"{what} answered {status}: {snippet}",
        permanent=not (status in _RETRYABLE or status >= 500),
    )


async def _snippet(response: httpx.Response) -> str:
    """The start of an answer, on one line: enough to tell a person what went wrong."""
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= _SNIPPET_BYTES:
            break
    try:
        text = head[:_SNIPPET_BYTES].decode(response.charset_encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        text = head[:_SNIPPET_BYTES].decode("utf-8", "replace")
    return " ".join(text.split())[:_SNIPPET_CHARS]


class WebhookChannel:
    """POSTs `message.body`, signed with the contact's secret, to `message.address`."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(follow_redirects=False)
        self._timeout = timeout
        self._clock = clock

    async def send(self, message: Message) -> Sent:
        if not message.secret:
            raise ChannelError("webhook: the contact has no secret to sign with", permanent=True)
        if not message.address.startswith(("https://", "http://")):
            raise ChannelError("webhook: the address is not an http(s) URL", permanent=True)
        try:
            body = orjson.dumps(message.body)
        except orjson.JSONEncodeError as exc:
            raise ChannelError(f"webhook: the body is not JSON: {exc}", permanent=True) from exc
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Carewatch-Timestamp": str(timestamp),
            "X-Carewatch-Signature": sign(message.secret, timestamp, body),
            "X-Carewatch-Notification-Id": message.notification_id,
        }
        await post(
            self._http,
            "POST",
            message.address,
            what="webhook",
            timeout=self._timeout,
            content=body,
            headers=headers,
        )
        return "delivered"

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()
