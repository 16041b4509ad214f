import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors import taobao_members
from hub.core.errors import ImportFormatError
from hub.core.records import (
    Activity,
    ActivityKind,
    Identifier,
    IdentifierKind,
    RowError,
    SourceRecord,
)

SAMPLE = Path(__file__).parent / "samples" / "taobao_members.csv"
SH = ZoneInfo("Asia/Shanghai")


def parse_sample():
    with SAMPLE.open("rb") as f:
        return list(taobao_members.parse(f, filename=SAMPLE.name))


def of(items, cls):
    return [p for p in items if isinstance(p, cls)]


def test_member_with_consented_mobile_has_shop_scoped_ids_and_verified_phone():
    assert SAMPLE.read_bytes().startswith(b"\xef\xbb\xbf")
    first = of(parse_sample(), SourceRecord)[0]
    joined = datetime(2024, 5, 1, 9, 0, tzinfo=SH)
    assert first.source == "taobao"
    assert first.source_key == "AAF0000000000000000000000001"
    assert first.observed_at == joined
    assert first.identifiers == (
        Identifier(IdentifierKind.TAOBAO_OUID, "AAF0000000000000000000000001", scope="SHOP001"),
        Identifier(IdentifierKind.TAOBAO_OMID, "AAM0000000000000000000000001", scope="SHOP001"),
        Identifier(IdentifierKind.TAOBAO_MIX_NICK, "t**1_mix", scope="SHOP001"),
        Identifier(IdentifierKind.PHONE, "+8613800000001", verified=True, verified_at=joined),
    )
    assert first.attributes == {
        "shop_id": "SHOP001",
        "platform": "tmall",
        "grade": "1",
        "bind_status": "register",
    }


def test_unkeyed_mobile_hash_is_not_kept():
    digest = "ab" * 32
    assert digest.encode() in SAMPLE.read_bytes()
    for record in of(parse_sample(), SourceRecord):
        assert all(i.value != digest for i in record.identifiers)
        assert digest not in record.attributes.values()


def test_member_without_mobile_has_no_phone():
    second = of(parse_sample(), SourceRecord)[1]
    assert [i.kind for i in second.identifiers] == [
        IdentifierKind.TAOBAO_OUID,
        IdentifierKind.TAOBAO_MIX_NICK,
    ]
    assert second.attributes["bind_status"] == "bind"


def test_signup_activity_per_member_with_join_time():
    signups = of(parse_sample(), Activity)
    assert [a.external_id for a in signups] == [
        "member:SHOP001:AAF0000000000000000000000001",
        "member:SHOP001:AAF0000000000000000000000002",
    ]
    assert all(a.kind is ActivityKind.SIGNUP and a.amount_fen == 0 for a in signups)
    assert signups[1].occurred_at == datetime(2024, 5, 2, 18, 30, tzinfo=SH)


def test_bad_rows_and_ignored_phone_are_reported():
    errors = of(parse_sample(), RowError)
    assert [(e.line, e.column, e.code) for e in errors] == [
        (4, "ouid", "BAD_ROW"),
        (5, "bind_status", "BAD_ROW"),
        (6, "mobile", "FIELD_IGNORED"),
        (7, "joined_at", "BAD_ROW"),
    ]
    assert "13800000003" not in (errors[0].raw or "")


def test_member_without_join_time_is_kept_without_signup():
    records = of(parse_sample(), SourceRecord)
    no_join = next(r for r in records if r.source_key.endswith("05"))
    assert no_join.observed_at.tzinfo is not None
    assert [i.kind for i in no_join.identifiers] == [IdentifierKind.TAOBAO_OUID]


def test_order_export_given_to_members_is_rejected():
    data = "订单编号,买家会员名,买家实际支付金额\n".encode("gbk")
    with pytest.raises(ImportFormatError, match="shop_id, ouid"):
        list(taobao_members.parse(io.BytesIO(data), filename="orders.csv"))


def test_looks_like_members():
    assert taobao_members.looks_like(["\ufeffplatform", "shop_id", "ouid", "omid", "mix_nick"])
    assert not taobao_members.looks_like(["platform", "shop_id", "open_id", "union_id"])
