"""Signing in and out of the console, and the language of the login page.

Signing in issues an ordinary API token (the same store, the same revocation) that
expires after one long shift, and hands it to the browser as an HttpOnly, SameSite=Strict
cookie that lasts as long; signing out revokes it. Failed attempts are answered the same
whatever was wrong, and count against the API's own sign-in limit (api/throttle.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api import audit, users
from api.credentials import SESSION_COOKIE
from api.deps import Conn
from api.errors import BadUser
from api.throttle import LoginThrottle, TooManyAttempts
from console import i18n
from console.web import LANGUAGE_COOKIE, Page, language_of, render

__all__ = ["SESSION_S", "router"]

router = APIRouter(include_in_schema=False)

SESSION_S = 14 * 3600  # a twelve-hour shift and its handover


@router.get("/login")
async def login_page(request: Request, next: str = "/", lang: str | None = None) -> Response:
    language = lang if lang in i18n.LANGUAGES else language_of(request)
    page = render(request, "login.html", language=language, next=_local(next), error=None)
    if lang in i18n.LANGUAGES:
        page.set_cookie(LANGUAGE_COOKIE, lang, max_age=365 * 86400, samesite="strict")
    return page


@router.post("/login")
async def login(
    request: Request,
    conn: Conn,
    name: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=500)] = "/",
    tz: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else ""
    try:
        throttle.check(name, address)
    except TooManyAttempts as exc:
        minutes = max(1, round(exc.wait_s / 60))
        return render(
            request, "login.html", status_code=429, next=_local(next), error="throttled",
            name=name, minutes=minutes, headers={"Retry-After": f"{exc.wait_s:.0f}"},
        )  # fmt: skip
    async with conn.transaction():
        user = await users.check_login(conn, name, password)
        if user is None:
            throttle.failed(name, address)
        else:
            token = await users.issue_token(conn, user.name, lasts_s=SESSION_S)
            await audit.record(
                conn, actor=user.name, action="token.issue", target=f"user:{user.name}",
                before=None, after={"via": "console"},
            )  # fmt: skip
            await _keep_zone(conn, user, tz)
    if user is None:
        return render(
            request, "login.html", status_code=401, next=_local(next), error="wrong", name=name
        )
    answer = RedirectResponse(_local(next), status_code=303)
    answer.set_cookie(
        SESSION_COOKIE, token, max_age=SESSION_S, httponly=True, samesite="strict",
        secure=request.url.scheme == "https", path="/",
    )  # fmt: skip
    return answer


@router.post("/logout")
async def logout(request: Request, conn: Conn, viewer: Page) -> Response:
    # A form post from the console's own page: SameSite=Strict keeps other sites' forms
    # from carrying the cookie here, and the worst a forged one could do is sign out.
    await users.revoke_token(conn, viewer.token)
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


async def _keep_zone(conn: Conn, user: users.User, zone: str) -> None:
    """A user who has chosen no time zone gets their browser's, if it is a real one."""
    if user.time_zone is not None or not zone:
        return
    try:
        before, after = await users.set_preferences(
            conn, user.name, language=user.language, time_zone=zone, large_text=user.large_text
        )
    except BadUser:
        return  # a browser's odd zone name: the centre's zone it is
    await audit.record(
        conn, actor=user.name, action="user.preferences", target=f"user:{user.name}",
        before=before.public()["preferences"], after=after.public()["preferences"],
    )  # fmt: skip


def _local(target: str) -> str:
    """Where to go after signing in: a path on this site only, never another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
