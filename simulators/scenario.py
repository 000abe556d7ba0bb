"""Scripted scenarios: what one resident's device sends, and the alerts that must follow.

A scenario file (YAML, `simulators/scenarios/*.yaml`) is shared by the tests and by demos.
It names the resident's rule overrides, a list of steps, and the alerts an operator should
then see, exactly, once each:

    description: a watch that goes silent
    resident: {timezone: UTC, overrides: {...}}   # optional
    start: now            # or a local time "23:00": the latest one far enough in the past
    steps:
      - {at: -2m, send: {kind: heartbeat}}        # native payload; `ts` comes from `at`
      - {advance: 20m}                            # time passes, nothing arrives: timers run
      - {at: 0m, send: {kind: heartbeat}}
    expect:
      - {kind: device_offline, status: resolved}  # count 1 unless stated

Steps are played in order. `at` is device time relative to `start`, so a scenario of hours
plays in seconds: events are back-dated, never dated ahead of the real clock (ingest would
reject them as from the future). `advance` moves the rules worker's clock forward and runs
its timers: a test moves a test clock; against a live system it means waiting that long.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "SCENARIO_DIR",
    "Expected",
    "Scenario",
    "ScenarioError",
    "Step",
    "load_scenario",
    "play",
    "scenario_files",
]

SCENARIO_DIR = Path(__file__).parent / "scenarios"
# A start given as a local time lies at least this far before the end of the scenario's
# device time, so no step is dated in the future.
_MARGIN = timedelta(minutes=5)
_DURATION = re.compile(r"([+-]?)(\d+(?:\.\d+)?)(s|m|h)")
_UNITS = {"s": 1, "m": 60, "h": 3600}


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
    """Send a native payload at device time `at`, or let `advance` pass without events."""

    at: timedelta | None = None
    send: dict[str, Any] | None = None
    advance: timedelta | None = None

    @field_validator("at", "advance", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str | int | float) else value

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if (self.send is None) == (self.advance is None):
            raise ValueError("a step either sends (at + send) or advances (advance)")
        if self.send is not None:
            if self.at is None:
                raise ValueError("a step that sends needs `at` (device time, e.g. -10m)")
            if "kind" not in self.send or "ts" in self.send:
                raise ValueError("`send` needs a kind and no ts (`at` sets it)")
        if self.advance is not None and (self.at is not None or self.advance <= timedelta(0)):
            raise ValueError("`advance` takes a positive duration and no `at`")
        return self


class Expected(_Strict):
    """One alert the scenario must leave behind."""

    kind: str
    status: Literal["open", "acknowledged", "resolved"]
    count: int = Field(1, ge=1)
    resolution: str | None = None  # a substring of the alert's resolution note


class Resident(_Strict):
    timezone: str = "UTC"
    overrides: dict[str, Any] = Field(default_factory=dict)


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


def scenario_files() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))


def load_scenario(path: Path) -> Scenario:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path.name}: not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(f"{path.name}: a scenario is a mapping (description, steps, expect)")
    try:
        return Scenario.model_validate({"name": path.stem, **doc})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'scenario'}: {e['msg']}" for e in exc.errors()
        )
        raise ScenarioError(f"{path.name}: {problems}") from None


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
