"""SMS and voice through any HTTP gateway, described by a request template.

Chinese SMS and voice-call providers (Aliyun, Tencent Cloud, and the many resellers) each
have their own API; rather than one client per vendor, the operator writes down the one
request their gateway wants (docs/notifications.md):

    {"url": "https://sms.example/send", "method": "POST",
     "headers": {"Authorization": "Bearer X"},
     "json": {"to": "{to}", "text": "{text}", "ref": "{notification_id}"}}

`json` (any JSON), `form` (form-encoded) or neither for the body; `params` for the query.
Every string value may hold placeholders: {to} {text} {notification_id} {language}
{reply_code} {callback_url}; `{{` and `}}` are literal braces. The template is parsed once
and filled by walking the parsed values, never by formatting the JSON text, so a quote or
a line break in a message cannot change the request's shape. Values placed in `url` are
percent-encoded.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from notifier.channels.webhook import TIMEOUT_S, USER_AGENT, post
from notifier.message import Message, Sent
from plumbing.settings import ConfigError

__all__ = ["PLACEHOLDERS", "GatewayChannel", "Template", "parse_template"]

PLACEHOLDERS = frozenset(
    {"to", "text", "notification_id", "language", "reply_code", "callback_url"}
)
_KEYS = frozenset({"url", "method", "headers", "json", "form", "params"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH"})
_PHONE_SEPARATORS = re.compile(r"[\s().-]")


@dataclass(frozen=True)
class Template:
    """One gateway request with its placeholders still in it."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] | None = None
    params: Mapping[str, str] | None = None
    form: Mapping[str, str] | None = None
    json: Any = None
    has_json: bool = False  # `"json": null` is a body too

    def fill(self, values: Mapping[str, str]) -> dict[str, Any]:
        """httpx's request arguments, with `values` in place of the placeholders."""
        in_url = {name: quote(value, safe="") for name, value in values.items()}
        headers: dict[str, str] = _fill(self.headers or {}, values)
        if not any(name.lower() == "user-agent" for name in headers):
            headers["User-Agent"] = USER_AGENT
        request: dict[str, Any] = {
            "method": self.method,
            "url": self.url.format_map(in_url),
            "headers": headers,
        }
        if self.params is not None:
            request["params"] = _fill(self.params, values)
        if self.form is not None:
            request["data"] = _fill(self.form, values)
        if self.has_json:
            request["json"] = _fill(self.json, values)
        return request


def parse_template(text: str, *, setting: str) -> Template:
    """The template in a setting's JSON text; ConfigError naming `setting` if unusable."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{setting}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{setting}: a JSON object with url, method, headers, json ...")
    if unknown := sorted(set(raw) - _KEYS):
        raise ConfigError(f"{setting}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ConfigError(f'{setting}: "url" must be an http(s) URL')
    method = raw.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise ConfigError(f'{setting}: "method" must be one of {sorted(_METHODS)}')
    if "json" in raw and "form" in raw:
        raise ConfigError(f'{setting}: "json" or "form", not both')
    tables = {key: _strings(raw, key, setting) for key in ("headers", "params", "form")}
    for where, value in _strings_in(raw):
        _check_placeholders(value, f"{setting}: {where}")
    return Template(
        url=url,
        method=method.upper(),
        headers=tables["headers"],
        params=tables["params"],
        form=tables["form"],
        json=raw.get("json"),
        has_json="json" in raw,
    )


def _strings(raw: dict[str, Any], key: str, setting: str) -> dict[str, str] | None:
    """`raw[key]` as a table of strings (headers, query and form fields), or None."""
    table = raw.get(key)
    if table is None:
        return None
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError(f'{setting}: "{key}" must be an object whose values are strings')
    return table


def _strings_in(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in a parsed JSON document, with where it is (for messages)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings_in(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings_in(item, f"{where}[{index}]")


def _check_placeholders(value: str, where: str) -> None:
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value)]
    except ValueError as exc:  # a lone { or }
        raise ConfigError(f"{where}: {exc} (write {{{{ and }}}} for literal braces)") from None
    for name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise ConfigError(
                f"{where}: unknown placeholder {{{name}}}; known: "
                + " ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
            )


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(values)
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value


class GatewayChannel:
    """An SMS or voice channel: fills the template from the message and sends it.

    SMS is "delivered" once the gateway takes it; a call is only "calling": whether
    someone answered arrives later at `callback_url`.
    """

    def __init__(
        self,
        kind: Literal["sms", "voice"],
        template: Template,
        *,
        callback_url: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = TIMEOUT_S,
    ) -> None:
        self._kind = kind
        self._template = template
        self._callback_url = callback_url
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(follow_redirects=False)
        self._timeout = timeout

    async def send(self, message: Message) -> Sent:
        request = self._template.fill(
            {
                # Gateways want a number, not how people write one ("+86 139 0000 0000").
                "to": _PHONE_SEPARATORS.sub("", message.address),
                "text": message.short,  # for a call, what the voice reads out
                "notification_id": message.notification_id,
                "language": message.language,
                "reply_code": message.reply_code,
                "callback_url": self._callback_url,
            }
        )
        method, url = request.pop("method"), request.pop("url")
        what = f"{self._kind} gateway"
        await post(self._http, method, url, what=what, timeout=self._timeout, **request)
        return "delivered" if self._kind == "sms" else "calling"

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()
