import io
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors import douyin
from hub.core.errors import ImportFormatError
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Address,
    Identifier,
    IdentifierKind,
    RowError,
    SourceRecord,
)

SAMPLES = Path(__file__).parent / "samples"
CSV = SAMPLES / "douyin_orders.csv"
API = SAMPLES / "douyin_orders_api.json"
SH = ZoneInfo("Asia/Shanghai")


def parse_file(path, **kw):
    with path.open("rb") as f:
        return list(douyin.parse(f, filename=path.name, **kw))


def parse_bytes(data, name="orders.json", **kw):
    return list(douyin.parse(io.BytesIO(data), filename=name, **kw))


def of(items, cls):
    return [p for p in items if isinstance(p, cls)]


def acts_by_id(parsed):
    return {a.external_id: a for a in of(parsed, Activity)}


# -- export CSV ------------------------------------------------------------------------------


def test_csv_sample_has_bom_tab_suffixed_ids_and_dash_for_empty():
    raw = CSV.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert b'"6900000000000000001\t"' in raw
    assert b",-," in raw


def test_csv_yields_one_purchase_per_sub_order_with_clean_string_ids():
    acts = acts_by_id(parse_file(CSV))
    first = acts["6900000000000000001"]
    assert first.status is ActivityStatus.CONFIRMED
    assert first.amount_fen == 26900
    assert first.quantity == 1
    assert first.occurred_at == datetime(2024, 6, 1, 20, 1, 30, tzinfo=SH)
    assert first.details["product_id"] == "3600000000000000001"
    assert "influencer_id" not in first.details  # "-" is empty
    mask = acts["6900000000000000004"]
    assert mask.details["order_id"] == "6900000000000000002"
    assert mask.status is ActivityStatus.PENDING
    assert (mask.amount_fen, mask.details["shipping_fen"], mask.quantity) == (11200, 600, 2)
    assert mask.details["influencer_id"] == "100000001"


def test_csv_buyer_key_is_a_digest_of_masked_receiver_with_weak_identifiers_only():
    records = of(parse_file(CSV), SourceRecord)
    first = records[0]
    assert first.source == "douyin"
    assert first.source_key.startswith("rcv:")
    assert first.identifiers == (Identifier(IdentifierKind.PHONE_MASKED, "13*******01"),)
    assert first.name == "测**"
    assert first.address == Address(
        province="浙江省", city="杭州市", district="西湖区", country="CN"
    )
    # Both sub-orders of order 2 resolve to the same buyer key.
    acts = acts_by_id(parse_file(CSV))
    assert acts["6900000000000000002"].source_key == acts["6900000000000000004"].source_key


def test_csv_key_does_not_reveal_a_plain_phone():
    records = of(parse_file(CSV), SourceRecord)
    plain = next(
        r for r in records if r.identifiers and r.identifiers[0].kind is IdentifierKind.PHONE
    )
    assert plain.identifiers[0].value == "+8613800000009"
    assert "13800000009" not in plain.source_key


def test_csv_virtual_number_is_discarded_as_identity():
    acts = acts_by_id(parse_file(CSV))
    key = acts["6900000000000000005"].source_key
    record = next(r for r in of(parse_file(CSV), SourceRecord) if r.source_key == key)
    assert record.identifiers == ()
    assert record.observed_at == datetime(2024, 6, 5, 9, 0, tzinfo=SH)


def test_csv_completed_after_sale_adds_a_linked_refund():
    acts = acts_by_id(parse_file(CSV))
    assert acts["6900000000000000002"].status is ActivityStatus.CANCELLED
    refund = acts["6900000000000000002:refund"]
    assert refund.kind is ActivityKind.REFUND
    assert refund.original_external_id == "6900000000000000002"
    assert refund.amount_fen == 29900
    assert len([a for a in acts.values() if a.kind is ActivityKind.REFUND]) == 1


def test_csv_unpaid_order_has_a_buyer_but_no_activity():
    parsed = parse_file(CSV)
    assert "6900000000000000007" not in acts_by_id(parsed)
    assert any(r.observed_at.day == 7 for r in of(parsed, SourceRecord))


def test_csv_bad_rows_are_reported_and_parsing_continues():
    errors = of(parse_file(CSV), RowError)
    assert [(e.file, e.line, e.column) for e in errors] == [
        (CSV.name, 6, "订单应付金额"),
        (CSV.name, 8, "商品数量"),
        (CSV.name, 10, "订单状态"),
    ]
    assert "two decimals" in errors[0].reason
    assert "6900000000000000009" in acts_by_id(parse_file(CSV))


def test_csv_older_unit_price_header_and_dash_shipping_are_accepted():
    data = (
        "主订单编号,子订单编号,商品数量,商品金额,订单应付金额,运费,收件人,收件人手机号,"
        "订单提交时间,订单状态\n"
        '"6900000000000000001\t","6900000000000000001\t",1,10.00,10.00,-,测**,13*******01,'
        "2024/06/01 20:01:02,已完成\n"
    ).encode()
    acts = of(parse_bytes(data, "old.csv"), Activity)
    assert [(a.external_id, a.amount_fen) for a in acts] == [("6900000000000000001", 1000)]


def test_taobao_export_given_to_douyin_is_rejected_naming_expected_headers():
    taobao = "订单编号,买家会员名,买家实际支付金额,订单状态\n".encode("gbk")
    with pytest.raises(ImportFormatError, match="主订单编号, 子订单编号"):
        parse_bytes(taobao, "ExportOrderList.csv")


def test_looks_like_tells_douyin_from_taobao_sub_orders():
    assert douyin.looks_like(["\ufeff主订单编号", "子订单编号", "选购商品"])
    assert not douyin.looks_like(["子订单编号", "主订单编号", "商品ID", "退款状态"])


# -- open API JSON ---------------------------------------------------------------------------


def test_api_buyer_is_shop_scoped_open_id_with_masked_receiver():
    record = of(parse_file(API), SourceRecord)[0]
    assert record.source_key == "100001:dyo_ord_0001"
    assert record.identifiers == (
        Identifier(IdentifierKind.DOUYIN_OPEN_ID, "dyo_ord_0001", scope="100001"),
        Identifier(IdentifierKind.PHONE_MASKED, "13*******01"),
    )
    assert record.name == "测**"
    assert record.address == Address(
        province="浙江省", city="杭州市", district="西湖区", country="CN"
    )
    assert record.observed_at == datetime(2024, 6, 1, 20, 1, 2, tzinfo=SH)


def test_api_sku_orders_are_purchases_in_fen_from_unix_seconds():
    acts = acts_by_id(parse_file(API))
    first = acts["6900000000000000101"]
    assert (first.amount_fen, first.quantity, first.status) == (26900, 1, ActivityStatus.CONFIRMED)
    assert first.occurred_at == datetime(2024, 6, 1, 20, 1, 30, tzinfo=SH)
    assert first.details["product_id"] == "3600000000000000001"
    second = acts["6900000000000000102"]
    assert (second.amount_fen, second.details["shipping_fen"]) == (11200, 600)
    # A JSON number id stays exact and becomes a string.
    assert acts["6900000000000000201"].status is ActivityStatus.PENDING


def test_api_refund_success_becomes_refund_but_exchange_does_not():
    acts = acts_by_id(parse_file(API))
    refund = acts["6900000000000000102:refund"]
    assert (refund.amount_fen, refund.original_external_id) == (11200, "6900000000000000102")
    assert refund.source_key == "100001:dyo_ord_0001"
    assert refund.occurred_at == datetime(2024, 6, 8, 10, 0, tzinfo=SH)
    assert "6900000000000000201:refund" not in acts  # after_sale_type 3 = exchange
    assert acts["6900000000000000302:refund"].amount_fen == 500  # explicit refund_amount


def test_api_virtual_number_is_discarded_and_receiver_digest_matches_csv():
    parsed = parse_file(API)
    buyer = next(r for r in of(parsed, SourceRecord) if r.source_key.startswith("rcv:"))
    assert buyer.identifiers == (Identifier(IdentifierKind.PHONE_MASKED, "13*******02"),)
    csv_keys = {r.source_key for r in of(parse_file(CSV), SourceRecord)}
    assert buyer.source_key in csv_keys


def test_api_bad_sku_is_a_row_error_at_the_order_line_without_receiver_pii():
    errors = of(parse_file(API), RowError)
    assert [(e.line, e.column) for e in errors] == [
        (4, "sku_order_list[0].pay_amount"),
        (5, "sku_order_list[0].order_status"),
    ]
    assert all("13*******" not in (e.raw or "") and "示**" not in (e.raw or "") for e in errors)
    # The good sibling sku of the bad one is still read.
    assert "6900000000000000302" in acts_by_id(parse_file(API))


def test_api_ndjson_of_response_pages_and_malformed_line():
    order = json.loads(API.read_text(encoding="utf-8").splitlines()[1].rstrip(","))
    page = {"code": 10000, "data": {"shop_order_list": [order], "total": 1}}
    detail = {"data": {"shop_order_detail": dict(order, order_id="6900000000000000999")}}
    data = "\n".join([json.dumps(page), "{broken", json.dumps(detail)]).encode()
    parsed = parse_bytes(data, "orders.ndjson")
    assert [(e.line, e.code) for e in of(parsed, RowError)] == [(2, "BAD_JSON")]
    assert len(of(parsed, SourceRecord)) == 2
    assert "6900000000000000102:refund" in acts_by_id(parsed)


def test_api_open_id_without_shop_falls_back_to_receiver_key():
    order = {
        "order_id": "1",
        "doudian_open_id": "dyo_x",
        "order_status": 5,
        "create_time": 1717243262,
        "mask_post_tel": "13*******01",
        "sku_order_list": [{"order_id": "1", "pay_amount": 100}],
    }
    parsed = parse_bytes(json.dumps([order]).encode())
    assert of(parsed, SourceRecord)[0].source_key.startswith("rcv:")
    assert [e.column for e in of(parsed, RowError)] == ["doudian_open_id"]
    assert (
        of(parse_bytes(json.dumps([order]).encode(), shop_id="S1"), SourceRecord)[0].source_key
        == "S1:dyo_x"
    )


def test_json_that_is_not_orders_is_rejected():
    with pytest.raises(ImportFormatError, match="order_id and sku_order_list"):
        parse_bytes(b'[{"openid": "x"}]')


def test_parse_leaves_the_callers_stream_open():
    stream = io.BytesIO(API.read_bytes())
    list(douyin.parse(stream, filename="a.json"))
    assert not stream.closed
