"""The area rule: a user sees their area and what lies below it, on `/` boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.areas import MAX_AREA_CHARS, covers, normalize_area


@pytest.mark.parametrize(
    ("scope", "area", "sees"),
    [
        ("", "", True),
        ("", "shanghai/xuhui", True),  # the top sees everything
        ("shanghai", "shanghai", True),
        ("shanghai", "shanghai/xuhui/tianping/community-3", True),
        ("shanghai/xuhui", "shanghai", False),  # above
        ("shanghai/xuhui", "shanghai/xuhuix", False),  # a prefix, not a level below
        ("shanghai/xu", "shanghai/xuhui", False),
        ("shanghai/xuhui", "shanghai/minhang", False),
        ("shanghai", "", False),  # the top lies above every area
    ],
)
def test_a_user_sees_their_area_and_below(scope: str, area: str, sees: bool) -> None:
    assert covers(scope, area) is sees


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("", ""),
        ("/", ""),
        ("  ", ""),
        ("shanghai", "shanghai"),
        ("/shanghai/xuhui/", "shanghai/xuhui"),
        (" shanghai / xuhui ", "shanghai/xuhui"),
        ("上海/徐汇/田林街道", "上海/徐汇/田林街道"),
    ],
)
def test_areas_are_stored_in_one_form(typed: str, stored: str) -> None:
    assert normalize_area(typed) == stored


@pytest.mark.parametrize("typed", ["a//b", "a/ /b", "a\x00b", "a\nb", "x" * (MAX_AREA_CHARS + 1)])
def test_malformed_areas_are_refused(typed: str) -> None:
    with pytest.raises(ValueError):
        normalize_area(typed)


_level = st.text(st.characters(blacklist_characters="/", min_codepoint=33), min_size=1, max_size=5)


@given(st.lists(_level, min_size=1, max_size=4), st.lists(_level, max_size=3))
def test_everything_below_an_area_is_covered_and_nothing_beside(
    levels: list[str], more: list[str]
) -> None:
    scope = "/".join(levels)
    assert covers(scope, "/".join([*levels, *more]))
    sibling = "/".join([*levels[:-1], levels[-1] + "x"])
    assert not covers(scope, sibling)
