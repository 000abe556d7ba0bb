"""The API application: routes under /api/v1, the OpenAPI document, and one JSON shape for
every error (`{"detail": ...}`), whatever raised it. The interactive docs are served with
Swagger UI's own files from the `swagger-ui-py` package: a monitoring centre's network may
not reach the internet, so the page loads nothing from a CDN.

Errors of the stores become what they mean (no alert: 404, a change the alert's status does
not allow: 409, a bad user: 422, ...); PostgreSQL out of reach is 503; anything else is
logged and answered 500 without details. Bodies over `max_body_bytes` are refused with 413
before they are read whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import Histogram

from alerts.ack_stats import parse_shift_starts
from alerts.errors import AlertNotFound, AlertStateError, WorkOrderNotFound
from api.cursors import CursorError
from api.errors import BadUser, UserExists, UserNotFound
from api.feed import AlertFeed
from api.models import Error
from api.routes import (
    API_PREFIX,
    alerts,
    answers,
    audit,
    contacts,
    devices,
    residents,
    schedules,
    stats,
    stream,
    users,
    work_orders,
    zones,
)
from api.throttle import LoginThrottle
from notifier.links import Links

__all__ = ["API_PREFIX", "create_app"]

log = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024

REQUESTS = Histogram(
    "carewatch_api_request_seconds",
    "API requests by route and status, and how long they took",
    ["method", "route", "status"],
)

# Store errors and what they mean over HTTP; the message is the store's.
_STATUS: list[tuple[type[Exception], int]] = [
    (AlertNotFound, 404),
    (WorkOrderNotFound, 404),
    (UserNotFound, 404),
    (AlertStateError, 409),
    (UserExists, 409),
    (BadUser, 422),
    (CursorError, 422),
]
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def create_app(
    *,
    pool: asyncpg.Pool,
    feed: AlertFeed | None = None,
    max_body_bytes: int = _MAX_BODY,
    centre_tz: str = "Asia/Shanghai",
    shift_starts: str = "08:00,16:00,00:00",
    links: Links | None = None,
    gateway_secret: str = "",
) -> FastAPI:
    """The application, reading and writing through `pool`; `/stream` sends what `feed`
    reads (both started and stopped by the caller; without a feed `/stream` is 503).
    `centre_tz` and `shift_starts` are the centre's clock and shifts (Settings'), for the
    acknowledgement statistics; ValueError when they are not. `links` checks the
    notifier's ack links (None: they answer 404); `gateway_secret` the SMS and voice
    gateways' callbacks ('' : 503)."""
    app = FastAPI(
        title="carewatch monitoring-centre API",
        version="1",
        description="Alerts, users and the audit trail of a carewatch monitoring centre. "
        "Authenticate with `Authorization: Bearer <token>`; see docs/api.md.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served below, from local files
        redoc_url=None,
        # What any route may answer, whatever it does.
        responses={
            400: {"model": Error, "description": "the body is not JSON (e.g. not UTF-8)"},
            413: {"model": Error, "description": "the body is too large"},
            503: {"model": Error, "description": "the database is unavailable; try again"},
        },
    )
    app.state.pool = pool
    app.state.login_throttle = LoginThrottle()
    app.state.feed = feed
    app.state.centre_tz = ZoneInfo(centre_tz)
    app.state.shift_starts = parse_shift_starts(shift_starts)
    app.state.links = links
    app.state.gateway_secret = gateway_secret
    _serve_docs(app)
    for module in (
        users, alerts, work_orders, residents, contacts, devices, zones, stream, audit, stats,
        schedules,
    ):  # fmt: skip
        app.include_router(module.router)
    app.include_router(answers.links)
    app.include_router(answers.gateways)
    for error, status in _STATUS:
        app.add_exception_handler(error, _answer(status))
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(asyncpg.DataError, _answer(422))
    for error in _UNAVAILABLE:
        app.add_exception_handler(error, _unavailable)
    app.add_exception_handler(Exception, _internal)
    app.add_middleware(_Measured)
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)
    return app


def _serve_docs(app: FastAPI) -> None:
    static = f"{API_PREFIX}/docs/static"
    files = resources.files("swagger_ui") / "static"
    app.mount(static, StaticFiles(directory=str(files)), name="swagger-ui")

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{API_PREFIX}/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon-32x32.png",
        )


def _answer(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handle


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    """422 with each field's location, message and type. What was sent is not echoed:
    it may be huge, or bytes that are not even UTF-8 (FastAPI's own handler fails there)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e["loc"]), "msg": str(e["msg"]), "type": str(e["type"])} for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", extra={"error": repr(exc)})
    return JSONResponse({"detail": "the database is unavailable; try again"}, status_code=503)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("request failed", exc_info=exc, extra={"path": request.url.path})
    return JSONResponse({"detail": "internal error (logged)"}, status_code=500)


class _BodyLimit:
    """413 for a body over the limit: by its Content-Length up front, or while it is read
    when it comes in chunks."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self._max:
            await JSONResponse(self._refusal(), status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self._max:  # read inside a route: its handler answers 413
                raise HTTPException(413, self._refusal()["detail"])
            return message

        await self._app(scope, limited, send)

    def _refusal(self) -> dict[str, str]:
        return {"detail": f"the body is larger than {self._max} bytes"}


class _Measured:
    """Counts and times every request by its route's path template (not the raw path, so
    alert ids do not make a time series each)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - began
            )
