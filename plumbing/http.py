"""The `/metrics` and `/healthz` endpoints every long-running process serves, and an
HTTP server for a process that serves more (the API): it passes every other path to the
application it is given, so the same health and metrics answer on that port too.

uvicorn runs inside the process's own event loop; its signal handling is switched off
because the process entry point owns SIGTERM (it must stop components in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import orjson
import uvicorn
from prometheus_client import make_asgi_app

from plumbing.component import Component

__all__ = ["HealthServer"]

log = logging.getLogger(__name__)

Health = Callable[[], dict[str, Any]]
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HealthServer(Component):
    """Serves Prometheus metrics and a JSON health document (503 while not ok), and every
    other path from `app` (an ASGI application) when one is given."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        health: Health,
        app: ASGIApp | None = None,
        name: str = "http",
    ) -> None:
        super().__init__(name=name)
        self._health = health
        self._other = app
        self._metrics = make_asgi_app()
        config = uvicorn.Config(
            self._app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            interface="asgi3",
        )
        self._server = _Server(config)

    @property
    def port(self) -> int:
        (server,) = self._server.servers
        return int(server.sockets[0].getsockname()[1])

    async def _open(self) -> None:
        # If the server dies, the process must not run on unobservable: it fails loudly.
        task = self.supervise("serve", self._server.serve, restart=False)
        while not self._server.started:
            if task.done():
                task.result()  # raises: e.g. the port is taken
                raise RuntimeError("metrics server stopped while starting")
            await asyncio.sleep(0.01)
        what = "/metrics, /healthz and the API" if self._other else "/metrics and /healthz"
        log.info(f"serving {what}", extra={"port": self.port})

    async def _close(self) -> None:
        self._server.should_exit = True
        await self.finish_tasks(10.0)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await self._metrics(scope, receive, send)
            return
        if self._other is not None and scope["path"] not in ("/healthz", "/health"):
            await self._other(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] not in ("/healthz", "/health"):
            await _respond(send, 404, {"error": f"no such path {scope['path']}"})
            return
        doc = self._health()
        await _respond(send, 200 if doc.get("ok") else 503, doc)


async def _respond(send: Any, status: int, doc: dict[str, Any]) -> None:
    body = orjson.dumps(doc, default=str)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
