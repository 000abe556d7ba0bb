"""HMAC signatures of HTTP bodies: how a receiver knows a request came from whoever holds
the shared secret, and was not replayed long after.

One scheme both ways (DESIGN.md's webhook contract): carewatch signs the webhooks it sends,
and the API checks the SMS and voice gateways' callbacks with the same `verify`.

    X-Carewatch-Timestamp: <unix seconds>
    X-Carewatch-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>

The timestamp is inside what is signed, so an old request cannot be sent again with a
fresh timestamp; `verify` refuses timestamps outside a tolerance either way.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = ["PREFIX", "sign", "verify"]

PREFIX = "sha256="
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>`: the signature header's value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256)
    return PREFIX + digest.hexdigest()


def verify(
    secret: str,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    *,
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """Whether `body` was signed with `secret` at a time within `tolerance_s` of `now`.

    Anything malformed is simply False (headers come from strangers), and so is an empty
    secret: a key left unset must not make every request look signed.
    """
    if not secret or not _TIMESTAMP.fullmatch(timestamp_header.strip()):
        return False
    timestamp = int(timestamp_header.strip())
    if abs(now - timestamp) > tolerance_s:
        return False
    given = signature_header.strip()
    if not given.startswith(PREFIX) or not _HEX_DIGEST.fullmatch(given[len(PREFIX) :]):
        return False
    expected = sign(secret, timestamp, body)
    # Both ASCII by now; compare_digest takes the same time wherever they differ.
    return hmac.compare_digest(PREFIX + given[len(PREFIX) :].lower(), expected)
