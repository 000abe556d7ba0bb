"""The packages import one way, down: plumbing and devices at the bottom, then ingest, alerts
and simulators, then the API (which reads and writes through alerts' and devices' stores),
then the application (carewatch). Checked from the source, every import
statement included (those inside functions too), so a new arrow back up fails here.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What each package may import besides itself (docs/architecture.md draws this).
ALLOWED: dict[str, set[str]] = {
    "plumbing": set(),
    "devices": set(),
    "ingest": {"plumbing", "devices"},
    "alerts": {"plumbing", "devices"},
    "simulators": {"plumbing", "devices"},
    "notifier": {"plumbing", "devices", "alerts"},
    "api": {"plumbing", "devices", "alerts", "notifier"},
    "console": {"plumbing", "devices", "alerts", "notifier", "api"},
    "carewatch": {
        "plumbing",
        "devices",
        "ingest",
        "alerts",
        "simulators",
        "notifier",
        "api",
        "console",
    },
}


def _imports(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """{first-party package imported: the files that import it}."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in ALLOWED and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    upward = {
        target: sorted(files)
        for target, files in _imports(package).items()
        if target not in ALLOWED[package]
    }
    assert not upward, f"{package} imports packages above or beside it: {upward}"


def test_the_package_graph_is_acyclic() -> None:
    graph = {package: set(_imports(package)) for package in ALLOWED}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"packages import each other in a cycle: {exc.args[1]}")
    assert order.index("plumbing") < order.index("carewatch")


def test_the_checker_sees_an_import_back_up_inside_a_function(tmp_path: Path) -> None:
    (tmp_path / "plumbing").mkdir()
    (tmp_path / "plumbing" / "x.py").write_text(
        "import os\nfrom plumbing import db\n\ndef f():\n    from alerts.store import get\n"
    )
    assert _imports("plumbing", tmp_path) == {"alerts": {"plumbing/x.py"}}
