import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors import member_app
from hub.core.errors import ImportFormatError
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    IdentifierKind,
    RowError,
    SourceRecord,
)

SAMPLES = Path(__file__).parent / "samples"
FIXED = datetime(2024, 12, 31, tzinfo=UTC)


def _parse(name: str) -> list:
    with (SAMPLES / name).open("rb") as fh:
        return list(member_app.parse(fh, filename=name, observed_at=FIXED))


def _records(out: list) -> dict[str, SourceRecord]:
    return {r.source_key: r for r in out if isinstance(r, SourceRecord)}


def _ids(record: SourceRecord) -> dict:
    return {i.kind: i for i in record.identifiers}


def test_mini_program_account_has_scoped_openid_unionid_and_verified_phone():
    record = _records(_parse("app_accounts.ndjson"))["wxapp_demo01:oTEST0000000000000000000001"]
    assert (record.source, record.business_line) == ("app", "app")
    ids = _ids(record)
    assert ids[IdentifierKind.WECHAT_OPENID].scope == "wxapp_demo01"
    assert ids[IdentifierKind.WECHAT_UNIONID].value == "oUNION00000000000000000001"
    phone = ids[IdentifierKind.PHONE]
    assert (phone.value, phone.verified) == ("+8613800000001", True)
    assert phone.verified_at.isoformat() == "2024-05-01T09:00:00+08:00"
    assert record.observed_at.isoformat() == "2024-05-01T08:59:00+08:00"


def test_native_app_user_id_is_app_user_id_not_openid():
    record = _records(_parse("app_accounts.ndjson"))["app_ios_demo:appuser_0001"]
    ids = _ids(record)
    assert IdentifierKind.WECHAT_OPENID not in ids
    assert ids[IdentifierKind.APP_USER_ID].scope == "app_ios_demo"
    assert ids[IdentifierKind.PHONE].verified  # sms_otp proves possession
    assert record.observed_at == datetime(2024, 5, 3, 3, tzinfo=UTC)


def test_phone_from_a_form_or_without_verification_time_is_unverified():
    records = _records(_parse("app_accounts.ndjson"))
    form = _ids(records["wxapp_demo01:oTEST0000000000000000000002"])[IdentifierKind.PHONE]
    assert not form.verified
    assert form.verified_at is None
    masked = _ids(records["wxapp_demo01:oTEST0000000000000000000004"])
    assert masked[IdentifierKind.PHONE_MASKED].value == "138****0004"
    assert IdentifierKind.PHONE not in masked


def test_account_without_phone_keeps_its_other_identifiers():
    record = _records(_parse("app_accounts.ndjson"))["wxmp_demo02:oTEST0000000000000000000099"]
    assert set(_ids(record)) == {IdentifierKind.WECHAT_OPENID, IdentifierKind.WECHAT_UNIONID}
    assert record.attributes == {"signup_source": "official_account_follow"}


def test_account_row_errors_carry_line_numbers_and_reading_goes_on():
    out = _parse("app_accounts.ndjson")
    errors = [(e.line, e.code, e.column) for e in out if isinstance(e, RowError)]
    assert errors == [
        (5, "BAD_JSON", None),
        (7, "BAD_FIELD", "signed_up_at"),
        (7, "BAD_FIELD", "phone"),
        (9, "BAD_ROW", None),
    ]
    # Line 7 is still imported, without its unreadable phone and with the fallback time.
    record = _records(out)["wxapp_demo01:oTEST0000000000000000000005"]
    assert record.observed_at.isoformat() == "2024-05-06T12:00:00+08:00"
    assert IdentifierKind.PHONE not in _ids(record)


def test_accounts_csv_with_bom_and_dash_for_empty():
    records = _records(_parse("app_accounts.csv"))
    assert len(records) == 2
    follow = records["wxmp_demo02:oTEST0000000000000000000099"]
    assert IdentifierKind.PHONE not in _ids(follow)
    assert follow.observed_at == FIXED


def test_orders_become_purchases_and_refunds():
    out = _parse("app_orders.ndjson")
    acts = {a.external_id: a for a in out if isinstance(a, Activity)}
    paid = acts["APP0000000001"]
    assert (paid.kind, paid.status, paid.amount_fen) == (
        ActivityKind.PURCHASE,
        ActivityStatus.PENDING,
        25900,
    )
    assert paid.source_key == "wxapp_demo01:oTEST0000000000000000000001"
    refund = acts["APP0000000002"]
    assert (refund.kind, refund.status, refund.amount_fen) == (
        ActivityKind.REFUND,
        ActivityStatus.CONFIRMED,
        25900,
    )
    assert refund.original_external_id == "APP0000000001"
    native = acts["APP0000000003"]
    assert (native.amount_fen, native.status) == (8880, ActivityStatus.CONFIRMED)
    assert native.source_key == "app_ios_demo:appuser_0001"


def test_order_errors_unpaid_skipped_yuan_in_fen_and_unknown_status():
    out = _parse("app_orders.ndjson")
    errors = [(e.line, e.code, e.column) for e in out if isinstance(e, RowError)]
    assert errors == [
        (4, "SKIPPED", "status"),
        (5, "BAD_ROW", "amount_fen"),
        (6, "BAD_ROW", "status"),
    ]


def test_wrong_file_raises_naming_expected_fields():
    with pytest.raises(ImportFormatError) as exc:
        list(member_app.parse(io.BytesIO(b'{"tid": "1", "buyer_nick": "x"}\n'), filename="t.json"))
    assert "openid" in exc.value.message
    assert "order_id" in exc.value.message


def test_wrong_csv_raises_naming_expected_headers():
    with pytest.raises(ImportFormatError) as exc:
        list(member_app.parse(io.BytesIO(b"name,city\nx,y\n"), filename="t.csv"))
    assert "openid" in exc.value.message


def test_looks_like():
    assert member_app.looks_like((SAMPLES / "app_accounts.ndjson").read_bytes()[:4096])
    assert member_app.looks_like((SAMPLES / "app_orders.ndjson").read_bytes()[:4096])
    assert member_app.looks_like((SAMPLES / "app_accounts.csv").read_bytes())
    assert not member_app.looks_like(b'{"store_id": "S1", "serial_num": "1"}')
