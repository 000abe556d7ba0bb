"""simulators/people.py: the simulated fleet's residents are seeded, plausible, Chinese by
default, and live where their devices go."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pytest

from alerts.rules.config import DEFAULTS_PATH, check
from alerts.rules.geofence import distance_m
from api.areas import normalize_area
from api.people_models import ContactCreate, ResidentCreate
from devices.contacts import check_ladder
from devices.residents import PROFILE_COLUMNS
from simulators import fleet
from simulators.fleet import FleetStats, plan_fleet
from simulators.people import (
    FAKE_PHONE_PREFIX,
    STREETS,
    Person,
    device_home,
    make_people,
    make_person,
)

PLAN = plan_fleet(40, {"watch": 40, "button": 20, "phone": 20, "watch4g": 10, "door": 10})
CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")
PHONE = re.compile(rf"{FAKE_PHONE_PREFIX}\d{{8}}")


@pytest.fixture(scope="module")
def people() -> list[Person]:
    return make_people(PLAN, seed=7)


def test_the_same_seed_and_device_give_the_same_person(people: list[Person]) -> None:
    assert make_people(PLAN, seed=7) == people
    # ... whatever the fleet around it, so a bigger fleet next time keeps the old people
    assert make_person("watch", "watch-0001", seed=7) == people[0]
    assert make_people(plan_fleet(3), seed=7)[0] == make_people(plan_fleet(300), seed=7)[0]
    assert make_person("watch", "watch-0001", seed=8) != people[0]


def test_profiles_are_plausible(people: list[Person]) -> None:
    for person in people:
        profile = person.profile
        assert set(profile) <= set(PROFILE_COLUMNS)
        assert profile["sex"] in ("female", "male")
        assert 1928 <= profile["birth_year"] <= 1955
        assert 31.1 < profile["home_lat"] < 31.35 and 121.35 < profile["home_lon"] < 121.6
        assert normalize_area(profile["area"]) == profile["area"]
        assert re.fullmatch(r"shanghai/[a-z]+/[a-z]+/community-\d+", profile["area"])
        assert profile["languages"][0] == "zh-CN" and set(profile["languages"]) <= {"zh-CN", "wuu"}
        assert isinstance(profile["living_alone"], bool)
        assert profile["timezone"] == "Asia/Shanghai"
        assert PHONE.fullmatch(profile["phone"]) and PHONE.fullmatch(profile["gp_phone"])
        ResidentCreate.model_validate(_as_posted(profile))  # what the API would accept
    sexes = {p.profile["sex"] for p in people}
    assert sexes == {"female", "male"}
    assert len({p.profile["name"] for p in people}) > len(people) * 0.8


def test_everything_a_person_reads_is_chinese_by_default(people: list[Person]) -> None:
    for person in people:
        profile = person.profile
        texts = [profile[k] for k in ("name", "address", "dialect", "medical_notes", "allergies",
                                      "gp_name")]  # fmt: skip
        texts += [t for c in person.contacts for t in (c.name, c.notes)]
        for text in texts:
            assert CJK.search(text) and not LATIN.search(text), text
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,3}", profile["name"])
        assert re.fullmatch(r"上海市\w+区\w+街道\w+?(路|街)\d+弄\d+号\d0\d室", profile["address"])
        assert all(c.language == "zh-CN" for c in person.contacts)


def test_address_area_and_home_agree(people: list[Person]) -> None:
    for person in people:
        _, district, slug, _ = person.profile["area"].split("/")
        street = next(s for s in STREETS if s.slug == slug)
        assert street.district[2] == district
        assert person.profile["address"].startswith(f"上海市{street.district[0]}{street.name[0]}")
        home = (person.profile["home_lat"], person.profile["home_lon"])
        assert distance_m(home, street.centre) < 3000


def test_contacts_are_a_child_maybe_a_neighbour_and_the_care_worker(
    people: list[Person],
) -> None:
    for person in people:
        kinds = [c.relationship for c in person.contacts]
        assert kinds[0] == "family" and kinds[-1] == "community_worker"
        assert 2 <= len(kinds) <= 3 and set(kinds[1:-1]) <= {"neighbour"}
        if person.profile["living_alone"]:
            assert "neighbour" in kinds
        for contact in person.contacts:
            assert contact.area == person.profile["area"]
            assert all(PHONE.fullmatch(phone) for phone in contact.phones)
            ContactCreate.model_validate(  # what the API would accept
                {**contact.fields(), "channels": contact.channel_rows()}
            )
            assert {kind for kind, _ in contact.channels} <= {"sms", "voice"}
    assert any(len(p.contacts) == 3 for p in people) and any(len(p.contacts) == 2 for p in people)


def test_a_community_shares_its_care_worker_and_doctor() -> None:
    by_area: dict[str, list[Person]] = defaultdict(list)
    for person in make_people(plan_fleet(400), seed=7):
        by_area[person.profile["area"]].append(person)
    shared = [group for group in by_area.values() if len(group) > 1]
    assert shared
    for group in shared:
        assert len({p.contacts[-1] for p in group}) == 1
        assert len({p.profile["gp_name"] for p in group}) == 1
        assert group[0].contacts[-1].shared and not group[0].contacts[0].shared


def test_the_ladder_calls_the_nearest_first(people: list[Person]) -> None:
    for person in people:
        ids = [100 + i for i in range(len(person.contacts))]
        steps = person.ladder_steps(ids)
        assert check_ladder(steps, person.repeat) == []
        order = [person.contacts[ids.index(s["contacts"][0])].relationship for s in steps]
        assert order == [r for r in ("neighbour", "community_worker", "family") if r in order]
        assert len(order) == len(person.contacts)


def test_the_home_zone_is_one_the_rules_accept(people: list[Person]) -> None:
    text = DEFAULTS_PATH.read_text(encoding="utf-8")
    overrides = {str(i): p.overrides() for i, p in enumerate(people)}
    assert check(text, overrides) == []
    zone = people[0].zones[0]
    assert zone["name"] == "家"
    assert zone["center"] == [people[0].profile["home_lat"], people[0].profile["home_lon"]]


@pytest.mark.parametrize("kind", ["watch", "watch4g", "phone"])
def test_a_wearer_lives_where_the_fleet_puts_them_and_never_leaves_the_zone(kind: str) -> None:
    """The fleet's own device, built as simulators/fleet.py builds it, for 12 daytime
    hours: every fix is inside the zone by more than the geofence rule's margin."""
    seed = 3
    device_id = dict((k, d) for k, d in plan_fleet(3, {kind: 1}))[kind]
    person = make_person(kind, device_id, seed=seed)
    device = fleet._make_device(kind, device_id, _fleet(seed), start=START)
    assert device.home == device_home(kind, device_id, seed)  # type: ignore[attr-defined]
    zone = person.zones[0]
    fixes = 0
    while (at := device.next_at()) < START + 12 * 3600:
        for message in device.due(at):
            for item in (i for i in message if i["kind"] == "location"):
                margin = max(item["accuracy_m"], 30.0)  # defaults.toml: hysteresis_m
                inside_by = zone["radius_m"] - distance_m(
                    (item["lat"], item["lon"]), zone["center"]
                )
                assert inside_by > margin
                fixes += 1
    assert fixes > 100


def test_devices_without_a_position_get_a_home_all_the_same() -> None:
    assert device_home("button", "button-0001", 1) is None
    person = make_person("button", "button-0001", seed=1)
    assert person.profile["home_lat"] is not None and person.zones[0]["radius_m"] == 500


def test_english_style_names_and_text_same_homes() -> None:
    for kind, device_id in PLAN[:20]:
        zh = make_person(kind, device_id, seed=7)
        en = make_person(kind, device_id, seed=7, style="en")
        assert (en.profile["home_lat"], en.profile["home_lon"], en.profile["area"]) == (
            zh.profile["home_lat"], zh.profile["home_lon"], zh.profile["area"],
        )  # fmt: skip
        assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", en.profile["name"])
        texts = [en.profile["address"], en.profile["medical_notes"], en.profile["gp_name"]]
        texts += [t for c in en.contacts for t in (c.name, c.notes)]
        assert not any(CJK.search(t) for t in texts), texts
        assert en.profile["languages"] == ["en"] and en.zones[0]["name"] == "home"


def test_an_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="style 'fr'"):
        make_person("watch", "watch-0001", style="fr")


START = 1_740_801_600.0  # 2025-03-01 04:00 UTC: noon in Shanghai, the wearer out and about


def _as_posted(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A profile as a client would POST it to /residents."""
    body = {k: v for k, v in profile.items() if k not in ("home_lat", "home_lon", "gp_name",
                                                         "gp_phone")}  # fmt: skip
    body["home"] = {"lat": profile["home_lat"], "lon": profile["home_lon"]}
    body["gp"] = {"name": profile["gp_name"], "phone": profile["gp_phone"]}
    return body


def _fleet(seed: int) -> Any:
    return fleet._Fleet(
        url="mqtt://127.0.0.1:1", protocol="5", seed=seed, sos_mean_interval=180.0,
        stats=FleetStats(), halt=asyncio.Event(), connecting=asyncio.Semaphore(1), secrets={},
    )  # fmt: skip
