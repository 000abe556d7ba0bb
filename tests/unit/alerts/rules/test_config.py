"""Rule configuration: the shipped defaults, merging overrides, `rules check` messages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from alerts.rules import Context
from alerts.rules._support import active_seconds, config, in_window
from alerts.rules.config import (
    DEFAULTS_PATH,
    RulesConfig,
    check,
    effective,
    load_defaults,
    parse_window,
    rules_config,
)
from tests.unit.alerts.rules.rule_harness import local

DEFAULTS_TEXT = DEFAULTS_PATH.read_text()
DEPLOY_COPY = Path(__file__).resolve().parents[4] / "deploy" / "rules.toml"


def test_the_shipped_defaults_are_the_model_defaults() -> None:
    assert load_defaults() == load_defaults(DEFAULTS_PATH) == RulesConfig()
    assert check(DEFAULTS_TEXT, {}) == []


def test_the_shipped_defaults_are_package_data() -> None:
    assert DEFAULTS_PATH.name == "defaults.toml"
    assert DEFAULTS_PATH.is_file()


def test_deploy_rules_toml_is_a_copy_of_the_shipped_defaults() -> None:
    assert DEPLOY_COPY.read_bytes() == DEFAULTS_PATH.read_bytes(), (
        "carewatch reads alerts/rules/defaults.toml (package data); deploy/rules.toml is a "
        "copy to read. Edit alerts/rules/defaults.toml, then "
        "`cp alerts/rules/defaults.toml deploy/rules.toml`"
    )


def test_a_defaults_file_can_be_named_by_path(tmp_path: Path) -> None:
    other = tmp_path / "rules.toml"
    other.write_text("[battery]\nlow_pct = 10\n")
    assert load_defaults(other).battery.low_pct == 10
    assert load_defaults(str(other)) == load_defaults(other)


def test_news2_bands() -> None:
    vitals = RulesConfig().vitals
    assert (vitals.heart_rate.critical_low, vitals.heart_rate.warning_low) == (40, None)
    assert (vitals.heart_rate.warning_high, vitals.heart_rate.critical_high) == (111, 131)
    assert (vitals.spo2.critical_low, vitals.spo2.warning_low) == (91, 93)
    assert (vitals.body_temp.warning_high, vitals.body_temp.critical_high) == (38.1, 39.1)
    assert RulesConfig().device_offline.silence_s == 15 * 60


def test_overrides_merge_over_the_defaults() -> None:
    zone = {"name": "home", "center": [31.23, 121.47], "radius_m": 150}
    merged = effective(
        RulesConfig(),
        {"vitals": {"heart_rate": {"critical_low": 38}}, "geofence": {"zones": [zone]}},
    )
    assert merged.vitals.heart_rate.critical_low == 38
    assert merged.vitals.heart_rate.critical_high == 131  # untouched neighbours stay
    assert merged.vitals.spo2 == RulesConfig().vitals.spo2
    assert [z.name for z in merged.geofence.zones] == ["home"]
    # lists replace: a resident's zones are theirs alone
    again = effective(merged, {"geofence": {"zones": []}})
    assert again.geofence.zones == []


def test_a_band_can_be_switched_off_with_null() -> None:
    merged = effective(RulesConfig(), {"vitals": {"spo2": {"warning_low": None}}})
    assert merged.vitals.spo2.warning_low is None


def test_invalid_overrides_raise() -> None:
    with pytest.raises(ValidationError):
        effective(RulesConfig(), {"battery": {"low_pct": "low"}})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"vitals": {"heart_rat": {}}}, "resident r1: vitals.heart_rat: unknown key"),
        ({"vitalz": {}}, "resident r1: vitalz: unknown key"),
        (
            {"vitals": {"spo2": {"critical_low": "ninety"}}},
            "resident r1: vitals.spo2.critical_low: Input should be a valid number, "
            "unable to parse string as a number (got 'ninety')",
        ),
        (
            {"vitals": {"heart_rate": {"critical_low": 120}}},
            "resident r1: vitals.heart_rate: critical_low (120.0) must be below "
            "warning_high (111.0)",
        ),
        (
            {"battery": {"resolve_pct": 10}},
            "resident r1: battery: resolve_pct (10.0) must be above low_pct (15.0)",
        ),
        (
            {"resident": {"timezone": "Asia/Shangai"}},
            "resident r1: resident.timezone: unknown time zone 'Asia/Shangai' "
            "(an IANA name like 'Asia/Shanghai')",
        ),
        (
            {"resident": {"active_hours": "8am-9pm"}},
            "resident r1: resident.active_hours: time window '8am-9pm': '8am' is not HH:MM",
        ),
        (
            {"resident": {"active_hours": "22:00-25:00"}},
            "resident r1: resident.active_hours: time window '22:00-25:00': '25:00' is not a "
            "time of day",
        ),
        (
            {"geofence": {"zones": [{"name": "h", "center": [31.2, 121.4]}]}},
            "resident r1: geofence.zones[0]: zone 'h': a circle needs both center and radius_m",
        ),
        (
            {"geofence": {"zones": [{"name": "h", "center": [95, 121.4], "radius_m": 100}]}},
            "resident r1: geofence.zones[0].center[0]: Input should be less than or equal to 90 "
            "(got 95)",
        ),
        (
            {"geofence": {"zones": [{"name": "h", "radius_m": 5, "polygon": [[0, 0]]}]}},
            "resident r1: geofence.zones[0]: zone 'h': give either center + radius_m, or polygon",
        ),
        (
            {"geofence": {"zones": [{"name": "bow", "polygon": [[0, 0], [1, 1], [0, 1], [1, 0]]}]}},
            "resident r1: geofence.zones[0]: zone 'bow': invalid polygon "
            "(Self-intersection[0.5 0.5])",
        ),
        (
            {"geofence": {"zones": [{"name": "line", "polygon": [[0, 0], [1, 1]]}]}},
            "resident r1: geofence.zones[0]: zone 'line': a polygon needs at least 3 [lat, lon] "
            "points",
        ),
        (
            {
                "geofence": {
                    "zones": [
                        {"name": "n", "polygon": [[0, 0], [1, 1], [0, 1]], "window": "22:00-22:00"}
                    ]
                }
            },
            "resident r1: geofence.zones[0].window: time window '22:00-22:00' is empty; use "
            "'00:00-24:00' for all day",
        ),
        (
            {"geofence": {"zones": [{"name": "a", "center": [0, 0], "radius_m": 1}] * 2}},
            "resident r1: geofence: zone names must be unique: a",
        ),
    ],
)
def test_check_explains_what_is_wrong(overrides: dict[str, object], message: str) -> None:
    assert check(DEFAULTS_TEXT, {"r1": overrides}) == [message]


def test_check_reports_every_resident_and_the_file() -> None:
    text = DEFAULTS_TEXT.replace("low_pct = 15", "low_pct = 150")
    messages = check(text, {"r2": {"worn": {"removed_min": -1}}, "r1": {}, "r3": []})
    assert messages == [
        "rules.toml: battery.low_pct: Input should be less than or equal to 100 (got 150)",
        "resident r2: worn.removed_min: Input should be greater than 0 (got -1)",
        "resident r3: overrides must be a JSON object",
    ]


def test_check_reports_broken_toml() -> None:
    (message,) = check("[vitals\n", {})
    assert message.startswith("rules.toml: not valid TOML: ")


def test_rules_read_their_config_back_from_the_context() -> None:
    assert config(Context(now=datetime.now(UTC))) == RulesConfig()
    dumped = effective(RulesConfig(), {"worn": {"removed_min": 30}}).model_dump(mode="json")
    first = rules_config(dumped)
    assert first.worn.removed_min == 30
    assert rules_config(dict(dumped)) is first  # validated once


@pytest.mark.parametrize(
    ("text", "window"),
    [("08:00-21:00", (480, 1260)), ("22:00-06:00", (1320, 360)), ("00:00-24:00", (0, 1440)),
     ("7:30-9:05", (450, 545))],
)  # fmt: skip
def test_windows(text: str, window: tuple[int, int]) -> None:
    assert parse_window(text) == window


def test_local_time_windows() -> None:
    tz = "Asia/Shanghai"
    assert in_window(local(23, 23), "22:00-06:00", tz)
    assert in_window(local(23, 5, 59), "22:00-06:00", tz)
    assert not in_window(local(23, 6), "22:00-06:00", tz)
    assert not in_window(local(23, 21), "08:00-21:00", tz)
    assert in_window(local(23, 0), "00:00-24:00", tz)
    # 20:00 to 10:00 the next day: one hour that evening, two the next morning
    assert active_seconds(local(23, 20), local(24, 10), "08:00-21:00", tz) == 3 * 3600
    assert active_seconds(local(23, 20), local(30, 10), "08:00-21:00", tz, limit=7200) >= 7200
    assert active_seconds(local(23, 23), local(24, 5), "22:00-06:00", tz) == 6 * 3600


def test_windows_follow_daylight_saving_time() -> None:
    # Berlin moves from UTC+2 to UTC+1 on 2026-10-25: 08:00 local is 06:00 UTC, then 07:00
    before = datetime(2026, 10, 24, 6, 30, tzinfo=UTC)
    after = datetime(2026, 10, 26, 6, 30, tzinfo=UTC)
    assert in_window(before, "08:00-21:00", "Europe/Berlin")
    assert not in_window(after, "08:00-21:00", "Europe/Berlin")
