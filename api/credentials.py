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
    "TOKEN_PREFIX",
    "hash_password",
    "new_password",
    "new_token",
    "token_digest",
    "verify_password",
]

# Marks a carewatch token in logs and in secret scanners, and is cheap to reject early.
TOKEN_PREFIX = "cw_"

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
