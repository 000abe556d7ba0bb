"""`carewatch rules check`: the defaults file is valid, and a bad one is named field by field."""

from __future__ import annotations

from pathlib import Path

import pytest

from carewatch.cli import main


def test_shipped_defaults_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", "--offline"]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_bad_defaults_name_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('[battery]\nlow_pct = 150\n[resident]\ntimezone = "Asia/Shangai"\n')
    assert main(["rules", "check", "--offline", "--file", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "battery.low_pct" in out and "Asia/Shangai" in out
