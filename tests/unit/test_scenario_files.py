"""Scenario files: each one loads, bad ones say what is wrong, and times are placed so no
event is dated after the moment it is played."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.scenario import (
    ScenarioError,
    load_scenario,
    parse_duration,
    play,
    scenario_files,
)

REQUIRED = {
    "sos_press", "fall", "fall_cancelled", "wandering_at_night", "sustained_low_spo2",
    "inactivity", "device_silent", "battery_flat", "watch_removed",
}  # fmt: skip


def test_every_scenario_the_issue_names_exists_and_loads() -> None:
    loaded = {load_scenario(path).name: load_scenario(path) for path in scenario_files()}
    assert REQUIRED <= set(loaded)
    assert all(s.expect for s in loaded.values()), "a scenario states its alerts"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("steps: [", "not YAML"),
        ("- a list", "a scenario is a mapping"),
        ("description: x\nsteps: []\nexpect: []", "steps: List should have at least 1 item"),
        (
            "description: x\nsteps: [{at: -1m, send: {kind: sos}, advance: 1m}]\nexpect: []",
            "a step either sends",
        ),
        ("description: x\nsteps: [{at: 5m, send: {kind: sos}}]\nexpect: []", "0 or negative"),
        ("description: x\nsteps: [{at: soon, send: {kind: sos}}]\nexpect: []", "not a duration"),
        (
            "description: x\nsteps: [{at: -1m, send: {kind: sos}}]\n"
            "expect: [{kind: sos, status: closed}]",
            "expect.0.status",
        ),
    ],
)
def test_a_bad_scenario_names_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=r"broken\.yaml") as error:
        load_scenario(path)
    assert problem in str(error.value)


def test_durations() -> None:
    assert parse_duration("-30m") == timedelta(minutes=-30)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration("+90s") == timedelta(seconds=90)


def test_a_local_start_is_the_latest_one_that_keeps_every_step_in_the_past() -> None:
    night = load_scenario(Path(scenario_files()[0]).parent / "wandering_at_night.yaml")
    # 23:30 in Shanghai: tonight's 23:00 is too recent for steps up to +40 min.
    now = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)
    start = night.start_time(now)
    assert start == datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    last = max(s.at for s in night.steps if s.at is not None)
    assert start + last < now


async def test_play_dates_each_payload_and_advances_in_order() -> None:
    scenario = load_scenario(Path(scenario_files()[0]).parent / "device_silent.yaml")
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    log: list[object] = []

    async def publish(payload: dict[str, object]) -> None:
        log.append((payload["kind"], payload["ts"]))

    async def advance(by: timedelta) -> None:
        log.append(by)

    await play(scenario, publish=publish, advance=advance, now=now)
    assert log[0] == ("heartbeat", now.isoformat())
    assert log[1:4] == [timedelta(minutes=10), timedelta(minutes=10), timedelta(minutes=5)]
    assert log[4] == ("heartbeat", now.isoformat())
