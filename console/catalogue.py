"""The message ids the console's templates use, and which of them a catalogue lacks.

`python -m console.catalogue` lists what is missing per language and, with `--add FILE`,
appends the missing ids to that catalogue file (English: the id itself; Chinese: empty,
to be translated). tests/unit/test_console_i18n.py fails while anything is missing.
"""

from __future__ import annotations

import argparse
from importlib import resources

from babel.messages.extract import extract

from console import i18n

__all__ = ["missing", "used_ids"]


def used_ids() -> set[str]:
    """Every message id in the templates (the scripts' texts come from base.html)."""
    ids: set[str] = set()
    folder = resources.files("console") / "templates"
    for entry in folder.iterdir():
        if not entry.name.endswith(".html"):
            continue
        with entry.open("rb") as f:
            for _line, message, _comments, _context in extract(
                "jinja2.ext:babel_extract",
                f,
                keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
            ):
                ids.update([message] if isinstance(message, str) else message)
    return ids


def missing(language: str) -> list[str]:
    """The ids used but not translated (or translated empty) in `language`."""
    known = i18n.catalogue(language).messages
    return sorted(i for i in used_ids() if not known.get(i))


def _po_text(message: str) -> str:
    return message.replace("\\", "\\\\").replace('"', '\\"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--add", metavar="FILE", help="append the missing ids to this .po file")
    parser.add_argument("--language", choices=sorted(i18n.LANGUAGES), default="zh-CN")
    args = parser.parse_args()
    lacking = missing(args.language)
    print(f"{args.language}: {len(lacking)} missing")
    if args.add:
        with open(args.add, "a", encoding="utf-8") as f:
            for message in lacking:
                text = message if args.language == "en" else ""
                f.write(f'\nmsgid "{_po_text(message)}"\nmsgstr "{_po_text(text)}"\n')
    else:
        for message in lacking:
            print(f"  {message}")


if __name__ == "__main__":
    main()
