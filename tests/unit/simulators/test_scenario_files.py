"""Scenario files: each one loads and its overrides pass `rules check`, bad ones say what
is wrong, and times are placed so no event is dated after the moment it is played."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.rules.config import DEFAULTS_PATH, check
from simulators.scenario import (
    SCENARIO_DIR,
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

_STEPS = "steps: [{at: -1m, send: {kind: sos}}]"
_SOS = f"{_STEPS}\nexpect: []"


def test_the_scenarios_are_package_data_named_by_file() -> None:
    files = scenario_files()
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert all(f.name.endswith(".yaml") for f in files)
    assert (SCENARIO_DIR / "fall.yaml").is_file()
    assert load_scenario(SCENARIO_DIR / "fall.yaml").name == "fall"


def test_every_required_scenario_exists_and_states_its_alerts() -> None:
    loaded = {s.name: s for s in map(load_scenario, scenario_files())}
    assert REQUIRED <= set(loaded)
    assert all(s.expect for s in loaded.values()), "a scenario states its alerts"


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.name.removesuffix(".yaml"))
def test_every_scenarios_overrides_pass_rules_check(path: Path) -> None:
    # The worker would log bad overrides and use the defaults: the scenario would test
    # something else than it says.
    scenario = load_scenario(path)
    assert check(DEFAULTS_PATH.read_text(), {scenario.name: scenario.resident.overrides}) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("steps: [", "not YAML"),
        ("- a list", "a scenario is a mapping"),
        ("description: x\nsteps: []\nexpect: []", "steps: List should have at least 1 item"),
        ("description: x\nsteps: [{advance: 1m}]\nexpect: []\nextra: 1", "extra: Extra inputs"),
        (
            "description: x\nsteps: [{at: -1m, send: {kind: sos}, advance: 1m}]\nexpect: []",
            "a step either sends",
        ),
        ("description: x\nsteps: [{at: 5m, send: {kind: sos}}]\nexpect: []", "0 or negative"),
        ("description: x\nsteps: [{at: soon, send: {kind: sos}}]\nexpect: []", "not a duration"),
        (
            "description: x\nsteps: [{at: -1m, send: {kind: battery, battery_pc: 3}}]\nexpect: []",
            "steps.0.send: Value error, not a native event: native: missing_field: battery_pct",
        ),
        (
            "description: x\nsteps: [{at: -1m, send: {kind: sos, ts: 0}}]\nexpect: []",
            "`send` has no ts",
        ),
        (
            f"description: x\n{_STEPS}\nexpect: [{{kind: sos, status: closed}}]",
            "expect.0.status",
        ),
        (f"description: x\n{_STEPS}\nexpect: [{{kind: SOS, status: open}}]", "expect.0.kind"),
        (f"description: x\nstart: '23:00'\n{_SOS}", "a local start needs the resident"),
        (f"description: x\nresident: {{timezone: Mars/Base}}\n{_SOS}", "not an IANA time zone"),
        (
            "description: x\nresident: {timezone: UTC, overrides: {resident: "
            f"{{timezone: Asia/Shanghai}}}}}}\n{_SOS}",
            "timezone 'UTC' but overrides.resident.timezone 'Asia/Shanghai'",
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


def test_the_resident_time_zone_reaches_the_rules(tmp_path: Path) -> None:
    # The rules read it from the overrides; a resident is registered only with overrides.
    path = tmp_path / "zone.yaml"
    path.write_text(f"description: x\nresident: {{timezone: Europe/Berlin}}\n{_SOS}")
    resident = load_scenario(path).resident
    assert resident.timezone == "Europe/Berlin"
    assert resident.overrides == {"resident": {"timezone": "Europe/Berlin"}}


def test_durations() -> None:
    assert parse_duration("-30m") == timedelta(minutes=-30)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration("+90s") == timedelta(seconds=90)
    assert parse_duration(45) == timedelta(seconds=45)


def test_a_local_start_is_the_latest_one_that_keeps_every_step_in_the_past() -> None:
    night = load_scenario(SCENARIO_DIR / "wandering_at_night.yaml")
    assert (night.start, night.resident.timezone) == ("21:30", "Asia/Shanghai")
    # 22:00 in Shanghai: tonight's 21:30 is too recent for steps up to +70 min.
    now = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
    start = night.start_time(now)
    assert start == datetime(2026, 11, 21, 13, 30, tzinfo=UTC)
    last = max(s.at for s in night.steps if s.at is not None)
    assert start + last < now
    # Just after 22:45 tonight's 21:30 will do.
    assert night.start_time(now + timedelta(minutes=46)) == datetime(
        2026, 11, 22, 13, 30, tzinfo=UTC
    )


async def test_play_dates_each_payload_and_advances_in_order() -> None:
    scenario = load_scenario(SCENARIO_DIR / "device_silent.yaml")
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
