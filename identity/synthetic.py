"""A small synthetic person maker with controlled duplicates, for tests and ``bench/``.

Each person gets 1-4 source records (app, pos, taobao, douyin, hotel) with the noise the real
sources show: masked platform phones and receiver names, pinyin-only hotel names, typos, swapped
day/month, missing fields. Names are built from a small character pool (测/样/示 ...) and phones
are ``138xxxxxxxx`` test numbers, so no real person is described. ``make_people`` returns the
records and the true pairs (every pair of records of one person).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pypinyin import lazy_pinyin

from hub.core.pii import mask_phone
from hub.core.records import Address, Gender, Identifier, IdentifierKind, SourceRecord

_SURNAMES = "测样示例试范模演练验王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = (
    "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥春夏秋冬东南西北金木水火土山川河海林森"
    "明华强伟芳娜敏静丽军杰涛超勇艳磊洋平刚桂英玉兰霞峰建国志红梅文斌宇浩然欣怡晨阳光"
)
_LATIN_GIVEN = [
    "ANNA",
    "BEN",
    "CLARA",
    "DAVID",
    "EMMA",
    "FELIX",
    "GRACE",
    "HUGO",
    "IRIS",
    "JONAS",
    "KAI",
    "LENA",
    "MILO",
    "NORA",
    "OSCAR",
    "PAULA",
    "QUINN",
    "ROSA",
    "SAM",
    "TESSA",
]
_LATIN_SUR = [
    "EXAMPLE",
    "SAMPLE",
    "TESTER",
    "DEMO",
    "MUSTER",
    "PROBE",
    "MODEL",
    "TRIAL",
    "SPECIMEN",
    "PLACEHOLDER",
    "FICTION",
    "DUMMY",
]
_PLACES = [
    ("浙江省", "杭州市", "西湖区"),
    ("上海市", "上海市", "浦东新区"),
    ("广东省", "深圳市", "南山区"),
    ("北京市", "北京市", "朝阳区"),
    ("四川省", "成都市", "武侯区"),
    ("江苏省", "南京市", "鼓楼区"),
    ("湖北省", "武汉市", "洪山区"),
    ("陕西省", "西安市", "雁塔区"),
]
_T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _typo(rng: random.Random, text: str, pool: str) -> str:
    i = rng.randrange(len(text))
    return text[:i] + rng.choice(pool) + text[i + 1 :]


def make_people(
    n_records: int, *, seed: int = 7, dup_rate: float = 0.5, latin_rate: float = 0.1
) -> tuple[list[SourceRecord], list[tuple[str, str]]]:
    """About ``n_records`` records; ``dup_rate`` of people appear in more than one source."""
    rng = random.Random(seed)
    records: list[SourceRecord] = []
    truth: list[tuple[str, str]] = []
    person = 0
    while len(records) < n_records:
        person += 1
        latin = rng.random() < latin_rate
        if latin:
            name = f"{rng.choice(_LATIN_GIVEN)} {rng.choice(_LATIN_SUR)}{rng.randrange(100)}"
            pinyin = name
        else:
            name = rng.choice(_SURNAMES) + "".join(
                rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2)))
            )
            pinyin = " ".join(s.upper() for s in lazy_pinyin(name))
        birthday = date(1950, 1, 1) + timedelta(days=rng.randrange(20000))
        phone = f"+86138{person:08d}"
        gender = rng.choice((Gender.FEMALE, Gender.MALE))
        prov, city, dist = rng.choice(_PLACES)
        unionid = f"oUNION{person:020d}"
        copies = 1 if rng.random() >= dup_rate else rng.choice((2, 2, 3, 4))
        sources = rng.sample(["app", "pos", "taobao", "douyin", "hotel"], copies)
        mine = []
        for src in sources:
            seen = _T0 + timedelta(minutes=rng.randrange(500_000))
            nm = name if rng.random() > 0.1 else _typo(rng, name, _GIVEN if not latin else "AEIOU")
            bd = (
                birthday
                if rng.random() > 0.05
                else birthday.replace(day=min(birthday.month, 28), month=min(birthday.day, 12))
            )
            key = f"{src[0]}{person:09d}"
            ids: list[Identifier] = []
            kw: dict[str, Any] = {}
            if src == "app":
                ids = [
                    Identifier(IdentifierKind.WECHAT_UNIONID, unionid),
                    Identifier(
                        IdentifierKind.WECHAT_OPENID, f"oOPEN{person:020d}", scope="wxapp_demo01"
                    ),
                    Identifier(IdentifierKind.PHONE, phone, verified=True, verified_at=seen),
                ]
                kw = {"name": nm, "birthday": bd, "gender": gender, "address": Address(prov, city)}
            elif src == "pos":
                ids = [
                    Identifier(IdentifierKind.CARD_NO, f"88{person:09d}", scope="brand"),
                    Identifier(IdentifierKind.PHONE, phone),
                ]
                kw = {"name": nm, "birthday": bd if rng.random() > 0.3 else None}
            elif src == "taobao":
                ids = [
                    Identifier(IdentifierKind.TAOBAO_OUID, f"AAF{person:025d}", scope="SHOP001"),
                    Identifier(IdentifierKind.PHONE_MASKED, mask_phone(phone)),
                ]
                kw = {
                    "name": nm[0] + "*" * (len(nm) - 1),
                    "address": Address(prov, city, dist, "******"),
                }
            elif src == "douyin":
                masked = phone[3:5] + "*" * 7 + phone[-2:]
                ids = [
                    Identifier(
                        IdentifierKind.DOUYIN_OPEN_ID, f"dyo_{person:018d}", scope="DYSHOP01"
                    ),
                    Identifier(IdentifierKind.PHONE_MASKED, masked),
                ]
                if rng.random() < 0.5:
                    ids.append(
                        Identifier(
                            IdentifierKind.DOUYIN_UNION_ID, f"dyu_{person:018d}", scope="brand"
                        )
                    )
                    ids.append(
                        Identifier(IdentifierKind.PHONE, phone, verified=True, verified_at=seen)
                    )
                kw = {
                    "name": nm[0] + "*" * (len(nm) - 1),
                    "address": Address(prov, city, dist, "******"),
                }
            else:
                ids = [
                    Identifier(IdentifierKind.HOTEL_PROFILE_ID, f"9{person:08d}", scope="opera1"),
                    Identifier(IdentifierKind.EMAIL, f"guest{person}@example.com"),
                    Identifier(IdentifierKind.PHONE, phone),
                ]
                kw = {
                    "name": None if latin else nm,
                    "name_latin": pinyin,
                    "birthday": bd,
                    "gender": gender,
                    "address": Address(prov, city),
                }
            rec = SourceRecord(
                source=src,
                source_key=key,
                business_line=src,
                observed_at=seen,
                identifiers=tuple(ids),
                **kw,
            )
            mine.append(f"{src}:{key}")
            records.append(rec)
        truth.extend((a, b) for i, a in enumerate(mine) for b in mine[i + 1 :])
    return records, truth
