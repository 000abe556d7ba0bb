"""Cursors carry a page's last sort key; one list's cursor does not fit another."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.cursors import CursorError, decode_cursor, encode_cursor

_KEY = (datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), 42)


def test_a_cursor_gives_back_its_key() -> None:
    cursor = encode_cursor("alerts:newest", _KEY)
    assert cursor.isascii() and "=" not in cursor  # fits a query string as it is
    assert decode_cursor(cursor, "alerts:newest", (datetime, int)) == _KEY


@pytest.mark.parametrize(
    ("cursor", "types"),
    [
        (encode_cursor("alerts:urgent", _KEY), (datetime, int)),  # another list's
        (encode_cursor("alerts:newest", _KEY), (datetime, int, int)),  # another shape
        (encode_cursor("alerts:newest", ["yesterday", 42]), (datetime, int)),
        (encode_cursor("alerts:newest", ["2026-01-02T03:04:05", 42]), (datetime, int)),  # naive
        (encode_cursor("alerts:newest", [_KEY[0], "42"]), (datetime, int)),
        (encode_cursor("alerts:newest", [_KEY[0], True]), (datetime, int)),
        (encode_cursor("alerts:newest", [_KEY[0], 2**63]), (datetime, int)),
        ("", (datetime, int)),
        ("%%%", (datetime, int)),
        ("bm90IGpzb24", (datetime, int)),  # "not json"
        ("e30", (datetime, int)),  # {}
    ],
)
def test_anything_else_is_refused(cursor: str, types: tuple[type, ...]) -> None:
    with pytest.raises(CursorError, match="not a cursor of this list"):
        decode_cursor(cursor, "alerts:newest", types)
