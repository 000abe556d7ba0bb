"""Signed, expiring acknowledgement links: a contact answers without an account.

A link names one notification and when it stops working; an HMAC-SHA256 over both, with a
key the notifier and the API share, proves the notifier made it. Nothing is stored per
link: the notification row says who it was for.

    <public_url>/ack/<notification_id>?e=<expiry, unix s>&s=<signature>
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import quote

from plumbing.settings import Settings

__all__ = ["ACK_PATH", "LinkError", "Links", "base_url", "link_key"]

ACK_PATH = "/ack"
_KEY_FILE = "link.key"


class LinkError(Exception):
    """A link that is forged, altered or past its time; the message says which."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


class Links:
    def __init__(self, *, key: bytes, base_url: str, ttl_s: float) -> None:
        self._key = key
        self._base = base_url.rstrip("/")
        self._ttl_s = ttl_s

    def url(self, notification_id: str, now: float) -> str:
        expires = int(now + self._ttl_s)
        return (
            f"{self._base}{ACK_PATH}/{quote(notification_id, safe='')}"
            f"?e={expires}&s={self._sign(notification_id, expires)}"
        )

    def check(self, notification_id: str, expires: str, signature: str, now: float) -> None:
        """Raise `LinkError` unless the link is the notifier's and still works."""
        if not expires.isdigit() or len(expires) > 12:
            raise LinkError("this link is incomplete")
        wanted = self._sign(notification_id, int(expires))
        if not hmac.compare_digest(wanted, signature.encode("ascii", "replace").decode()):
            raise LinkError("this link is not valid")
        if int(expires) < now:
            raise LinkError("this link has expired", expired=True)

    def _sign(self, notification_id: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{notification_id}.{expires}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]


def link_key(settings: Settings) -> bytes:
    """`CAREWATCH_LINK_SECRET`, or the key in the data directory (made on first use, so the
    notifier and the API of one machine agree without configuration)."""
    if settings.link_secret:
        return settings.link_secret.encode()
    path = Path(settings.data_dir) / _KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: of two processes starting at once, one key
    # wins and neither can read a half-written file.
    spare = path.with_name(f"{_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    spare.write_bytes(secrets.token_hex(32).encode())
    spare.chmod(0o600)
    try:
        os.link(spare, path)
    except FileExistsError:
        pass
    finally:
        spare.unlink()
    return path.read_bytes().strip()


def base_url(settings: Settings) -> str:
    """Where people outside reach the API (ack links, gateway callbacks):
    CAREWATCH_PUBLIC_URL, else the API's own address (a wildcard one as this machine's
    loopback: links then work on this machine only, which `up` is for)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
        settings.api_host, settings.api_host
    )
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.api_port}"
