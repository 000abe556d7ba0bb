"""An installed wheel works, not only the checkout: what the code reads at run time (the rule
defaults, the scenarios, the migrations) travels inside the wheel as package data.

The wheel is built offline, with the build backend this environment has, from a copy of the
sources (a build in the checkout would leave build/ and egg-info behind), and installed
without its dependencies into a fresh virtualenv. That one finds the dependencies in this
environment's site-packages through a .pth file: a plain path, appended after its own
site-packages, whose .pth files are not read, so the editable install's finder stays out.
The commands run from an empty directory, so the checkout is not on sys.path either.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# setuptools 77 reads `license` as an SPDX expression (pyproject.toml's build-system).
_BACKEND = ("setuptools", (77, 0))


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    cwd: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        return subprocess.run(
            args, cwd=self.cwd, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    def carewatch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "carewatch"), *args)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Installed:
    _skip_unless_buildable()
    work = tmp_path_factory.mktemp("packaging")
    source = _copy_sources(repo_root, work / "src")
    wheel = _build_wheel(source, work / "dist")
    venv = work / "venv"
    _pip("-m", "venv", "--without-pip", str(venv))
    _pip("-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
         "--no-index", str(wheel))  # fmt: skip
    _borrow_dependencies(venv)
    (work / "cwd").mkdir()
    return Installed(wheel=wheel, venv=venv, cwd=work / "cwd")


def _skip_unless_buildable() -> None:
    name, minimum = _BACKEND
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"cannot build a wheel offline: {name} is not installed")
    if tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) < minimum:
        pytest.skip(f"cannot build a wheel offline: {name} {version} is older than {minimum}")
    if importlib.util.find_spec("pip") is None:
        pytest.skip("cannot build a wheel offline: pip is not installed")


def _copy_sources(root: Path, into: Path) -> Path:
    """pyproject.toml, the README it names, and the packages it includes."""
    project = tomllib.loads((root / "pyproject.toml").read_text())
    into.mkdir()
    for name in ("pyproject.toml", project["project"]["readme"]):
        shutil.copy2(root / name, into / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.removesuffix("*")
        shutil.copytree(root / package, into / package, ignore=ignore)
    return into


def _build_wheel(source: Path, dist: Path) -> Path:
    _pip("-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(dist), str(source))  # fmt: skip
    (wheel,) = dist.glob("carewatch-*.whl")
    return wheel


def _borrow_dependencies(venv: Path) -> None:
    """The dependencies are this environment's: a .pth in the new one names its site-packages."""
    here = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))
    probe = "import sysconfig; print(sysconfig.get_path('purelib'))"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    (Path(out.stdout.strip()) / "_carewatch_test_deps.pth").write_text("\n".join(here) + "\n")


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{' '.join(args[:3])} failed:\n{done.stdout}{done.stderr}"


def test_the_wheel_carries_what_is_read_at_run_time(installed: Installed, repo_root: Path) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    wanted = {"alerts/rules/defaults.toml"}
    for folder, pattern in (("simulators/scenarios", "*.yaml"), ("plumbing/migrations", "*.sql")):
        wanted |= {f"{folder}/{p.name}" for p in (repo_root / folder).glob(pattern)}
    assert wanted <= names, f"missing from the wheel: {sorted(wanted - names)}"
    assert not any(name.startswith(("tests/", "deploy/")) for name in names)


def test_the_code_comes_from_the_wheel(installed: Installed) -> None:
    packages = ("alerts", "carewatch", "devices", "ingest", "plumbing", "simulators")
    code = "import importlib as i, sys\nfor n in sys.argv[1:]: print(i.import_module(n).__file__)"
    done = installed.run(str(installed.venv / "bin" / "python"), "-c", code, *packages)
    assert done.returncode == 0, done.stderr
    files = [Path(line) for line in done.stdout.splitlines()]
    assert len(files) == len(packages)
    assert all(f.is_relative_to(installed.venv) for f in files), done.stdout


def test_rules_check_offline_reads_the_shipped_defaults(installed: Installed) -> None:
    done = installed.carewatch("rules", "check", "--offline")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"ok: {installed.venv}"), done.stdout
    assert "defaults.toml" in done.stdout


def test_scenario_list_finds_every_shipped_scenario(installed: Installed, repo_root: Path) -> None:
    done = installed.carewatch("scenario", "list")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines()]
    assert listed == sorted(p.stem for p in (repo_root / "simulators/scenarios").glob("*.yaml"))
