"""`carewatch up --ingest N --workers N`: what it refuses before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from carewatch.embedded import EmbeddedError
from carewatch.up import check_scale
from plumbing.settings import Settings


def test_up_refuses_more_workers_than_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CAREWATCH_KAFKA_BOOTSTRAP", "CAREWATCH_EVENTS_PARTITIONS"):
        monkeypatch.delenv(name, raising=False)
    check_scale(Settings(data_dir=tmp_path), ingests=1, workers=4)
    with pytest.raises(EmbeddedError, match=r"1 to 4 .*CAREWATCH_EVENTS_PARTITIONS"):
        check_scale(Settings(data_dir=tmp_path), ingests=1, workers=5)
    check_scale(Settings(data_dir=tmp_path, events_partitions=8), ingests=1, workers=8)
