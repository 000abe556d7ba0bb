"""What every route depends on: a database connection, and the user behind the bearer
token with the role the route needs. As dependencies, no route can forget them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import users
from api.areas import normalize_area
from api.credentials import CSRF_HEADER, SESSION_COOKIE, csrf_for
from api.users import User

__all__ = [
    "Admin",
    "Conn",
    "Credentials",
    "CurrentUser",
    "StreamingUser",
    "Supervisor",
    "area_filter",
    "area_param",
    "forbid_outside",
]

_bearer = HTTPBearer(
    auto_error=False,
    description="a token from `POST /api/v1/login` or `carewatch users add|token`",
)


async def _connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, Depends(_connection)]


_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
    conn: Conn,
) -> User:
    return await _authenticate(_token(credentials, request), conn)


async def _user_briefly(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
) -> User:
    """The user, with a connection held only while the token is looked up: for responses
    that last (a live stream), which must not each keep one of the pool's connections."""
    token = _token(credentials, request)
    async with request.app.state.pool.acquire() as conn:
        return await _authenticate(token, conn)


def _token(credentials: HTTPAuthorizationCredentials | None, request: Request) -> str:
    """The bearer token, or else the console's session cookie; a change made with the
    cookie must carry its CSRF header (api/credentials.py says why)."""
    if credentials is not None:
        return credentials.credentials
    token = request.cookies.get(SESSION_COOKIE)
    if token is None:
        raise HTTPException(
            401,
            "not signed in: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method in _UNSAFE and request.headers.get(CSRF_HEADER) != csrf_for(token):
        raise HTTPException(403, f"a change made with the session cookie needs {CSRF_HEADER}")
    return token


async def _authenticate(token: str, conn: asyncpg.Connection) -> User:
    user = await users.user_for_token(conn, token)
    if user is None:
        raise HTTPException(
            401,
            "the bearer token is not valid (unknown, revoked, or its user is disabled)",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return user


CurrentUser = Annotated[User, Depends(_current_user)]
# The credentials as sent (after CurrentUser has checked them: e.g. to revoke this token).
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
StreamingUser = Annotated[User, Depends(_user_briefly)]


def _role(minimum: str) -> Callable[[User], Awaitable[User]]:
    async def check(user: CurrentUser) -> User:
        if not user.has_role(minimum):
            raise HTTPException(403, f"this needs the {minimum} role or above; you are {user.role}")
        return user

    return check


Supervisor = Annotated[User, Depends(_role("supervisor"))]
Admin = Annotated[User, Depends(_role("admin"))]


def forbid_outside(user: User, area: str, what: str) -> None:
    """403 unless `area` is the user's area or below it."""
    if not user.sees(area):
        mine = user.area or "(top)"
        raise HTTPException(403, f"{what} is in area {area or '(top)'}, outside yours ({mine})")


def area_param(text: str) -> str:
    """An area as a request gives it, in its stored form; 422 when it is not one."""
    try:
        return normalize_area(text)
    except ValueError as exc:
        raise HTTPException(422, f"area: {exc}") from None


def area_filter(user: User, area: str | None) -> str | None:
    """A list's `area=` filter in its stored form (None: no filter); 403 outside the
    user's area."""
    if area is None:
        return None
    wanted = area_param(area)
    forbid_outside(user, wanted, f"area {wanted!r}")
    return wanted
