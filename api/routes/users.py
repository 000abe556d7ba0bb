"""`/api/v1/login`, `/api/v1/me` and `/api/v1/users`: signing in, and managing users.

An admin creates users in their own area or below it; the new user's password and a first
token are in that one answer, never again (the hash and the token's digest are kept).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request

from api import audit, users
from api.console_models import PreferencesBody
from api.deps import (
    Admin,
    Conn,
    Credentials,
    CurrentUser,
    Supervisor,
    area_param,
    forbid_outside,
)
from api.models import Error, LoginBody, TokenOut, UserCreate, UserCreated, UserPage, UserPublic
from api.routes import API_PREFIX
from api.throttle import LoginThrottle, TooManyAttempts
from api.users import User

__all__ = ["router"]

UserName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]

router = APIRouter(
    prefix=API_PREFIX,
    tags=["users"],
    responses={code: {"model": Error} for code in (401, 403, 422)},
)


@router.post(
    "/login",
    response_model=TokenOut,
    summary="trade a name and password for a token",
    responses={429: {"model": Error, "description": "too many failed sign-ins; Retry-After"}},
)
async def login(request: Request, conn: Conn, body: LoginBody) -> dict[str, Any]:
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else ""
    try:
        throttle.check(body.name, address)
    except TooManyAttempts as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": f"{exc.wait_s:.0f}"}) from None
    async with conn.transaction():
        user = await users.check_login(conn, body.name, body.password)
        if user is None:
            throttle.failed(body.name, address)
            raise HTTPException(
                401, "wrong user name or password", headers={"WWW-Authenticate": "Bearer"}
            )
        token = await users.issue_token(conn, user.name)
        await audit.record(
            conn, actor=user.name, action="token.issue", target=f"user:{user.name}",
            before=None, after={"via": "login"},
        )  # fmt: skip
    return {"token": token, "user": user.public()}


@router.get("/me", response_model=UserPublic, summary="who the token belongs to")
async def me(user: CurrentUser) -> dict[str, Any]:
    return user.public()


@router.put("/me/preferences", response_model=UserPublic, summary="how you want the console")
async def set_preferences(conn: Conn, user: CurrentUser, body: PreferencesBody) -> dict[str, Any]:
    async with conn.transaction():
        before, after = await users.set_preferences(
            conn, user.name, language=body.language, time_zone=body.time_zone,
            large_text=body.large_text,
        )  # fmt: skip
        if before != after:
            await audit.record(
                conn, actor=user.name, action="user.preferences", target=f"user:{user.name}",
                before=before.public()["preferences"], after=after.public()["preferences"],
            )  # fmt: skip
    return after.public()


@router.get("/users", response_model=UserPage, summary="the users in your area")
async def list_users(conn: Conn, user: Supervisor) -> dict[str, Any]:
    found = await users.list_users(conn, within=user.area)
    return {"items": [u.public() for u in found], "next": None}


@router.post(
    "/users",
    response_model=UserCreated,
    status_code=201,
    summary="create a user (admins)",
    responses={409: {"model": Error}, 422: {"model": Error}},
)
async def create_user(conn: Conn, admin: Admin, body: UserCreate) -> dict[str, Any]:
    area = area_param(body.area if body.area is not None else admin.area)
    forbid_outside(admin, area, f"area {area!r}")
    async with conn.transaction():
        user, password = await users.add_user(
            conn, name=body.name, role=body.role, area=area, password=body.password
        )
        token = await users.issue_token(conn, user.name)
        await audit.record(
            conn, actor=admin.name, action="user.create", target=f"user:{user.name}",
            before=None, after=user.public(),
        )  # fmt: skip
    return {**user.public(), "password": password, "token": token}


@router.post("/logout", status_code=204, summary="revoke the token this request carries")
async def logout(conn: Conn, _user: CurrentUser, credentials: Credentials) -> None:
    assert credentials is not None  # CurrentUser refused a request without
    await users.revoke_token(conn, credentials.credentials)


@router.post(
    "/users/{name}/disable",
    response_model=UserPublic,
    summary="disable a user (admins): no sign-in, every token revoked",
    responses={404: {"model": Error}, 409: {"model": Error}},
)
async def disable_user(conn: Conn, admin: Admin, name: UserName) -> dict[str, Any]:
    return await _set_disabled(conn, admin, name, True)


@router.post(
    "/users/{name}/enable",
    response_model=UserPublic,
    summary="enable a disabled user again (admins); they need a new token",
    responses={404: {"model": Error}},
)
async def enable_user(conn: Conn, admin: Admin, name: UserName) -> dict[str, Any]:
    return await _set_disabled(conn, admin, name, False)


async def _set_disabled(conn: Conn, admin: User, name: str, disabled: bool) -> dict[str, Any]:
    if name == admin.name and disabled:
        raise HTTPException(409, "you cannot disable yourself")
    async with conn.transaction():
        before, after = await users.set_disabled(conn, name, disabled)
        forbid_outside(admin, before.area, f"user {name}")  # rolled back when outside
        if before != after:
            await audit.record(
                conn, actor=admin.name, action="user.disable" if disabled else "user.enable",
                target=f"user:{name}", before=before.public(), after=after.public(),
            )  # fmt: skip
    return after.public()
