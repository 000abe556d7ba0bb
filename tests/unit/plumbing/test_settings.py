"""Every setting is documented in the README, under the name a user would set."""

from __future__ import annotations

from pathlib import Path

import pytest

from plumbing.settings import ConfigError, Settings

README = Path(__file__).parents[3] / "README.md"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_setting_is_in_the_readme(name: str) -> None:
    assert f"`CAREWATCH_{name.upper()}`" in README.read_text()


def test_missing_service_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREWATCH_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"CAREWATCH_DATABASE_URL.*carewatch up"):
        Settings(data_dir=tmp_path).require_database_url()


def test_the_embedded_stack_file_supplies_role_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAREWATCH_MQTT_URL", raising=False)
    (tmp_path / "stack.json").write_text(
        '{"mqtt_url": "mqtt://127.0.0.1:1", "mqtt_urls": {"ingest": "mqtt://i:s@127.0.0.1:1"}}'
    )
    settings = Settings(data_dir=tmp_path)
    assert settings.require_mqtt_url("ingest") == "mqtt://i:s@127.0.0.1:1"
    assert settings.require_mqtt_url("devices") == "mqtt://127.0.0.1:1"


def test_topics_get_fewer_partitions_on_the_embedded_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CAREWATCH_KAFKA_BOOTSTRAP", "CAREWATCH_EVENTS_PARTITIONS"):
        monkeypatch.delenv(name, raising=False)
    assert Settings(data_dir=tmp_path).topic_partitions() == 4
    assert Settings(data_dir=tmp_path, kafka_bootstrap="kafka:9092").topic_partitions() == 12
    for bootstrap in (None, "kafka:9092"):
        chosen = Settings(data_dir=tmp_path, kafka_bootstrap=bootstrap, events_partitions=7)
        assert chosen.topic_partitions() == 7
