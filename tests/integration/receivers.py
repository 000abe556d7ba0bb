"""Real local receivers for the notifier's tests: an HTTP server that takes webhooks (and
gateway requests), checks signatures, and can be told to fail; and an SMTP server."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from aiosmtpd.controller import Controller

from carewatch.embedded import free_port
from notifier.channels.signing import verify

__all__ = ["HttpReceiver", "Received", "SmtpReceiver"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool | None  # None: no secret known for the path

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every request; answers `failures[path]` times 500 before 200. With
    `secrets[path]` set, it verifies the signature as a receiver must."""

    secrets: dict[str, str] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[Any]:
        """What reached `path` with a 2xx answer, parsed."""
        return [r.json() for r in self.requests if r.path == path and r.headers.get("ok")]

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                secret = owner.secrets.get(self.path)
                signed = None
                if secret is not None:
                    signed = verify(
                        secret, headers.get("x-carewatch-timestamp", ""),
                        headers.get("x-carewatch-signature", ""), body, now=time.time(),
                    )  # fmt: skip
                failing = owner.failures.get(self.path, 0) > 0 or signed is False
                if failing and signed is not False:
                    owner.failures[self.path] -= 1
                headers["ok"] = "" if failing else "yes"
                owner.requests.append(Received(self.path, headers, body, signed))
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SmtpReceiver:
    """aiosmtpd on a free port, keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
