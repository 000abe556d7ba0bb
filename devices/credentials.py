"""Device and service secrets for the MQTT broker, hashed the way mosquitto stores them.

The hash is mosquitto 2's own format (`$7$` = PBKDF2-SHA512, as in its password file and
its dynamic-security plugin's), so the value kept in PostgreSQL goes into the broker's
accounts file unchanged and the secret itself is never stored: it is shown once, when it
is generated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["hash_secret", "new_secret", "verify_secret"]

# mosquitto_passwd's defaults (mosquitto 2.0): 101 rounds, 12-byte salt. The secrets are
# 192 random bits, not passwords people choose, so the low round count costs nothing.
_ROUNDS = 101
_SALT_BYTES = 12


def new_secret() -> str:
    """A random secret a device can be configured with (URL- and config-file-safe)."""
    return secrets.token_urlsafe(24)


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, _ROUNDS)
    return f"$7${_ROUNDS}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, hashed: str) -> bool:
    try:
        _, kind, rounds, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        expected = hashlib.pbkdf2_hmac(
            "sha512", secret.encode(), base64.b64decode(salt), int(rounds)
        )
        return hmac.compare_digest(expected, base64.b64decode(digest))
    except ValueError:
        return False


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
