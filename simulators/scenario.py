"""Scripted scenarios: what one resident's device sends, and the alerts that must follow.

A scenario file (YAML, `simulators/scenarios/*.yaml`, named by its file; package data, read
through importlib.resources) is shared by the tests and by demos. It names the resident's
rule overrides, a list of steps, and the alerts an operator should then see, exactly:

    description: a watch that goes silent
    resident:                                     # optional: a resident is registered
      timezone: Asia/Shanghai                     # IANA name (default UTC)
      overrides: {resident: {active_hours: "00:00-24:00"}}   # as in deploy/rules.toml
    start: now            # or a local time "23:00": the latest one far enough in the past
    steps:
      - {at: -2m, send: {kind: heartbeat, msg_id: hb-1}}   # a native-format event
      - {advance: 20m}                            # time passes, nothing arrives: timers run
      - {at: 0m, send: {kind: heartbeat, msg_id: hb-2}}
    expect:                                       # one entry per alert, and no other alert
      - {kind: device_offline, status: resolved}  # also: count (repeats, default 1),
                                                  # severity, resolution (part of the note)

Steps are played in order. `send` is one event of the native format (docs/native-format.md)
without `ts` and `device_id`: `at` dates it, device time relative to `start`, so a scenario
of hours plays in seconds: events are back-dated, never dated after the moment they are sent
(ingest would reject them as from the future). `advance` moves the rules worker's clock
forward and runs its timers: a test moves a test clock; against a live system it means
waiting that long while the worker's own ticker runs. The player sends as fast as it can,
and ingest admits a burst of 60 messages per device (`device_burst`): keep to fewer sends.

The resident's time zone is the registry's and the rules' (it is copied into the
overrides), so a local `start` and the rules' local-time windows agree.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib.resources.abc import Traversable
from pathlib import PurePath
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devices.codecs import native
from devices.errors import DecodeError

__all__ = [
    "SCENARIO_DIR",
    "Expected",
    "Resident",
    "Scenario",
    "ScenarioError",
    "Step",
    "load_scenario",
    "parse_duration",
    "play",
    "scenario_files",
]

# Package data, found wherever the package is installed; a Traversable (`/`, `iterdir()`,
# `read_text()`), not necessarily a Path.
SCENARIO_DIR: Traversable = importlib.resources.files("simulators") / "scenarios"
# A start given as a local time lies at least this far before the end of the scenario's
# device time, so no step is dated in the future.
_MARGIN = timedelta(minutes=5)
_DURATION = re.compile(r"([+-]?)(\d+(?:\.\d+)?)(s|m|h)")
_UNITS = {"s": 1, "m": 60, "h": 3600}
# Any fixed instant will do: a `send` is checked for its fields, not its time.
_CHECK_TS = datetime(2026, 1, 1, tzinfo=UTC)


class ScenarioError(ValueError):
    """A scenario file that cannot be used, with the file and what is wrong in it."""


def parse_duration(text: str | int | float) -> timedelta:
    """`-30m`, `2h`, `90s`, `+1.5h` (a bare number is seconds)."""
    if isinstance(text, int | float):
        return timedelta(seconds=text)
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. -30m, 2h, 90s)")
    sign = -1 if match.group(1) == "-" else 1
    return timedelta(seconds=sign * float(match.group(2)) * _UNITS[match.group(3)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    """Send a native event at device time `at`, or let `advance` pass without events."""

    at: timedelta | None = None
    send: dict[str, Any] | None = None
    advance: timedelta | None = None

    @field_validator("at", "advance", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str | int | float) else value

    @field_validator("send")
    @classmethod
    def _native(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if "ts" in value or "device_id" in value:
            raise ValueError("`send` has no ts (`at` sets it) and no device_id (the player's)")
        try:  # the codec ingest runs, so a typo fails here rather than in the dead letters
            native.decode(orjson.dumps({**value, "ts": _CHECK_TS}), "scenario", _CHECK_TS)
        except (DecodeError, TypeError) as exc:
            raise ValueError(f"not a native event: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if (self.send is None) == (self.advance is None):
            raise ValueError("a step either sends (at + send) or advances (advance)")
        if self.send is not None and self.at is None:
            raise ValueError("a step that sends needs `at` (device time, e.g. -10m)")
        if self.advance is not None and (self.at is not None or self.advance <= timedelta(0)):
            raise ValueError("`advance` takes a positive duration and no `at`")
        return self


class Expected(_Strict):
    """One alert the scenario must leave behind (two alerts of a kind: two entries)."""

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    status: Literal["open", "acknowledged", "resolved"]
    count: int = Field(1, ge=1)  # the alert's count: the raises folded into it
    severity: Literal["critical", "warning", "info"] | None = None
    resolution: str | None = None  # a substring of the alert's resolution note


class Resident(_Strict):
    """Who wears the device: registered (with `overrides` as their rule configuration)
    whenever the scenario names one."""

    timezone: str = "UTC"
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _one_time_zone(cls, data: Any) -> Any:
        """The time zone once, in the registry and the overrides alike: the rules read the
        overrides' one, and a resident is registered only with overrides."""
        if not isinstance(data, dict) or not data:
            return data  # no resident: the device runs on the rules.toml defaults
        overrides = data.get("overrides") or {}
        inner = overrides.get("resident", {}) if isinstance(overrides, dict) else None
        if not isinstance(inner, dict):
            return data  # the field validators say what is wrong
        given, configured = data.get("timezone"), inner.get("timezone")
        if given is not None and configured is not None and given != configured:
            raise ValueError(f"timezone {given!r} but overrides.resident.timezone {configured!r}")
        zone = given or configured or "UTC"
        resident = {**inner, "timezone": zone}
        return {**data, "timezone": zone, "overrides": {**overrides, "resident": resident}}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not an IANA time zone: {value!r}") from None
        return value


class Scenario(_Strict):
    name: str
    description: str
    resident: Resident = Field(default_factory=Resident)
    start: str = "now"
    steps: list[Step] = Field(min_length=1)
    expect: list[Expected]

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        if value != "now" and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value) is None:
            raise ValueError(f"start is `now` or a local time HH:MM, not {value!r}")
        return value

    @model_validator(mode="after")
    def _in_the_past(self) -> Scenario:
        if self.start == "now" and any(
            s.at is not None and s.at > timedelta(0) for s in self.steps
        ):
            raise ValueError("with start: now, every `at` must be 0 or negative (device time)")
        if self.start != "now" and not self.resident.overrides:
            raise ValueError("a local start needs the resident (and so their time zone)")
        return self

    def start_time(self, now: datetime) -> datetime:
        """The real moment `at: 0` stands for when played at `now`."""
        if self.start == "now":
            return now
        zone = ZoneInfo(self.resident.timezone)
        latest = max((s.at for s in self.steps if s.at is not None), default=timedelta(0))
        hour, minute = map(int, self.start.split(":"))
        local = (now - latest - _MARGIN).astimezone(zone)
        start = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if start > local:
            start -= timedelta(days=1)
        return start.astimezone(UTC)


def scenario_files() -> list[Traversable]:
    """The shipped scenarios (`SCENARIO_DIR/*.yaml`), by name."""
    files = (f for f in SCENARIO_DIR.iterdir() if f.name.endswith(".yaml") and f.is_file())
    return sorted(files, key=lambda f: f.name)


def load_scenario(path: Traversable) -> Scenario:
    """Parse and validate one file (a shipped one or a Path); a `ScenarioError` names the
    file and each problem."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path.name}: not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(f"{path.name}: a scenario is a mapping (description, steps, expect)")
    try:
        return Scenario.model_validate({"name": PurePath(path.name).stem, **doc})
    except ValidationError as exc:
        raise ScenarioError(f"{path.name}: {_problems(exc)}") from None


def _problems(exc: ValidationError) -> str:
    """`steps.2.send: Value error, not a native event: ...` for each error, `; `-joined."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'scenario'}: {e['msg']}" for e in exc.errors()
    )


Publish = Callable[[dict[str, Any]], Awaitable[None]]
Advance = Callable[[timedelta], Awaitable[None]]


async def play(
    scenario: Scenario, *, publish: Publish, advance: Advance, now: datetime | None = None
) -> None:
    """Play the steps in order: `publish` gets each native payload (with `ts`), `advance`
    each stretch of time that passes without events."""
    start = scenario.start_time(now or datetime.now(UTC))
    for step in scenario.steps:
        if step.advance is not None:
            await advance(step.advance)
        else:
            assert step.send is not None and step.at is not None
            await publish({**step.send, "ts": (start + step.at).isoformat()})
