"""What every console page needs: who is looking (the session cookie's user, their
language, time zone and text size), and rendering a template for them.

A page asked for without a valid session goes to the login page; a fragment asked for by
htmx gets 401 with `HX-Redirect`, so the browser leaves the stale page instead of
swapping an error into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import users
from api.credentials import CSRF_HEADER, SESSION_COOKIE, csrf_for
from api.deps import Conn
from api.users import User
from console import i18n

__all__ = [
    "LANGUAGE_COOKIE",
    "LoginRequired",
    "Page",
    "Viewer",
    "login_required",
    "render",
]

# The language chosen before signing in (on the login page); after, the user's own.
LANGUAGE_COOKIE = "carewatch_lang"


class LoginRequired(Exception):
    """No valid session: answered by `login_required`."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as the console shows things to them."""

    user: User
    token: str
    language: str
    tz: ZoneInfo
    large_text: bool

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)

    @property
    def preferences(self) -> dict[str, Any]:
        """As stored (PUT /api/v1/me/preferences replaces all of them at once)."""
        return self.user.public()["preferences"]


def language_of(request: Request, preferred: str | None = None) -> str:
    """The user's stored choice, else the one made on the login page, else the browser's."""
    for choice in (preferred, request.cookies.get(LANGUAGE_COOKIE)):
        if choice in i18n.LANGUAGES:
            return choice
    return i18n.negotiate(request.headers.get("accept-language"))


async def _viewer(request: Request, conn: Conn) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE, "")
    user = await users.user_for_token(conn, token)
    if user is None:
        raise LoginRequired()
    return Viewer(
        user=user,
        token=token,
        language=language_of(request, user.language),
        tz=i18n.zone(user.time_zone, request.app.state.console.centre_tz),
        large_text=user.large_text,
    )


Page = Annotated[Viewer, Depends(_viewer)]


async def login_required(request: Request, _exc: Exception) -> Response:
    if request.headers.get("HX-Request"):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


@cache
def _environment(language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("console", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    messages = i18n.catalogue(language)
    env.install_gettext_callables(  # type: ignore[attr-defined]
        messages.gettext, messages.ngettext, newstyle=True
    )
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": True}
    return env


def render(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None = None,
    language: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """`template` rendered in the viewer's language (or `language` before signing in),
    with times in their zone."""
    lang = viewer.language if viewer is not None else (language or language_of(request))
    tz = viewer.tz if viewer is not None else i18n.zone(None, request.app.state.console.centre_tz)

    def when(value: Any, style: str = "medium") -> str:
        return i18n.format_time(value, tz, lang, style)

    html = (
        _environment(lang)
        .get_template(template)
        .render(
            request=request,
            viewer=viewer,
            lang=lang,
            when=when,
            csrf_header=CSRF_HEADER,
            **context,
        )
    )
    return HTMLResponse(
        html, status_code=status_code, headers={"Cache-Control": "no-store", **(headers or {})}
    )
