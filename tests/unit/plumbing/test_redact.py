"""Passwords never reach a log line or the terminal."""

from __future__ import annotations

import pytest

from plumbing.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/care", "postgresql://app:***@db:5432/care"),
        ("mqtt://ingest:p%40ss@127.0.0.1:1883", "mqtt://ingest:***@127.0.0.1:1883"),
        ("mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"),
        (
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "postgresql://postgres@127.0.0.1:5432/postgres",
        ),
        ("mqtt://u:pw@host:notaport", "mqtt://u:***@host:notaport"),
        ("mqtt://u:pw@[::1", "mqtt://***@[::1"),  # not parsable
        ("mqtt://u:a:b@c@host:1", "mqtt://u:***@host:1"),
    ],
)
def test_the_password_is_hidden_and_the_rest_kept(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url) and "pw@" not in redact_url(url)
