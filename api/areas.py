"""Areas: where a user's jurisdiction and a resident's home lie, as a path.

City / district / sub-district / community, as the Chinese elderly-care information-system
standards organise jurisdiction: `shanghai/xuhui/tianping/community-3`. The top, '', covers
every area. A user sees and changes what lies in their area or below it; "below" follows
`/` boundaries, so `shanghai/xu` does not cover `shanghai/xuhui`.

The stored form has no leading, trailing or doubled `/` (the database checks it), so the
rule is a string comparison, in Python here and in SQL in alerts/views.py.
"""

from __future__ import annotations

__all__ = ["MAX_AREA_CHARS", "covers", "normalize_area"]

MAX_AREA_CHARS = 200


def normalize_area(text: str) -> str:
    """The stored form of an area as a person types it: '/shanghai/xuhui/' ->
    'shanghai/xuhui', '' or '/' -> '' (the top). ValueError for an empty level ('a//b'),
    control characters, or more than MAX_AREA_CHARS characters."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("an area has no control characters")
    levels = [level.strip() for level in text.strip().strip("/").split("/")]
    if levels == [""]:
        return ""
    if "" in levels:
        raise ValueError(f"an empty level in area {text!r}")
    area = "/".join(levels)
    if len(area) > MAX_AREA_CHARS:
        raise ValueError(f"an area has at most {MAX_AREA_CHARS} characters")
    return area


def covers(scope: str, area: str) -> bool:
    """Whether a user whose area is `scope` sees an object in `area` (both stored forms)."""
    return scope == "" or area == scope or area.startswith(scope + "/")
