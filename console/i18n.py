"""The console's two languages: message catalogues, choosing one per request, and dates
in the user's time zone.

Catalogues are gettext `.po` files under `locales/<locale>/`, one file per part of the
console (each page family owns its file, so parts are translated and reviewed apart); they
are read at start with Babel, so running the console needs no compile step. The message
ids are the English text; `tests/unit/test_console_i18n.py` checks that every id the
templates and scripts use has a translation in both catalogues.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_datetime
from babel.messages.pofile import read_po

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "Catalogue",
    "catalogue",
    "format_time",
    "negotiate",
    "zone",
]

# Console languages, as the user sees and stores them, and their catalogue folders.
LANGUAGES = {"zh-CN": "zh_CN", "en": "en"}
DEFAULT_LANGUAGE = "zh-CN"  # a centre in China: Chinese unless the browser asks otherwise


@dataclass(frozen=True)
class Catalogue:
    """One language's messages: id (the English text) -> translation."""

    language: str
    messages: dict[str, str]

    def gettext(self, message: str) -> str:
        # A missing translation shows the English text rather than nothing; the catalogue
        # test keeps that from happening in a release.
        return self.messages.get(message) or message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.gettext(singular if n == 1 else plural)

    @property
    def locale(self) -> Locale:
        return Locale.parse(LANGUAGES[self.language])


@cache
def catalogue(language: str) -> Catalogue:
    """The catalogue of one of LANGUAGES, read once."""
    folder = resources.files("console") / "locales" / LANGUAGES[language]
    messages: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".po"):
            with entry.open("rb") as f:
                for message in read_po(f, locale=LANGUAGES[language]):
                    if message.id and isinstance(message.id, str):
                        messages[message.id] = str(message.string or "")
    return Catalogue(language, messages)


def negotiate(accept_language: str | None) -> str:
    """The console language for an `Accept-Language` header: the first of the browser's
    choices (by quality) that is Chinese or English; Chinese when none is."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        choices.append((-quality, position, tag.strip().lower()))
    for _q, _p, tag in sorted(choices):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def zone(name: str | None, fallback: str) -> ZoneInfo:
    """The time zone `name`, or `fallback` when it is unset or unknown."""
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def format_time(value: Any, tz: ZoneInfo, language: str, style: str = "medium") -> str:
    """A time (datetime or RFC 3339 text) in the user's zone and language; '' for None."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return format_datetime(value, style, tzinfo=tz, locale=LANGUAGES[language])
