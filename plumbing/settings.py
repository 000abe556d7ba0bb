"""Settings for every carewatch process, read once at the entry point from `CAREWATCH_*`.

A service left unset (`database_url`, `kafka_bootstrap`, `mqtt_url`) means "the embedded
one": `carewatch up` starts it and records where in `<data_dir>/stack.json`, so that the
other commands (`carewatch alerts list`, a second `carewatch rules`) find it without
configuration.
"""

from __future__ import annotations

import socket
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["EMBEDDED_PARTITIONS", "PARTITIONS", "STACK_FILE", "ConfigError", "Settings"]

STACK_FILE = "stack.json"

# Partitions of the events, alarms and alerts topics unless `events_partitions` says:
# as many workers of a group as that can share the work. The embedded Kafka gets fewer:
# tansu's memory storage pays for every partition's batches on every fetch, so with 12 a
# stored record costs it more the longer it runs (docs/benchmarks.md, round 6). Four
# workers of a kind are more than a machine that runs the whole stack can use; set
# CAREWATCH_EVENTS_PARTITIONS for more.
PARTITIONS = 12
EMBEDDED_PARTITIONS = 4


class ConfigError(Exception):
    """A required setting is missing or unusable; the message says what to set."""


class Settings(BaseSettings):
    """Every setting is documented in the README's settings table; keep the two in step."""

    model_config = SettingsConfigDict(env_prefix="CAREWATCH_", extra="ignore")

    data_dir: Path = Field(
        Path(".carewatch"), description="where the embedded stack keeps its data"
    )
    database_url: str | None = Field(None, description="PostgreSQL URL; unset = embedded")
    kafka_bootstrap: str | None = Field(None, description="Kafka host:port list; unset = embedded")
    mqtt_url: str | None = Field(None, description="mqtt://[user:pass@]host:port; unset = embedded")
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    mqtt_admin_url: str | None = Field(
        None, description="mqtt://user:pass@host:port of a dynamic-security admin account"
    )
    dev_mode: bool = Field(False, description="embedded broker also admits anonymous clients")
    # A plain subscription by default: mosquitto 2.0 restores a persistent session's plain
    # subscriptions after it restarts, not its shared ones, so with a shared subscription
    # what devices send between the broker's restart and ingest's return is acknowledged
    # and dropped (measured: docs/reliability.md). Set a group to run several ingests.
    mqtt_share_group: str = Field(
        "", description="shared-subscription group for several ingests; '' = plain subscription"
    )
    ingest_client_id: str = Field(
        default_factory=lambda: f"carewatch-ingest-{socket.gethostname()}"
    )
    ingest_max_inflight: int = Field(4000, ge=1, le=65535)
    max_payload_bytes: int = Field(64 * 1024, ge=256)
    device_rate: float = Field(10.0, gt=0, description="messages/s per device before limiting")
    device_burst: int = Field(60, ge=1, description="messages a device may send at once")
    max_clock_ahead_s: float = Field(
        300.0, ge=0, description="events dated further ahead of arrival are refused"
    )
    events_partitions: int | None = Field(
        None, ge=1, description="partitions of the topics up creates; unset = see topic_partitions"
    )
    gateway_host: str = Field("0.0.0.0", description="where the watch gateway listens")
    gateway_port: int = Field(5093, ge=0, le=65535, description="the watch gateway's TCP port")
    gateway_idle_timeout_s: float = Field(
        600.0, gt=0, description="a watch silent this long is disconnected"
    )
    rules_group: str = "carewatch-rules"
    rules_tick_s: float = Field(60.0, gt=0, description="how often the timer rules run")
    telemetry_group: str = "carewatch-telemetry"
    batch_max_records: int = Field(5000, ge=1)
    # Whole UTC days of device time, dropped by the telemetry worker (docs/events-storage.md).
    retention_days: int = Field(
        400, ge=0, description="days of events kept (whole days dropped after); 0 = forever"
    )
    reconcile_interval_s: float = Field(
        60.0, gt=0, description="how often stored alarms are checked for their alerts"
    )
    reconcile_grace_s: float = Field(
        60.0, ge=0, description="how old a stored alarm must be before a missing alert counts"
    )
    worker_stall_after_s: float = Field(
        120.0, gt=0, description="a batch in hand this long makes a worker unhealthy"
    )
    api_host: str = Field("127.0.0.1", description="where `carewatch api` listens")
    api_port: int = Field(
        8080, ge=0, le=65535, description="the API's port; `up` takes a free one if it is busy"
    )
    # Checked where it is used (console/geo.py `tile_source`): plumbing knows no providers.
    map_tiles: str = Field(
        "",
        description="the console's map tiles: '' or none (no tiles), osm, amap, tencent, or "
        "a URL template with {x} {y} {z} (prefix gcj02: if it draws in GCJ-02)",
    )
    # The monitoring centre's clock: the shifts of the acknowledgement statistics.
    centre_tz: str = Field("Asia/Shanghai", description="the monitoring centre's time zone (IANA)")
    shift_starts: str = Field(
        "08:00,16:00,00:00",
        description="local times the centre's shifts start at, HH:MM comma-separated",
    )
    # The notifier (notifier/, docs/notifications.md).
    notifier_group: str = "carewatch-notifier"
    public_url: str = Field(
        "",
        description="the API's address as people outside reach it (ack links); "
        "'' = http://API_HOST:API_PORT",
    )
    link_secret: str = Field(
        "",
        description="HMAC key of ack links, shared by the notifier and the API; "
        "'' = one generated in DATA_DIR/link.key",
    )
    ack_link_ttl_s: float = Field(86400.0, gt=0, description="how long an ack link works")
    ack_timeout_s: float = Field(
        1800.0, gt=0, description="an acknowledged alert not resolved this long re-opens"
    )
    operator_ack_target_s: float = Field(
        60.0, gt=0, description="an alert no operator took this long notifies the supervisor"
    )
    notify_attempts: int = Field(
        4, ge=1, le=20, description="tries per notification before it counts as failed"
    )
    smtp_url: str = Field(
        "", description="smtp://[user:pass@]host:port (smtps:// for TLS); '' = no e-mail"
    )
    smtp_from: str = Field("carewatch@localhost", description="the sender of e-mails")
    sms_gateway: str = Field(
        "", description="the SMS gateway's request template (JSON, docs/notifications.md)"
    )
    voice_gateway: str = Field(
        "", description="the voice gateway's request template (JSON, docs/notifications.md)"
    )
    gateway_secret: str = Field(
        "", description="HMAC key the SMS and voice gateways sign their callbacks with"
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65535, description="0 = any free port (logged)")
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("centre_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"{value!r}: an IANA time zone such as Asia/Shanghai") from None
        return value

    @field_validator("shift_starts")
    @classmethod
    def _local_times(cls, value: str) -> str:
        try:
            if any(time.fromisoformat(p.strip()).tzinfo for p in value.split(",")):
                raise ValueError
        except ValueError:
            raise ValueError(f"{value!r}: local times HH:MM, comma-separated") from None
        return value

    def stack_file(self) -> Path:
        return self.data_dir / STACK_FILE

    def from_stack(self, key: str) -> Any:
        try:
            return orjson.loads(self.stack_file().read_bytes()).get(key)
        except (OSError, orjson.JSONDecodeError):
            return None

    def _require(self, key: str, value: str | None) -> str:
        found = value or self.from_stack(key)
        if not found:
            env = f"CAREWATCH_{key.upper()}"
            raise ConfigError(
                f"no {key.replace('_', ' ')}: set {env}, or start the embedded stack with "
                f"`carewatch up` (looked for {self.stack_file()})"
            )
        return found

    def topic_partitions(self) -> int:
        """How many partitions `up` gives the topics it creates."""
        if self.events_partitions is not None:
            return self.events_partitions
        return PARTITIONS if self.kafka_bootstrap else EMBEDDED_PARTITIONS

    def require_database_url(self) -> str:
        return self._require("database_url", self.database_url)

    def require_kafka_bootstrap(self) -> str:
        return self._require("kafka_bootstrap", self.kafka_bootstrap)

    def require_mqtt_url(self, role: str = "ingest") -> str:
        """The broker URL, with the service account of `role` when the embedded stack has
        one (an external broker's URL carries its own credentials)."""
        if self.mqtt_url:
            return self.mqtt_url
        urls = self.from_stack("mqtt_urls")
        if isinstance(urls, dict) and urls.get(role):
            return str(urls[role])
        return self._require("mqtt_url", None)
