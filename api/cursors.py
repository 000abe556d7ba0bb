"""Opaque cursors for paged lists: the sort key of the last item shown, and the list's name.

A page continues after the key (keyset pagination), so paging stays cheap however deep it
goes and an item inserted meanwhile shifts nothing. The cursor is base64url JSON: opaque
to clients by contract, not secret (every query is scoped to the user's area anyway);
it names its list and ordering, so a cursor of one list cannot be fed to another.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

__all__ = ["CursorError", "decode_cursor", "encode_cursor"]


class CursorError(ValueError):
    """Not a cursor this list gave out."""


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = orjson.dumps([kind, *key])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, kind: str, types: Sequence[type]) -> tuple[Any, ...]:
    """The key in `cursor`, each value of the type at its place; CursorError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise CursorError("not a cursor of this list") from exc
    if not isinstance(found, list) or len(found) != len(types) + 1 or found[0] != kind:
        raise CursorError("not a cursor of this list")
    return tuple(_typed(value, wanted) for value, wanted in zip(found[1:], types, strict=True))


def _typed(value: Any, wanted: type) -> Any:
    if wanted is datetime and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise CursorError("not a cursor of this list") from None
        if parsed.tzinfo is not None:
            return parsed
    elif wanted is int and type(value) is int and -(2**63) <= value < 2**63:
        return value
    elif wanted is str and isinstance(value, str) and "\x00" not in value:
        return value
    raise CursorError("not a cursor of this list")
