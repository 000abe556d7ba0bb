"""The contact store's pure parts: the ladder's shape check, secrets kept across edits,
and the name search pattern."""

from __future__ import annotations

from typing import Any

import pytest

from devices.contacts import check_ladder, keep_secrets
from devices.residents import like_pattern


def _step(contacts: list[int], wait_s: int = 60) -> dict[str, Any]:
    return {"contacts": contacts, "wait_s": wait_s}


def test_a_good_ladder_has_no_problems() -> None:
    assert check_ladder([_step([1]), _step([2, 3], 3600), _step([1], 1)], 20) == []
    assert check_ladder([{"schedules": [7], "wait_s": 60}], 0) == []


@pytest.mark.parametrize(
    ("steps", "repeat", "problem"),
    [
        ([], 0, "steps: 1 to 20 steps"),
        ([_step([1])] * 21, 0, "steps: 1 to 20 steps"),
        ([_step([])], 0, "steps[0]: contacts or schedules, at least one"),
        ([_step([1]), _step([2, 2])], 0, "steps[1].contacts: one appears twice"),
        ([_step([1], 0)], 0, "steps[0].wait_s: 1 to 86400 seconds"),
        ([_step([1], 86401)], 0, "steps[0].wait_s: 1 to 86400 seconds"),
        ([{**_step([1]), "schedules": [4, 4]}], 0, "steps[0].schedules: one appears twice"),
        ([_step([1])], -1, "repeat: 0 to 20"),
        ([_step([1])], 21, "repeat: 0 to 20"),
    ],
)
def test_a_bad_ladder_is_named_where_it_is_wrong(
    steps: list[dict[str, Any]], repeat: int, problem: str
) -> None:
    assert check_ladder(steps, repeat) == [problem]


def test_a_channel_sent_back_without_its_secret_keeps_it() -> None:
    stored = [
        {"type": "webhook", "address": "https://a.example/", "secret": "k1"},
        {"type": "feishu", "address": "ou_1", "secret": "k2"},
    ]
    sent = [
        {"type": "webhook", "address": "https://a.example/", "secret": None},  # kept
        {"type": "feishu", "address": "ou_1", "secret": "new"},  # replaced
        {"type": "webhook", "address": "https://b.example/", "secret": None},  # none known
    ]
    assert [c["secret"] for c in keep_secrets(stored, sent)] == ["k1", "new", None]


def test_the_name_search_takes_wildcards_literally() -> None:
    assert like_pattern("Li") == "%Li%"
    assert like_pattern("100%_\\") == "%100\\%\\_\\\\%"
