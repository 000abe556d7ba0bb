"""The console's two catalogues: every message the templates use is translated in both,
no catalogue keeps messages nobody uses, and the language follows the browser."""

from __future__ import annotations

import re

import pytest

from console import catalogue, i18n


@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_every_message_is_translated(language: str) -> None:
    assert catalogue.missing(language) == [], (
        f"run: python -m console.catalogue --language {language}"
    )


@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_no_catalogue_keeps_unused_messages(language: str) -> None:
    unused = set(i18n.catalogue(language).messages) - catalogue.used_ids()
    assert not unused


@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_placeholders_survive_translation(language: str) -> None:
    for message, text in i18n.catalogue(language).messages.items():
        assert set(re.findall(r"%\(\w+\)s", message)) == set(re.findall(r"%\(\w+\)s", text)), (
            message
        )


def test_chinese_is_chinese() -> None:
    zh = i18n.catalogue("zh-CN")
    assert zh.gettext("Alarm queue") == "接警台"
    assert zh.gettext("Acknowledge (A)").startswith("接警")


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("zh-CN,zh;q=0.9", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("en-US,en;q=0.9,zh;q=0.8", "en"),
        ("fr-FR, en;q=0.5", "en"),
        ("fr-FR", "zh-CN"),
        ("de;q=0.9, zh;q=0.1, en;q=0.5", "en"),
        ("", "zh-CN"),
        (None, "zh-CN"),
        ("en;q=nonsense, zh", "zh-CN"),
    ],
)
def test_the_language_follows_the_browser(header: str | None, language: str) -> None:
    assert i18n.negotiate(header) == language
