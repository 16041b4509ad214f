from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Address,
    Gender,
    Identifier,
    IdentifierKind,
    Purchase,
    SourceRecord,
)
from hub.flows.ingest import IngestReport, ingest
from hub.flows.ingest.rows import (
    HashMemo,
    _canonical,
    activity_row,
    pii_aad,
    pii_json,
    purchase_row,
    record_row,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _record(**kw: object) -> SourceRecord:
    base: dict[str, object] = {
        "source": "taobao",
        "source_key": "测试买家0000001",
        "business_line": "taobao",
        "observed_at": T0,
        "identifiers": (
            Identifier(IdentifierKind.TAOBAO_NICK, "测试买家0000001"),
            Identifier(IdentifierKind.PHONE_MASKED, "138****0001"),
        ),
        "name": "测*",
        "address": Address(province="浙江省", city="杭州市", district="西湖区", country="CN"),
    }
    base.update(kw)
    return SourceRecord(**base)  # type: ignore[arg-type]


def _reference_pii_json(record: SourceRecord) -> str:
    """The PII JSON as json.dumps writes it: what the hand-built encoder must reproduce."""
    a = record.address
    pii = {
        "name": record.name,
        "name_latin": record.name_latin,
        "birthday": record.birthday.isoformat() if record.birthday else None,
        "address": None
        if a is None
        else {
            "province": a.province,
            "city": a.city,
            "district": a.district,
            "detail": a.detail,
            "country": a.country,
        },
        "identifiers": [
            {"kind": i.kind.value, "value": i.value, "scope": i.scope} for i in record.identifiers
        ],
    }
    return json.dumps(pii, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    "record",
    [
        _record(),
        _record(address=None, identifiers=(), name=None),
        _record(
            name='测试 "引号" \\ 反斜杠\x01\u2028',
            name_latin="Ceshi Jia",
            birthday=date(1990, 1, 2),
            address=Address(detail="示例路 1 号\t2 室", country="CN"),
            identifiers=(
                Identifier(IdentifierKind.WECHAT_OPENID, 'o"TEST\\01', scope="wx\x1fapp"),
                Identifier(IdentifierKind.EMAIL, "ceshi@example.com", verified=True),
            ),
        ),
    ],
)
def test_pii_json_is_the_canonical_json_of_the_record_pii(record: SourceRecord) -> None:
    assert pii_json(record) == _reference_pii_json(record)
    assert json.loads(pii_json(record))["name"] == record.name


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"shipping_fen": 800, "paid_fen": 12900},
        {"paid_fen": 12900, "shipping_fen": 0},
        {"b": -(10**30), "a": 10**30},
        {"a": True, "b": 1},
        {"a": 1, "b": 1.0},
        {'"q"': 1, "é": 2},
        {"e": 1, "é": 2, "a\n": 3},
        {"b": '测试 "引号" \\ \x01\u2028', "a": -3, "c": 0},
        {"refund_time_known": False, "n": 1},
        {"nested": {"z": 1, "a": [1, "x"]}, "f": 1.5, "none": None},
        {2: "int key"},
    ],
)
def test_canonical_json_matches_the_encoder(data: dict[Any, Any]) -> None:
    assert _canonical(data) == json.dumps(
        data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    )


def test_a_record_row_is_the_same_with_a_digest_memo(keyring: KeyRing) -> None:
    memo: HashMemo = {}
    first = record_row(_record(), keyring, memo)
    again = record_row(_record(), keyring, memo)
    assert memo
    assert first.identifiers == again.identifiers
    assert first.identifiers == record_row(_record(), keyring).identifiers


def test_a_record_row_encrypts_its_pii_and_hashes_identifiers(keyring: KeyRing) -> None:
    record = _record()
    row = record_row(record, keyring)
    assert keyring.decrypt(row.pii_enc or "", aad=pii_aad("taobao", record.source_key)) == (
        pii_json(record)
    )
    nick = keyring.hash("taobao_nick", "测试买家0000001")
    assert [(kind, digest) for kind, _, digest, *_ in row.identifiers][0] == ("taobao_nick", nick)
    assert row.content_hash.startswith("h1:")  # keyed, under the current hash key
    assert row.content_hash != keyring.content_digest(pii_json(record))


def test_content_hash_ignores_observation_time_and_sees_every_change(keyring: KeyRing) -> None:
    base = record_row(_record(), keyring).content_hash
    assert record_row(_record(observed_at=T0.replace(year=2027)), keyring).content_hash == base
    changes: list[dict[str, object]] = [
        {"name": "测**"},
        {"gender": Gender.FEMALE},
        {"consents": {"sms": True}},
        {"attributes": {"grade": "金卡"}},
        {"birthday": date(1990, 1, 2)},
        {"business_line": "tmall"},
        {"identifiers": (Identifier(IdentifierKind.TAOBAO_NICK, "测试买家0000001"),)},
        {
            "identifiers": (
                Identifier(IdentifierKind.TAOBAO_NICK, "测试买家0000001", verified=True),
                Identifier(IdentifierKind.PHONE_MASKED, "138****0001"),
            )
        },
    ]
    hashes = {record_row(_record(**c), keyring).content_hash for c in changes}
    assert base not in hashes
    assert len(hashes) == len(changes)


def test_activity_content_hash_sees_status_amount_and_person(keyring: KeyRing) -> None:
    sale = Activity(
        source="taobao",
        external_id="3000000000000000001",
        kind=ActivityKind.PURCHASE,
        business_line="taobao",
        occurred_at=T0,
        status=ActivityStatus.PENDING,
        source_key="测试买家0000001",
        amount_fen=12800,
        quantity=1,
        details={"shipping_fen": 0},
    )
    base = activity_row(sale, keyring)
    assert base.details == '{"shipping_fen":0}'
    variants = [
        replace(sale, status=ActivityStatus.CONFIRMED),
        replace(sale, amount_fen=12801),
        replace(sale, source_key="测试买家0000002"),
        replace(sale, source_key=None),
        replace(sale, details={"shipping_fen": 800}),
    ]
    hashes = {activity_row(v, keyring).content_hash for v in variants}
    assert base.content_hash not in hashes
    assert len(hashes) == len(variants)
    assert activity_row(sale, keyring).content_hash == base.content_hash


async def test_copy_text_round_trips_awkward_characters(db: Database, keyring: KeyRing) -> None:
    key = "键\\N\t制表\n换行\r\\"
    record = _record(
        source="pos", business_line="store", source_key=key, attributes={"note": 'a\\b"c\td'}
    )
    sale = Activity(
        source="pos",
        external_id="S1\t\\N",
        kind=ActivityKind.REFUND,
        business_line="store",
        occurred_at=T0,
        status=ActivityStatus.CONFIRMED,
        source_key=key,
        original_external_id="S0\\",
        details={"memo": "\\n 不是换行"},
    )
    report = IngestReport(connector="pos")
    await ingest(db=db, keyring=keyring, items=[("f", record), ("f", sale)], report=report)
    assert report.total("new") == 2
    async with db.read() as session:
        stored = (
            await session.execute(text("SELECT source_key, attributes FROM source_record"))
        ).one()
        act = (
            await session.execute(
                text("SELECT external_id, source_key, original_external_id, details FROM activity")
            )
        ).one()
    assert tuple(stored) == (key, {"note": 'a\\b"c\td'})
    assert tuple(act) == ("S1\t\\N", key, "S0\\", {"memo": "\\n 不是换行"})


@pytest.mark.parametrize("buyer_key", ["买家甲", "mobile:13800000000", "a\tb\\c", None])
def test_a_purchase_row_is_the_row_of_its_activity(keyring: KeyRing, buyer_key: str | None) -> None:
    when = datetime(2025, 3, 1, 10, 12, 5, tzinfo=ZoneInfo("Asia/Shanghai"))
    buyer = (
        SourceRecord(
            source="taobao", source_key=buyer_key, business_line="taobao", observed_at=when
        )
        if buyer_key
        else None
    )
    for status in ActivityStatus:
        item = Purchase(
            buyer,
            when,
            "taobao",
            "3000000000000000001",
            "taobao",
            when,
            status,
            1150,
            2,
            {"shipping_fen": 50, "paid_fen": 1200},
        )
        assert purchase_row(item, keyring) == activity_row(item.activity(), keyring)


@given(
    st.dictionaries(
        st.text(max_size=4),
        st.one_of(st.integers(), st.booleans(), st.text(max_size=3), st.none()),
        min_size=2,
        max_size=2,
    )
)
def test_canonical_json_of_two_items_matches_the_encoder(data: dict[str, Any]) -> None:
    assert _canonical(data) == json.dumps(
        data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    )
