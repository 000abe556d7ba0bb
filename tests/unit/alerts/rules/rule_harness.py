"""A device feeding one rule, with a clock the test controls (for tests/unit/test_rules_*)."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.rules import Context, Decision, RaiseAlert, ResolveAlert, Rule
from alerts.rules.config import RulesConfig, effective
from devices.events import Event, make_event

# 10:00 in Asia/Shanghai (the default resident time zone), inside the default active hours.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
HOME = (31.2304, 121.4737)


def config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the worker puts into Context.config: defaults merged with the overrides."""
    return effective(RulesConfig(), overrides or {}).model_dump(mode="json")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in Asia/Shanghai (UTC+8, no DST) on 2026-11-<day>, in UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + math.degrees(metres / 6_371_008.8), point[1]


class Device:
    """One device's events through one rule; `now` is the worker's clock."""

    def __init__(
        self, rule: Rule, overrides: dict[str, Any] | None = None, device_id: str = "d1"
    ) -> None:
        self.rule = rule
        self.config = config(overrides)
        self.device_id = device_id
        self.now = T0
        self.state: dict[str, Any] = {}

    def event(
        self, kind: str, at: datetime | None = None, received: datetime | None = None, **fields: Any
    ) -> Event:
        return make_event(
            device_id=self.device_id,
            kind=kind,
            ts=at or self.now,
            received_at=received or self.now,
            source="test",
            fields=fields,
        )

    def send(
        self, kind: str, at: datetime | None = None, received: datetime | None = None, **fields: Any
    ) -> list[Decision]:
        """An event of device time `at` (default: now), received now."""
        return self.feed(self.event(kind, at, received, **fields))

    def feed(self, event: Event) -> list[Decision]:
        return self.rule.evaluate(event, self.state, Context(now=self.now, config=self.config))

    def tick(self, state: dict[str, Any] | None = None) -> list[Decision]:
        assert self.rule.tick is not None
        return self.rule.tick(
            self.state if state is None else state, Context(now=self.now, config=self.config)
        )

    def snapshot(self) -> dict[str, Any]:
        """The state as the worker would reload it after a restart."""
        return copy.deepcopy(self.state)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def raised(decisions: list[Decision]) -> list[RaiseAlert]:
    return [d for d in decisions if isinstance(d, RaiseAlert)]


def resolved(decisions: list[Decision]) -> list[ResolveAlert]:
    return [d for d in decisions if isinstance(d, ResolveAlert)]
