# ruff: noqa: RUF001 - the Chinese text here uses full-width Chinese punctuation, as it should
"""The people behind the simulated fleet: a resident per device, with the profile, contacts,
escalation ladder and home safe zone a monitoring centre in Shanghai would hold for them.

Pure and seeded, no I/O: the same seed, device id and style give the same person
(carewatch/simulate_people.py writes them into the database).

- Homes agree with the fleet. A watch's or phone's wearer potters about a home the fleet
  draws from the device's own generator (simulators/fleet.py `device_rng`), so the
  resident lives exactly there, and the home zone reaches past how far they roam: the demo
  raises no wandering alert for someone pottering about where they live (a scenario that
  walks a device away still raises a real one). Devices without a position (call buttons,
  door sensors) get a home in one of the streets below.
- Addresses and areas follow the home: the nearest sub-district (街道) of the table below,
  whose centres are approximate WGS-84 positions of real Shanghai sub-districts around the
  fleet's centre (People's Square); roads are real roads of that sub-district, lane and
  room numbers invented. The area is `shanghai/<district>/<street>/community-<n>`
  (api/areas.py), and each community has one care worker and one family doctor, shared by
  its residents, as a real 居委会 does.
- Styles: "zh" (Chinese names and text, the default) or "en" (English-style names and
  English text, for demos to people who read no Chinese: same homes, romanised addresses).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulators.behaviours import Watch
from simulators.fleet import device_rng
from simulators.phone import Phone

__all__ = [
    "FAKE_PHONE_PREFIX",
    "STREETS",
    "STYLES",
    "Contact",
    "Person",
    "device_home",
    "make_people",
    "make_person",
]

STYLES = ("zh", "en")
# Every number here is 11 digits in China's 140 segment, which is allotted to IoT (machine)
# SIMs whose numbers have 13 digits: no person has such an 11-digit number, so a notifier
# wired to a real SMS or voice gateway cannot ring a stranger during a demo.
FAKE_PHONE_PREFIX = "140"
# Ladder waits (s) before the next step: the neighbour is nearest, the community worker
# on duty, the family often far away (migrations/0010_contacts.sql orders the ladder so).
_WAITS = {"neighbour": 120, "community_worker": 180, "family": 300}
_HOME_ZONE_M = 500.0  # a home zone of an ordinary size: the building and the streets near it
_ZONE_MARGIN_M = 200.0  # past the furthest a simulated wearer roams

Pair = tuple[str, str]  # (Chinese, English)


@dataclass(frozen=True)
class _Street:
    name: Pair
    slug: str
    district: tuple[str, str, str]  # Chinese, English, slug
    centre: tuple[float, float]  # WGS-84, approximate
    roads: tuple[Pair, ...]


@dataclass(frozen=True)
class Contact:
    """One of a resident's contacts. `shared`: the community's care worker, one person for
    all its residents (found again by name, relationship and area, not created twice)."""

    name: str
    relationship: str  # family | neighbour | community_worker
    language: str
    phones: tuple[str, ...]
    channels: tuple[Pair, ...]  # (type, address): sms | voice
    area: str
    notes: str
    shared: bool = False

    def fields(self) -> dict[str, Any]:
        """The contacts table's columns (devices/contacts.py CONTACT_COLUMNS)."""
        return {
            "name": self.name,
            "relationship": self.relationship,
            "language": self.language,
            "phones": list(self.phones),
            "area": self.area,
            "notes": self.notes,
        }

    def channel_rows(self) -> list[dict[str, Any]]:
        return [
            {"type": kind, "address": address, "secret": None} for kind, address in self.channels
        ]


@dataclass(frozen=True)
class Person:
    """A simulated resident: `profile` in devices/residents.py PROFILE_COLUMNS, the
    ladder as steps of indices into `contacts` with their waits, the safe zones as the
    geofence rule stores them."""

    device_id: str
    profile: Mapping[str, Any]
    contacts: tuple[Contact, ...]
    ladder: tuple[tuple[tuple[int, ...], int], ...]
    repeat: int
    zones: tuple[Mapping[str, Any], ...]

    def ladder_steps(self, contact_ids: Sequence[int]) -> list[dict[str, Any]]:
        """The ladder for devices/contacts.py `set_ladder`, given the stored contacts' ids
        (in the order of `contacts`)."""
        return [
            {"contacts": [contact_ids[i] for i in who], "schedules": [], "wait_s": wait}
            for who, wait in self.ladder
        ]

    def overrides(self) -> dict[str, Any]:
        """The resident's rule overrides: their home safe zone."""
        return {"geofence": {"zones": [dict(zone) for zone in self.zones]}}


def device_home(kind: str, device_id: str, seed: int) -> tuple[float, float] | None:
    """Where the fleet's device of this kind and id lives (WGS-84), or None for a device
    that reports no position: the same class from the same generator as simulators/fleet.py
    builds the device with (tests/unit/test_people.py checks the two agree)."""
    if kind in ("watch", "watch4g"):
        return Watch(device_id, rng=device_rng(seed, device_id), start=0.0).home
    if kind == "phone":
        return Phone(device_id, rng=device_rng(seed, device_id), start=0.0).home
    return None


def _roam_m(kind: str) -> float:
    return {"watch": Watch.ROAM_M, "watch4g": Watch.ROAM_M, "phone": Phone.ROAM_M}.get(kind, 0.0)


def make_people(
    plan: Iterable[tuple[str, str]], *, seed: int = 1, style: str = "zh"
) -> list[Person]:
    """A person for each (type, device_id) of a fleet plan (simulators/fleet.py)."""
    return [make_person(kind, device_id, seed=seed, style=style) for kind, device_id in plan]


def make_person(kind: str, device_id: str, *, seed: int = 1, style: str = "zh") -> Person:
    """The resident who wears or keeps this device."""
    if style not in STYLES:
        raise ValueError(f"style {style!r}: one of {', '.join(STYLES)}")
    en = style == "en"
    rng = random.Random(f"{seed}/person/{device_id}")
    street, home = _home(kind, device_id, seed, rng)
    area = f"shanghai/{street.district[2]}/{street.slug}/community-{rng.randint(1, 12)}"
    profile = _profile(rng, en, street, home, area, seed)
    contacts = _contacts(rng, en, profile, area, seed)
    ladder = tuple(
        ((i,), _WAITS[contact.relationship])
        for i, contact in sorted(enumerate(contacts), key=lambda pair: _WAITS[pair[1].relationship])
    )
    radius = max(_HOME_ZONE_M, _roam_m(kind) + _ZONE_MARGIN_M)
    zone = {"name": "home" if en else "家", "center": [*home], "radius_m": radius}
    return Person(device_id, profile, contacts, ladder, 1, (zone,))


def _home(
    kind: str, device_id: str, seed: int, rng: random.Random
) -> tuple[_Street, tuple[float, float]]:
    """The street and the home (rounded as the devices round positions)."""
    home = device_home(kind, device_id, seed)
    if home is None:
        street = rng.choice(STREETS)
        lat, lon = street.centre
        home = (lat + rng.uniform(-0.004, 0.004), lon + rng.uniform(-0.004, 0.004))
    else:
        street = min(STREETS, key=lambda s: _distance_m(s.centre, home))
    return street, (round(home[0], 6), round(home[1], 6))


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    # Flat-earth metres: good to a fraction of a percent over the few km that matter here.
    north = (a[0] - b[0]) * 111_320.0
    east = (a[1] - b[1]) * 111_320.0 * math.cos(math.radians(a[0]))
    return math.hypot(north, east)


def _profile(
    rng: random.Random,
    en: bool,
    street: _Street,
    home: tuple[float, float],
    area: str,
    seed: int,
) -> dict[str, Any]:
    sex = "female" if rng.random() < 0.58 else "male"  # women outlive men: most are women
    languages, dialect = _speech(rng, en)
    gp_name, gp_phone = _gp(street, area, seed, en)
    return {
        "name": _name(rng, en, sex, elder=True),
        "sex": sex,
        "birth_year": round(rng.triangular(1928, 1955, 1948)),
        "address": _address(rng, en, street),
        "home_lat": home[0],
        "home_lon": home[1],
        "phone": _phone(rng),
        "area": area,
        "languages": languages,
        "dialect": dialect,
        "living_alone": rng.random() < 0.4,
        "medical_notes": _pick_some(rng, en, MEDICAL, 1, 3),
        "allergies": _allergies(rng, en),
        "gp_name": gp_name,
        "gp_phone": gp_phone,
        "timezone": "Asia/Shanghai",
    }


def _contacts(
    rng: random.Random, en: bool, profile: Mapping[str, Any], area: str, seed: int
) -> tuple[Contact, ...]:
    """Family (a child), a neighbour (always for those living alone), the community's
    care worker."""
    found = [_child(rng, en, profile, area)]
    if profile["living_alone"] or rng.random() < 0.5:
        notes = _text(rng.choice(NEIGHBOUR_NOTES), en)
        name = _name(rng, en, rng.choice(("female", "male")))
        found.append(_reachable(name, "neighbour", en, _phone(rng), ("voice",), area, notes))
    found.append(_worker(area, seed, en))
    return tuple(found)


def _child(rng: random.Random, en: bool, profile: Mapping[str, Any], area: str) -> Contact:
    daughter = rng.random() < 0.55
    # A child has their father's surname: the resident's if he is the father.
    surname = None if profile["sex"] == "female" else _surname_of(profile["name"], en)
    name = _name(rng, en, "female" if daughter else "male", surname=surname)
    where = _text(rng.choice(CHILD_LIVES), en)
    if en:
        notes = f"{'Daughter' if daughter else 'Son'}, {where}"
    else:
        notes = f"{'女儿' if daughter else '儿子'}，{where}"
    return _reachable(name, "family", en, _phone(rng), ("voice", "sms"), area, notes)


def _worker(area: str, seed: int, en: bool) -> Contact:
    """The community's care worker: the same person for every resident of `area`."""
    rng = random.Random(f"{seed}/worker/{area}")
    name, phone = _name(rng, en, rng.choice(("female", "male"))), _phone(rng)
    number = int(area.rsplit("-", 1)[1])
    if en:
        notes = f"Care worker of residents' committee no. {number}, weekdays 8:30-17:00"
    else:
        notes = f"第{_NUMERALS[number]}居委会助老员，工作日 8:30–17:00"
    return _reachable(
        name, "community_worker", en, phone, ("voice", "sms"), area, notes, shared=True
    )


def _reachable(
    name: str,
    relationship: str,
    en: bool,
    phone: str,
    via: tuple[str, ...],
    area: str,
    notes: str,
    *,
    shared: bool = False,
) -> Contact:
    """A contact with one phone, reached on it by each channel type in `via`."""
    channels = tuple((kind, phone) for kind in via)
    language = "en" if en else "zh-CN"
    return Contact(name, relationship, language, (phone,), channels, area, notes, shared)


def _gp(street: _Street, area: str, seed: int, en: bool) -> tuple[str, str]:
    """The community's family doctor (家庭医生) at its health centre."""
    rng = random.Random(f"{seed}/gp/{area}")
    name = _name(rng, en, rng.choice(("female", "male")))
    if en:
        return f"Dr {name} ({street.name[1]} Community Health Centre)", _phone(rng)
    return f"{name}（{street.district[0]}{street.name[0]}社区卫生服务中心）", _phone(rng)


def _speech(rng: random.Random, en: bool) -> tuple[list[str], str | None]:
    """Languages, best understood first, and how they speak."""
    if en:
        return ["en"], rng.choice((None, "speaks slowly", "hard of hearing: speak up"))
    draw = rng.random()
    if draw < 0.75:  # most older Shanghainese speak the city's Wu first
        return ["zh-CN", "wuu"], rng.choice(
            ("上海话", "上海话，普通话听得懂、说得慢", "上海话（浦东口音）")
        )
    if draw < 0.85:
        return ["zh-CN", "wuu"], "宁波话"
    return ["zh-CN"], rng.choice(("普通话", "苏北话", "普通话，山东口音"))


def _allergies(rng: random.Random, en: bool) -> str:
    if rng.random() < 0.5:
        return "No known allergies" if en else "无已知过敏"
    return _pick_some(rng, en, ALLERGIES, 1, 2)


def _pick_some(rng: random.Random, en: bool, table: Sequence[Pair], low: int, high: int) -> str:
    chosen = rng.sample(table, rng.randint(low, high))
    return ("; " if en else "；").join(_text(item, en) for item in chosen)


def _address(rng: random.Random, en: bool, street: _Street) -> str:
    road = rng.choice(street.roads)
    lane, number = rng.randint(1, 1200), rng.randint(1, 60)
    room = f"{rng.randint(1, 6)}0{rng.randint(1, 4)}"  # six floors: the old estates' walk-ups
    if en:
        return (
            f"Room {room}, No. {number}, Lane {lane} {road[1]}, {street.name[1]}, "
            f"{street.district[1]}, Shanghai"
        )
    return f"上海市{street.district[0]}{street.name[0]}{road[0]}{lane}弄{number}号{room}室"


def _phone(rng: random.Random) -> str:
    return f"{FAKE_PHONE_PREFIX}{rng.randrange(10**8):08d}"


def _name(
    rng: random.Random, en: bool, sex: str, *, elder: bool = False, surname: str | None = None
) -> str:
    if en:
        given = (EN_ELDER if elder else EN_ADULT)[sex]
        return f"{rng.choice(given)} {surname or rng.choice(EN_SURNAMES)}"
    given = (ZH_ELDER if elder else ZH_ADULT)[sex]
    return f"{surname or rng.choice(ZH_SURNAMES)}{rng.choice(given)}"


def _surname_of(name: str, en: bool) -> str:
    # Chinese surnames here are one character; children take their father's.
    return name.rsplit(" ", 1)[1] if en else name[0]


def _text(pair: Pair, en: bool) -> str:
    return pair[1] if en else pair[0]


_NUMERALS = ("零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二")

# Common in Shanghai, the most common more than once (so drawn more often).
ZH_SURNAMES = tuple("王王张张李李陈陈徐徐朱周沈陆顾吴黄钱孙杨胡金蒋姚施曹邵唐俞许")
# Given names of people born 1928-1955 (-娣 and -宝 are Shanghai's own), and of their
# children's and neighbours' generation.
ZH_ELDER: dict[str, tuple[str, ...]] = {
    "female": ("秀英", "桂英", "秀兰", "玉兰", "桂兰", "凤英", "美华", "丽华", "素珍", "月英",
               "金凤", "佩华", "宝珍", "雪琴", "惠芳", "淑芬", "翠英", "玉珍", "凤娣", "杏娣",
               "彩娣", "美娟", "琴芳", "秀珍", "根娣"),
    "male": ("建国", "国强", "志明", "德明", "永康", "根宝", "福根", "金宝", "建华", "国平",
             "伟民", "振华", "家富", "荣根", "文彬", "志刚", "海生", "福生", "雪根", "龙根",
             "金荣", "国良", "德华", "明德", "宝根"),
}  # fmt: skip
ZH_ADULT: dict[str, tuple[str, ...]] = {
    "female": ("丽娟", "红梅", "海燕", "敏", "静", "晓燕", "慧", "雯", "琳", "颖", "佳", "美玲",
               "春燕", "丽萍"),
    "male": ("伟", "军", "勇", "磊", "晓东", "建军", "卫东", "志强", "晓明", "文杰", "斌", "俊",
             "海峰", "国庆"),
}  # fmt: skip
EN_SURNAMES = ("Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Thomas", "Johnson",
               "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes",
               "Edwards", "Green", "Hall", "Wood", "Harris", "Clarke", "Lewis")  # fmt: skip
EN_ELDER: dict[str, tuple[str, ...]] = {
    "female": ("Dorothy", "Margaret", "Joan", "Betty", "Irene", "Edith", "Doris", "Jean",
               "Eileen", "Audrey", "Shirley", "Patricia", "Barbara", "Joyce", "Hazel", "Mavis"),
    "male": ("Harold", "Arthur", "Albert", "Walter", "George", "Frank", "Ernest", "Kenneth",
             "Leonard", "Stanley", "Ronald", "Dennis", "Raymond", "Bernard", "Donald", "Frederick"),
}  # fmt: skip
EN_ADULT: dict[str, tuple[str, ...]] = {
    "female": ("Susan", "Karen", "Julie", "Helen", "Sarah", "Claire", "Alison", "Nicola"),
    "male": ("Michael", "David", "Paul", "Mark", "Andrew", "Steven", "Richard", "Ian"),
}

MEDICAL: tuple[Pair, ...] = (
    ("高血压", "Hypertension"),
    ("2型糖尿病", "Type 2 diabetes"),
    ("轻度认知障碍", "Mild cognitive impairment"),
    ("冠心病", "Coronary heart disease"),
    ("慢性阻塞性肺病", "COPD"),
    ("骨质疏松", "Osteoporosis"),
    ("膝骨关节炎", "Osteoarthritis of the knees"),
    ("心房颤动，服华法林", "Atrial fibrillation, on warfarin"),
    ("脑卒中后左侧肢体无力", "Left-side weakness after a stroke"),
    ("帕金森病", "Parkinson's disease"),
    ("听力下降，戴助听器", "Hard of hearing, wears a hearing aid"),
    ("慢性肾病3期", "Chronic kidney disease, stage 3"),
)
ALLERGIES: tuple[Pair, ...] = (
    ("青霉素", "Penicillin"),
    ("头孢类抗生素", "Cephalosporins"),
    ("磺胺类药物", "Sulfonamides"),
    ("阿司匹林", "Aspirin"),
    ("海鲜", "Seafood"),
    ("花粉", "Pollen"),
)
CHILD_LIVES: tuple[Pair, ...] = (
    ("住闵行区", "lives in Minhang"),
    ("住浦东新区", "lives in Pudong"),
    ("住宝山区", "lives in Baoshan"),
    ("住松江区", "lives in Songjiang"),
    ("住同一小区", "lives on the same estate"),
    ("在外地工作，周末回来", "works in another city, home at weekends"),
)
NEIGHBOUR_NOTES: tuple[Pair, ...] = (
    ("楼上邻居，有备用钥匙", "Upstairs neighbour, has a spare key"),
    ("对门邻居", "Neighbour across the landing"),
    ("隔壁邻居，白天在家", "Next-door neighbour, at home in the daytime"),
    ("楼组长，有备用钥匙", "Building representative, has a spare key"),
)

_HUANGPU = ("黄浦区", "Huangpu District", "huangpu")
_JINGAN = ("静安区", "Jing'an District", "jingan")
_XUHUI = ("徐汇区", "Xuhui District", "xuhui")
_CHANGNING = ("长宁区", "Changning District", "changning")
_PUTUO = ("普陀区", "Putuo District", "putuo")
_HONGKOU = ("虹口区", "Hongkou District", "hongkou")
_PUDONG = ("浦东新区", "Pudong New Area", "pudong")


def _street(
    zh: str, en: str, slug: str, district: tuple[str, str, str], centre: tuple[float, float],
    roads: str,
) -> _Street:  # fmt: skip
    """A table row; `roads` as "中文/English;…"."""
    pairs: list[Pair] = []
    for road in roads.split(";"):
        zh_road, en_road = road.split("/")
        pairs.append((zh_road, en_road))
    return _Street((zh, en), slug, district, centre, tuple(pairs))


# The sub-districts around People's Square, where the fleet's homes lie (within ~4 km).
STREETS: tuple[_Street, ...] = (
    _street("南京东路街道", "Nanjing East Road Subdistrict", "nanjingdong", _HUANGPU,
            (31.2380, 121.4800), "福建中路/Middle Fujian Road;浙江中路/Middle Zhejiang Road;"
            "山西南路/South Shanxi Road;牛庄路/Niuzhuang Road"),
    _street("外滩街道", "The Bund Subdistrict", "waitan", _HUANGPU, (31.2310, 121.4880),
            "四川中路/Middle Sichuan Road;江西中路/Middle Jiangxi Road;宁波路/Ningbo Road;"
            "金陵东路/East Jinling Road"),
    _street("豫园街道", "Yuyuan Subdistrict", "yuyuan", _HUANGPU, (31.2250, 121.4890),
            "福佑路/Fuyou Road;旧校场路/Jiujiaochang Road;方浜中路/Middle Fangbang Road;"
            "人民路/Renmin Road"),
    _street("小东门街道", "Xiaodongmen Subdistrict", "xiaodongmen", _HUANGPU,
            (31.2180, 121.4960), "中华路/Zhonghua Road;复兴东路/East Fuxing Road;"
            "董家渡路/Dongjiadu Road;会馆街/Huiguan Street"),
    _street("老西门街道", "Laoximen Subdistrict", "laoximen", _HUANGPU, (31.2170, 121.4800),
            "西藏南路/South Xizang Road;方斜路/Fangxie Road;大兴街/Daxing Street;"
            "复兴中路/Middle Fuxing Road"),
    _street("半淞园路街道", "Bansongyuan Road Subdistrict", "bansongyuan", _HUANGPU,
            (31.2050, 121.4930), "半淞园路/Bansongyuan Road;普育东路/East Puyu Road;"
            "制造局路/Zhizaoju Road;南车站路/Nanchezhan Road"),
    _street("五里桥街道", "Wuliqiao Subdistrict", "wuliqiao", _HUANGPU, (31.1990, 121.4770),
            "瞿溪路/Quxi Road;蒙自路/Mengzi Road;鲁班路/Luban Road;龙华东路/East Longhua Road"),
    _street("打浦桥街道", "Dapuqiao Subdistrict", "dapuqiao", _HUANGPU, (31.2060, 121.4670),
            "建国中路/Middle Jianguo Road;徐家汇路/Xujiahui Road;局门路/Jumen Road;"
            "丽园路/Liyuan Road"),
    _street("淮海中路街道", "Middle Huaihai Road Subdistrict", "huaihaizhong", _HUANGPU,
            (31.2200, 121.4690), "顺昌路/Shunchang Road;马当路/Madang Road;自忠路/Zizhong Road;"
            "淡水路/Danshui Road"),
    _street("瑞金二路街道", "Ruijin No. 2 Road Subdistrict", "ruijinerlu", _HUANGPU,
            (31.2120, 121.4590), "瑞金二路/Ruijin No. 2 Road;永嘉路/Yongjia Road;"
            "陕西南路/South Shaanxi Road;建国西路/West Jianguo Road"),
    _street("南京西路街道", "Nanjing West Road Subdistrict", "nanjingxi", _JINGAN,
            (31.2310, 121.4590), "威海路/Weihai Road;茂名北路/North Maoming Road;"
            "石门一路/Shimen No. 1 Road;吴江路/Wujiang Road"),
    _street("静安寺街道", "Jing'an Temple Subdistrict", "jingansi", _JINGAN,
            (31.2250, 121.4460), "愚园路/Yuyuan Road;常德路/Changde Road;华山路/Huashan Road;"
            "乌鲁木齐北路/North Urumqi Road"),
    _street("江宁路街道", "Jiangning Road Subdistrict", "jiangning", _JINGAN,
            (31.2400, 121.4480), "江宁路/Jiangning Road;康定路/Kangding Road;"
            "昌平路/Changping Road;西康路/Xikang Road"),
    _street("石门二路街道", "Shimen No. 2 Road Subdistrict", "shimenerlu", _JINGAN,
            (31.2380, 121.4610), "石门二路/Shimen No. 2 Road;新闸路/Xinzha Road;"
            "北京西路/West Beijing Road;大田路/Datian Road"),
    _street("曹家渡街道", "Caojiadu Subdistrict", "caojiadu", _JINGAN, (31.2320, 121.4330),
            "万航渡路/Wanhangdu Road;武定西路/West Wuding Road;余姚路/Yuyao Road"),
    _street("天目西路街道", "West Tianmu Road Subdistrict", "tianmuxi", _JINGAN,
            (31.2480, 121.4560), "天目中路/Middle Tianmu Road;大统路/Datong Road;"
            "恒丰路/Hengfeng Road"),
    _street("北站街道", "Beizhan Subdistrict", "beizhan", _JINGAN, (31.2460, 121.4740),
            "浙江北路/North Zhejiang Road;海宁路/Haining Road;河南北路/North Henan Road"),
    _street("宝山路街道", "Baoshan Road Subdistrict", "baoshan", _JINGAN, (31.2560, 121.4710),
            "宝山路/Baoshan Road;宝昌路/Baochang Road;虬江路/Qiujiang Road"),
    _street("芷江西路街道", "West Zhijiang Road Subdistrict", "zhijiangxi", _JINGAN,
            (31.2580, 121.4580), "芷江西路/West Zhijiang Road;中华新路/Zhonghua Xin Road;"
            "交通路/Jiaotong Road"),
    _street("共和新路街道", "Gonghe Xin Road Subdistrict", "gonghexin", _JINGAN,
            (31.2680, 121.4560), "共和新路/Gonghe Xin Road;延长中路/Middle Yanchang Road;"
            "平型关路/Pingxingguan Road"),
    _street("天平路街道", "Tianping Road Subdistrict", "tianping", _XUHUI, (31.2050, 121.4410),
            "天平路/Tianping Road;宛平路/Wanping Road;衡山路/Hengshan Road;"
            "建国西路/West Jianguo Road"),
    _street("湖南路街道", "Hunan Road Subdistrict", "hunan", _XUHUI, (31.2130, 121.4430),
            "湖南路/Hunan Road;武康路/Wukang Road;五原路/Wuyuan Road;复兴西路/West Fuxing Road"),
    _street("徐家汇街道", "Xujiahui Subdistrict", "xujiahui", _XUHUI, (31.1920, 121.4360),
            "漕溪北路/North Caoxi Road;南丹东路/East Nandan Road;天钥桥路/Tianyaoqiao Road;"
            "虹桥路/Hongqiao Road"),
    _street("斜土路街道", "Xietu Road Subdistrict", "xietu", _XUHUI, (31.1970, 121.4520),
            "斜土路/Xietu Road;零陵路/Lingling Road;宛平南路/South Wanping Road;"
            "大木桥路/Damuqiao Road"),
    _street("枫林路街道", "Fenglin Road Subdistrict", "fenglin", _XUHUI, (31.1930, 121.4600),
            "枫林路/Fenglin Road;东安路/Dong'an Road;医学院路/Yixueyuan Road;"
            "平江路/Pingjiang Road"),
    _street("华阳路街道", "Huayang Road Subdistrict", "huayang", _CHANGNING,
            (31.2200, 121.4240), "华阳路/Huayang Road;安化路/Anhua Road;镇宁路/Zhenning Road;"
            "长宁路/Changning Road"),
    _street("江苏路街道", "Jiangsu Road Subdistrict", "jiangsu", _CHANGNING,
            (31.2200, 121.4340), "江苏路/Jiangsu Road;愚园路/Yuyuan Road;武夷路/Wuyi Road"),
    _street("长寿路街道", "Changshou Road Subdistrict", "changshou", _PUTUO,
            (31.2430, 121.4400), "长寿路/Changshou Road;胶州路/Jiaozhou Road;"
            "莫干山路/Moganshan Road"),
    _street("宜川路街道", "Yichuan Road Subdistrict", "yichuan", _PUTUO, (31.2580, 121.4400),
            "宜川路/Yichuan Road;陕西北路/North Shaanxi Road;中潭路/Zhongtan Road"),
    _street("北外滩街道", "North Bund Subdistrict", "beiwaitan", _HONGKOU,
            (31.2500, 121.4970), "东大名路/East Daming Road;长治路/Changzhi Road;"
            "唐山路/Tangshan Road;海门路/Haimen Road"),
    _street("四川北路街道", "North Sichuan Road Subdistrict", "sichuanbei", _HONGKOU,
            (31.2580, 121.4840), "四川北路/North Sichuan Road;多伦路/Duolun Road;"
            "山阴路/Shanyin Road;溧阳路/Liyang Road"),
    _street("嘉兴路街道", "Jiaxing Road Subdistrict", "jiaxing", _HONGKOU, (31.2600, 121.4940),
            "嘉兴路/Jiaxing Road;海伦路/Hailun Road;东宝兴路/East Baoxing Road;"
            "周家嘴路/Zhoujiazui Road"),
    _street("欧阳路街道", "Ouyang Road Subdistrict", "ouyang", _HONGKOU, (31.2700, 121.4880),
            "欧阳路/Ouyang Road;大连西路/West Dalian Road;祥德路/Xiangde Road"),
    _street("广中路街道", "Guangzhong Road Subdistrict", "guangzhong", _HONGKOU,
            (31.2740, 121.4740), "广中路/Guangzhong Road;水电路/Shuidian Road;"
            "广灵二路/Guangling No. 2 Road"),
    _street("陆家嘴街道", "Lujiazui Subdistrict", "lujiazui", _PUDONG, (31.2340, 121.5080),
            "东昌路/Dongchang Road;浦东南路/South Pudong Road;崂山路/Laoshan Road;"
            "福山路/Fushan Road"),
    _street("潍坊新村街道", "Weifang Xincun Subdistrict", "weifang", _PUDONG,
            (31.2270, 121.5230), "潍坊路/Weifang Road;南泉北路/North Nanquan Road;"
            "源深路/Yuanshen Road"),
    _street("塘桥街道", "Tangqiao Subdistrict", "tangqiao", _PUDONG, (31.2130, 121.5150),
            "塘桥新路/Tangqiao Xin Road;浦建路/Pujian Road;蓝村路/Lancun Road"),
    _street("南码头路街道", "Nanmatou Road Subdistrict", "nanmatou", _PUDONG,
            (31.2030, 121.5060), "南码头路/Nanmatou Road;临沂路/Linyi Road;"
            "浦东南路/South Pudong Road"),
    _street("洋泾街道", "Yangjing Subdistrict", "yangjing", _PUDONG, (31.2450, 121.5250),
            "羽山路/Yushan Road;博山东路/East Boshan Road;崮山路/Gushan Road"),
)  # fmt: skip
