"""Service URLs with their passwords hidden, for logs, errors and what `up` prints."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """`scheme://user:***@host:port/...`: the password replaced, everything else kept (the
    user name says which account was used). A URL without a password comes back as it is;
    one that cannot be parsed loses everything before its last '@'."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. a port that is not a number
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url
    if not password:
        return url
    login, _, host = parts.netloc.rpartition("@")
    user = login.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
