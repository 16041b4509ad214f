import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors import douyin_members
from hub.core.errors import ImportFormatError
from hub.core.records import (
    Activity,
    ActivityKind,
    Identifier,
    IdentifierKind,
    RowError,
    SourceRecord,
)

SAMPLE = Path(__file__).parent / "samples" / "douyin_members.csv"
SH = ZoneInfo("Asia/Shanghai")


def parse_sample(**kw):
    with SAMPLE.open("rb") as f:
        return list(douyin_members.parse(f, filename=SAMPLE.name, **kw))


def of(items, cls):
    return [p for p in items if isinstance(p, cls)]


def test_member_has_shop_scoped_open_id_brand_scoped_union_id_and_verified_phone():
    first = of(parse_sample(), SourceRecord)[0]
    joined = datetime(2024, 6, 3, 10, 0, tzinfo=SH)
    assert first.source == "douyin"
    assert first.source_key == "DYSHOP01:dyo_000000000000000001"
    assert first.identifiers == (
        Identifier(IdentifierKind.DOUYIN_OPEN_ID, "dyo_000000000000000001", scope="DYSHOP01"),
        Identifier(IdentifierKind.DOUYIN_UNION_ID, "dyu_000000000000000001", scope="brand"),
        Identifier(IdentifierKind.PHONE, "+8613800000001", verified=True, verified_at=joined),
    )
    assert first.attributes == {"shop_id": "DYSHOP01", "is_member": "true", "platform": "douyin"}


def test_same_union_id_in_two_shops_shares_the_brand_identifier():
    records = of(parse_sample(), SourceRecord)
    unions = [
        i for r in records[:2] for i in r.identifiers if i.kind is IdentifierKind.DOUYIN_UNION_ID
    ]
    assert unions[0] == unions[1]
    assert records[0].source_key != records[1].source_key


def test_encrypted_mobile_is_not_kept():
    second = of(parse_sample(), SourceRecord)[1]
    assert [i.kind for i in second.identifiers] == [
        IdentifierKind.DOUYIN_OPEN_ID,
        IdentifierKind.DOUYIN_UNION_ID,
    ]
    assert "#cipher-example#" not in second.attributes.values()


def test_union_only_row_is_keyed_by_brand_and_gets_no_signup():
    parsed = parse_sample(brand="GROUP01")
    record = next(r for r in of(parsed, SourceRecord) if r.source_key.startswith("union:"))
    assert record.source_key == "union:GROUP01:dyu_000000000000000002"
    assert record.attributes["is_member"] == "false"
    assert record.identifiers == (
        Identifier(IdentifierKind.DOUYIN_UNION_ID, "dyu_000000000000000002", scope="GROUP01"),
    )


def test_signups_only_for_members_with_join_time():
    signups = of(parse_sample(), Activity)
    assert [a.external_id for a in signups] == [
        "member:DYSHOP01:dyo_000000000000000001",
        "member:DYSHOP02:dyo_000000000000000099",
        "member:DYSHOP01:dyo_000000000000000006",
    ]
    assert all(a.kind is ActivityKind.SIGNUP for a in signups)
    assert signups[0].source_key == "DYSHOP01:dyo_000000000000000001"


def test_bad_rows_and_ignored_phone_are_reported():
    errors = of(parse_sample(), RowError)
    assert [(e.line, e.column, e.code) for e in errors] == [
        (5, "is_member", "BAD_ROW"),
        (6, "shop_id", "BAD_ROW"),
        (7, "mobile", "FIELD_IGNORED"),
        (8, "open_id", "BAD_ROW"),
    ]


def test_brand_id_column_scopes_union_ids():
    data = (
        b"shop_id,brand_id,open_id,union_id,is_member,joined_at\n"
        b"S1,B9,dyo_1,dyu_1,1,2024-06-03 10:00:00\n"
    )
    record = of(list(douyin_members.parse(io.BytesIO(data), filename="m.csv")), SourceRecord)[0]
    assert Identifier(IdentifierKind.DOUYIN_UNION_ID, "dyu_1", scope="B9") in record.identifiers


def test_taobao_member_file_given_to_douyin_members_is_rejected():
    data = b"platform,shop_id,ouid,omid,mix_nick\n"
    with pytest.raises(ImportFormatError, match="open_id, union_id"):
        list(douyin_members.parse(io.BytesIO(data), filename="tmall.csv"))


def test_looks_like_members():
    assert douyin_members.looks_like(["platform", "shop_id", "open_id", "union_id"])
    assert not douyin_members.looks_like(["platform", "shop_id", "ouid", "mix_nick"])
