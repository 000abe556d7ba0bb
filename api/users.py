"""Users, their roles and areas, and their bearer tokens in PostgreSQL.

This module owns the `users` and `api_tokens` tables; the CLI (`carewatch users`), `up`
(the first admin), the API and the tests call it. Roles, from least to most: `operator`
(handles alerts), `supervisor` (also reads the audit trail and assigns alerts), `admin`
(also users, devices, configuration). A role includes the rights of those below it.
"""

from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from api.areas import covers, normalize_area
from api.credentials import (
    TOKEN_PREFIX,
    hash_password,
    new_password,
    new_token,
    token_digest,
    verify_password,
)
from api.errors import BadUser, UserExists, UserNotFound

__all__ = [
    "LANGUAGES",
    "ROLES",
    "User",
    "add_user",
    "check_login",
    "get_user",
    "has_admin",
    "issue_token",
    "list_users",
    "revoke_token",
    "revoke_tokens",
    "set_disabled",
    "set_preferences",
    "user_for_token",
]

ROLES = ("operator", "supervisor", "admin")
LANGUAGES = ("zh-CN", "en")  # the console's (migration 0012 checks them)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_COLUMNS = "user_id, name, role, area, created_at, disabled, language, time_zone, large_text"


# A login for a name nobody has still costs a hash check, so that the answer's timing does
# not tell which names exist.
@functools.cache
def _nobody() -> str:
    return hash_password("no such user")


# The token's last use is kept to the minute: a request need not write a row each time.
_BY_TOKEN = f"""
WITH t AS (
    SELECT token_id, user_id, last_used_at FROM api_tokens
    WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
), touched AS (
    UPDATE api_tokens SET last_used_at = now()
    WHERE token_id IN (SELECT token_id FROM t
                       WHERE last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT {", ".join(f"u.{c}" for c in _COLUMNS.split(", "))}
FROM t JOIN users u USING (user_id) WHERE NOT u.disabled
"""


@dataclass(frozen=True)
class User:
    """A user as the API and the CLI see it (never with the password hash)."""

    user_id: int
    name: str
    role: str
    area: str
    created_at: datetime
    disabled: bool = False
    # The console as they want it (None: its default).
    language: str | None = None
    time_zone: str | None = None
    large_text: bool = False

    def has_role(self, role: str) -> bool:
        """Whether this user's role is `role` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def sees(self, area: str) -> bool:
        """Whether `area` is this user's area or below it."""
        return covers(self.area, area)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "area": self.area,
            "created_at": self.created_at,
            "disabled": self.disabled,
            "preferences": {
                "language": self.language,
                "time_zone": self.time_zone,
                "large_text": self.large_text,
            },
        }


async def add_user(
    conn: asyncpg.Connection,
    *,
    name: str,
    role: str,
    area: str = "",
    password: str | None = None,
) -> tuple[User, str]:
    """A new user; returns it and its password (`password`, or a new one to show once).
    BadUser for a name, role, area or password that will not do; UserExists."""
    if not _NAME.fullmatch(name):
        raise BadUser(
            f"user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', starting with a"
            " letter or digit"
        )
    if role not in ROLES:
        raise BadUser(f"role {role!r}: one of {', '.join(ROLES)}")
    try:
        area = normalize_area(area)
    except ValueError as exc:
        raise BadUser(f"area: {exc}") from None
    if password is not None and len(password) < 12:
        raise BadUser("a password has at least 12 characters")
    password = password or new_password()
    hashed = await asyncio.to_thread(hash_password, password)  # slow on purpose
    try:
        row = await conn.fetchrow(
            f"INSERT INTO users (name, role, area, password_hash) VALUES ($1, $2, $3, $4)"
            f" RETURNING {_COLUMNS}",
            name, role, area, hashed,
        )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise UserExists(f"a user named {name!r} exists already") from None
    return User(**dict(row)), password


async def get_user(conn: asyncpg.Connection, name: str) -> User:
    """The enabled user of that name; UserNotFound."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE name = $1 AND NOT disabled", name
    )
    if row is None:
        raise UserNotFound(f"no user named {name!r}")
    return User(**dict(row))


async def list_users(conn: asyncpg.Connection, *, within: str = "") -> list[User]:
    """Every user whose area is `within` or below it, by name."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM users ORDER BY name")
    return [user for user in (User(**dict(r)) for r in rows) if covers(within, user.area)]


async def has_admin(conn: asyncpg.Connection) -> bool:
    """Whether any enabled user has the admin role."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND NOT disabled)"
    )
    return found


async def check_login(conn: asyncpg.Connection, name: str, password: str) -> User | None:
    """The enabled user if `password` is theirs, else None (which of the two was wrong is
    not told, nor shown by the time it takes)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, password_hash FROM users WHERE name = $1 AND NOT disabled", name
    )
    hashed = row["password_hash"] if row is not None else _nobody()
    ok = await asyncio.to_thread(verify_password, password, hashed)
    if row is None or not ok:
        return None
    fields = dict(row)
    del fields["password_hash"]
    return User(**fields)


async def issue_token(conn: asyncpg.Connection, name: str, *, lasts_s: int | None = None) -> str:
    """A new bearer token for the enabled user `name` (earlier ones stay valid until
    revoked), valid for `lasts_s` seconds (None: until revoked); the token is returned once
    and only its hash is kept. UserNotFound."""
    token = new_token()
    user_id = await conn.fetchval(
        "INSERT INTO api_tokens (user_id, token_hash, expires_at)"
        " SELECT user_id, $2, now() + make_interval(secs => $3) FROM users"
        " WHERE name = $1 AND NOT disabled RETURNING user_id",
        name,
        token_digest(token),
        lasts_s,
    )
    if user_id is None:
        raise UserNotFound(f"no user named {name!r}")
    return token


async def revoke_token(conn: asyncpg.Connection, token: str) -> bool:
    """Revoke a token; False if it was unknown or revoked already."""
    done = await conn.fetchval(
        "UPDATE api_tokens SET revoked_at = now()"
        " WHERE token_hash = $1 AND revoked_at IS NULL RETURNING token_id",
        token_digest(token),
    )
    return done is not None


async def set_disabled(conn: asyncpg.Connection, name: str, disabled: bool) -> tuple[User, User]:
    """Disable (or enable again) a user: (before, after); UserNotFound. Disabling revokes
    every token the user has, so enabling them again does not bring old tokens back."""
    before = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE name = $1 FOR UPDATE", name)
    if before is None:
        raise UserNotFound(f"no user named {name!r}")
    after = await conn.fetchrow(
        f"UPDATE users SET disabled = $2 WHERE name = $1 RETURNING {_COLUMNS}", name, disabled
    )
    if disabled:
        await revoke_tokens(conn, name)
    return User(**dict(before)), User(**dict(after))


async def set_preferences(
    conn: asyncpg.Connection,
    name: str,
    *,
    language: str | None,
    time_zone: str | None,
    large_text: bool,
) -> tuple[User, User]:
    """Set how the user `name` wants the console: (before, after). BadUser for a language
    the console does not speak or a time zone zoneinfo does not know; UserNotFound."""
    if language is not None and language not in LANGUAGES:
        raise BadUser(f"language {language!r}: one of {', '.join(LANGUAGES)}")
    if time_zone is not None:
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise BadUser(f"time zone {time_zone!r}: an IANA zone such as Asia/Shanghai") from None
    before = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE name = $1 AND NOT disabled FOR UPDATE", name
    )
    if before is None:
        raise UserNotFound(f"no user named {name!r}")
    after = await conn.fetchrow(
        "UPDATE users SET language = $2, time_zone = $3, large_text = $4 WHERE name = $1"
        f" RETURNING {_COLUMNS}",
        name, language, time_zone, large_text,
    )  # fmt: skip
    return User(**dict(before)), User(**dict(after))


async def revoke_tokens(conn: asyncpg.Connection, name: str) -> int:
    """Revoke every token of the user `name`; how many were still valid."""
    revoked = await conn.fetch(
        "UPDATE api_tokens SET revoked_at = now() WHERE revoked_at IS NULL"
        " AND user_id = (SELECT user_id FROM users WHERE name = $1) RETURNING token_id",
        name,
    )
    return len(revoked)


async def user_for_token(conn: asyncpg.Connection, token: str) -> User | None:
    """The enabled user a valid (not revoked, not expired) token belongs to, else None.
    Anything not shaped like our tokens is refused without asking the database."""
    if not (token.startswith(TOKEN_PREFIX) and len(token) <= 100 and token.isascii()):
        return None
    row = await conn.fetchrow(_BY_TOKEN, token_digest(token))
    return User(**dict(row)) if row is not None else None
