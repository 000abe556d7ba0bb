"""Users' passwords and bearer tokens: making them, and keeping only what cannot give them away.

Passwords are chosen by people (or printed once for them), so they are stored as argon2id
hashes (argon2-cffi's defaults, RFC 9106's second recommended setting): slow on purpose.
Tokens are 32 random bytes, far beyond guessing, so a plain SHA-256 keeps them safe and
lets a request find its token with one index lookup.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "TOKEN_PREFIX",
    "csrf_for",
    "hash_password",
    "new_password",
    "new_token",
    "token_digest",
    "verify_password",
]

# Marks a carewatch token in logs and in secret scanners, and is cheap to reject early.
TOKEN_PREFIX = "cw_"

# The console's session: the same kind of token as a bearer token, kept by the browser in
# an HttpOnly, SameSite=Strict cookie. A change sent with the cookie must also carry the
# session's CSRF token in a header: another site can make a browser send the cookie, but
# cannot read the console's page to learn the token, nor set a header cross-site without
# a CORS preflight that this server never grants.
SESSION_COOKIE = "carewatch_session"
CSRF_HEADER = "X-CSRF-Token"

_hasher = PasswordHasher()


def new_password() -> str:
    """A password to print once: 96 random bits, easy to copy (URL-safe characters)."""
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    """argon2id in its PHC string form ($argon2id$v=19$m=...); ~50 ms on purpose."""
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A bearer token: the prefix and 32 random bytes, base64url."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """What is stored of a token (and looked up by): its SHA-256."""
    return hashlib.sha256(token.encode()).digest()


def csrf_for(token: str) -> str:
    """The CSRF token of a session: derived from the session's token (so nothing more is
    stored), and not the token itself (so a page that shows it gives the session away to
    nobody)."""
    return hashlib.sha256(b"carewatch-csrf:" + token.encode()).hexdigest()[:32]
