import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connectors import pos
from hub.core.errors import ImportFormatError
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Gender,
    IdentifierKind,
    RowError,
    SourceRecord,
)

SAMPLES = Path(__file__).parent / "samples"
FIXED = datetime(2024, 12, 31, tzinfo=UTC)


def _parse(name: str) -> list:
    with (SAMPLES / name).open("rb") as fh:
        return list(pos.parse(fh, filename=name, observed_at=FIXED))


def _activities(out: list) -> dict[str, Activity]:
    return {a.external_id: a for a in out if isinstance(a, Activity)}


def test_receipt_lines_group_into_one_purchase_per_receipt():
    acts = _activities(_parse("pos_receipts.csv"))
    sale = acts["S001:02:000000101"]
    assert sale.kind is ActivityKind.PURCHASE
    assert sale.status is ActivityStatus.CONFIRMED
    assert sale.amount_fen == 12900 + 5800
    assert sale.quantity == 3
    assert sale.source_key == "88000000001"
    assert sale.occurred_at.isoformat() == "2024-09-01T15:02:11+08:00"
    assert sale.details["lines"] == 2


def test_return_on_another_till_points_at_the_sale_seen_in_the_same_file():
    acts = _activities(_parse("pos_receipts.csv"))
    ret = acts["S001:03:000000205"]
    assert ret.kind is ActivityKind.REFUND
    assert ret.amount_fen == 2900
    assert ret.original_external_id == "S001:02:000000101"
    assert ret.details["original_resolved_by"] == "same_file"


def test_return_of_an_unseen_sale_names_any_till_at_the_store():
    ret = _activities(_parse("pos_receipts.csv"))["S002:02:000000300"]
    assert ret.original_external_id == "S002:*:000000299"
    assert ret.details["original_resolved_by"] == "unresolved"


def test_anonymous_sale_has_no_source_key_and_dash_means_empty():
    sale = _activities(_parse("pos_receipts.csv"))["S002:01:000000007"]
    assert sale.source_key is None
    assert sale.amount_fen == 9900


def test_phone_only_sale_is_attributed_through_an_unverified_phone_record():
    out = _parse("pos_receipts.csv")
    record = next(r for r in out if isinstance(r, SourceRecord))
    assert record.source_key == "mobile:+8613800000002"
    assert [(i.kind, i.verified) for i in record.identifiers] == [(IdentifierKind.PHONE, False)]
    sale = _activities(out)["S002:01:000000008"]
    assert sale.source_key == record.source_key
    assert sale.quantity == 1  # weighed goods count once


def test_bad_line_drops_its_whole_receipt_and_bad_time_is_reported():
    out = _parse("pos_receipts.csv")
    errors = [e for e in out if isinstance(e, RowError)]
    assert [(e.line, e.column) for e in errors] == [(7, "deal_amt_fen"), (10, "trd_time")]
    assert "receipt not imported" in errors[0].reason
    assert "S002:01:000000009" not in _activities(out)
    assert "S002:02:000000301" not in _activities(out)
    assert len(_activities(out)) == 5


def test_non_consecutive_receipt_lines_are_reported():
    text = (
        "store_id,pos_no,serial_num,trd_time,trd_type,deal_amt_fen\n"
        "S1,1,0001,2024-09-01 10:00:00,SALE,100\n"
        "S1,1,0002,2024-09-01 10:01:00,SALE,200\n"
        "S1,1,0001,2024-09-01 10:00:00,SALE,300\n"
    )
    out = list(pos.parse(io.BytesIO(text.encode()), filename="r.csv"))
    assert [a.amount_fen for a in out if isinstance(a, Activity)] == [100, 200]
    (error,) = [e for e in out if isinstance(e, RowError)]
    assert error.line == 4
    assert "not consecutive" in error.reason


def test_receipt_json_uses_actual_amount_and_original_till():
    out = _parse("pos_receipts.json")
    acts = _activities(out)
    assert acts["S001:02:000000101"].amount_fen == 18700
    assert acts["S001:02:000000101"].details["discount_amt_fen"] == 1300
    ret = acts["S001:03:000000205"]
    # trd_type 2 is an undocumented integer code: the original serial makes it a return.
    assert ret.kind is ActivityKind.REFUND
    assert ret.original_external_id == "S001:02:000000101"
    assert ret.details["original_resolved_by"] == "column"
    (error,) = [e for e in out if isinstance(e, RowError)]
    assert error.column == "actual_amt"
    assert error.line == 13


def test_receipt_ndjson_reports_a_malformed_line_and_goes_on():
    out = _parse("pos_receipts.ndjson")
    errors = [e for e in out if isinstance(e, RowError)]
    assert [(e.line, e.code) for e in errors] == [(2, "BAD_JSON")]
    assert set(_activities(out)) == {"S003:01:000000001", "S003:01:000000003"}


def test_enrolments_in_gbk_with_chinese_headers():
    out = _parse("pos_members_gbk.csv")
    records = {r.source_key: r for r in out if isinstance(r, SourceRecord)}
    first = records["88000000001"]
    assert first.business_line == "store"
    assert first.name == "测试甲"
    assert first.gender is Gender.FEMALE
    assert first.birthday == date(1990, 5, 1)
    assert first.attributes == {"enrol_store": "S001"}
    card, phone = first.identifiers
    assert (card.kind, card.value, card.scope) == (IdentifierKind.CARD_NO, "88000000001", "brand")
    assert (phone.kind, phone.value, phone.verified) == (
        IdentifierKind.PHONE,
        "+8613800000001",
        True,
    )
    assert phone.verified_at == first.observed_at


def test_enrolment_birthdays_without_a_year_stay_unknown():
    records = {
        r.source_key: r for r in _parse("pos_members_gbk.csv") if isinstance(r, SourceRecord)
    }
    assert records["88000000002"].birthday is None  # --05-01
    assert records["88000000003"].birthday is None  # 1900-07-08
    assert records["88000000006"].birthday == date(1985, 2, 3)


def test_enrolment_without_date_uses_the_given_observation_time():
    records = {
        r.source_key: r for r in _parse("pos_members_gbk.csv") if isinstance(r, SourceRecord)
    }
    assert records["88000000003"].observed_at == FIXED
    assert records["88000000003"].gender is None  # 未知


def test_enrolment_row_errors_name_the_chinese_column():
    out = _parse("pos_members_gbk.csv")
    errors = [(e.line, e.column, e.code) for e in out if isinstance(e, RowError)]
    assert errors == [
        (5, "手机号", "BAD_FIELD"),
        (5, "生日", "BAD_FIELD"),
        (6, "会员卡号", "BAD_ROW"),
    ]
    records = {r.source_key: r for r in out if isinstance(r, SourceRecord)}
    # Imported without the unreadable phone, keyed by its card.
    assert [i.kind for i in records["88000000004"].identifiers] == [IdentifierKind.CARD_NO]


def test_row_error_raw_text_is_masked():
    out = _parse("pos_members_gbk.csv")
    error = next(e for e in out if isinstance(e, RowError) and e.line == 6)
    assert "13800000005" not in (error.raw or "")


def test_wrong_file_raises_naming_expected_headers():
    text = "订单编号,买家会员名,买家实际支付金额\n1,x,1.00\n"
    with pytest.raises(ImportFormatError) as exc:
        list(pos.parse(io.BytesIO(text.encode("gbk")), filename="ExportOrderList.csv"))
    assert "serial_num" in exc.value.message
    assert "card_no" in exc.value.message


def test_wrong_json_raises():
    with pytest.raises(ImportFormatError):
        list(pos.parse(io.BytesIO(b'[{"order_id": "1"}]'), filename="x.json"))


def test_looks_like_recognises_each_pos_input():
    for name in ("pos_receipts.csv", "pos_members_gbk.csv", "pos_receipts.json"):
        assert pos.looks_like((SAMPLES / name).read_bytes()[:4096]), name
    assert not pos.looks_like("订单编号,买家会员名\n".encode("gbk"))
