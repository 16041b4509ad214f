import csv
import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from connectors import taobao
from hub.core.errors import ImportFormatError
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Address,
    Identifier,
    IdentifierKind,
    Purchase,
    RowError,
    SourceRecord,
)
from hub.generator.layout import TAOBAO_ORDERS_HEADER

SAMPLES = Path(__file__).parent / "samples"
ORDERS = SAMPLES / "taobao_ExportOrderList202403081200.csv"
ITEMS = SAMPLES / "taobao_ExportOrderDetailList202403081200.csv"
SH = ZoneInfo("Asia/Shanghai")


def parse_file(path, **kw):
    with path.open("rb") as f:
        return list(taobao.parse(f, filename=path.name, **kw))


def of(items, cls):
    return [p for p in items if isinstance(p, cls)]


def test_sample_is_gbk_and_wraps_ids():
    raw = ORDERS.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert b'="3000000000000000001"' in raw


def test_legacy_orders_yield_buyers_and_purchases_in_fen():
    parsed = parse_file(ORDERS)
    first = of(parsed, SourceRecord)[0]
    assert first.source_key == "测试用户甲"
    assert first.identifiers == (
        Identifier(IdentifierKind.TAOBAO_NICK, "测试用户甲"),
        Identifier(IdentifierKind.PHONE_MASKED, "138****0001"),
    )
    assert first.name == "测*"
    assert first.address == Address(
        province="浙江省", city="杭州市", district="西湖区", country="CN"
    )
    assert first.observed_at == datetime(2024, 3, 1, 10, 12, 5, tzinfo=SH)
    purchases = {a.external_id: a for a in of(parsed, Activity)}
    assert set(purchases) == {
        "3000000000000000001",
        "3000000000000000002",
        "3000000000000000003",
        "3000000000000000008",
    }
    first_order = purchases["3000000000000000001"]
    assert first_order.kind is ActivityKind.PURCHASE
    assert first_order.status is ActivityStatus.CONFIRMED
    assert first_order.amount_fen == 12800
    assert first_order.occurred_at == datetime(2024, 3, 1, 10, 12, 30, tzinfo=SH)
    assert first_order.source_key == "测试用户甲"


def test_amount_excludes_shipping_and_keeps_it_in_details():
    closed = next(a for a in of(parse_file(ORDERS), Activity) if a.external_id.endswith("02"))
    assert closed.status is ActivityStatus.CANCELLED
    assert closed.amount_fen == 25600
    assert closed.details["shipping_fen"] == 1000
    assert closed.quantity == 2


def test_full_and_half_width_comma_statuses_are_pending():
    acts = {a.external_id: a for a in of(parse_file(ORDERS), Activity)}
    assert acts["3000000000000000003"].status is ActivityStatus.PENDING  # 买家已付款，等待…
    assert acts["3000000000000000008"].status is ActivityStatus.PENDING  # 卖家已发货,等待…


def test_unpaid_order_emits_buyer_but_no_purchase():
    parsed = parse_file(ORDERS)
    assert "示例用户丁" in {r.source_key for r in of(parsed, SourceRecord)}
    assert not [a for a in of(parsed, Activity) if a.external_id == "3000000000000000004"]


def test_masked_nick_is_not_a_key_but_a_receiver_digest():
    parsed = parse_file(ORDERS)
    masked = next(r for r in of(parsed, SourceRecord) if r.source_key.startswith("rcv:"))
    assert "t**0" not in masked.source_key
    assert [i.kind for i in masked.identifiers] == [IdentifierKind.PHONE_MASKED]
    again = parse_file(ORDERS)
    assert masked.source_key in {r.source_key for r in of(again, SourceRecord)}


def test_full_mobile_becomes_unverified_e164_phone():
    buyer = next(r for r in of(parse_file(ORDERS), SourceRecord) if r.source_key == "示例用户丙")
    assert Identifier(IdentifierKind.PHONE, "+8613800000003") in buyer.identifiers


def test_bad_rows_are_reported_with_line_and_column_and_parsing_continues():
    errors = [e for e in of(parse_file(ORDERS), RowError) if e.code == "BAD_ROW"]
    # Line numbers count the embedded newline in row 3's 买家留言.
    assert [(e.line, e.column) for e in errors] == [
        (7, "买家实际支付金额"),
        (8, "订单状态"),
        (9, "订单编号"),
    ]
    assert errors[0].file == ORDERS.name
    assert "not an amount" in errors[0].reason
    assert "外星状态" in errors[1].reason
    assert all(e.raw and "13800000003" not in e.raw for e in errors)


def test_unusable_phone_is_reported_but_the_order_is_kept():
    parsed = parse_file(ORDERS)
    notes = [e for e in of(parsed, RowError) if e.code == "FIELD_IGNORED"]
    assert [(n.line, n.column) for n in notes] == [(10, "联系手机")]
    buyer = [r for r in of(parsed, SourceRecord) if r.observed_at.day == 8][0]
    assert [i.kind for i in buyer.identifiers] == [IdentifierKind.TAOBAO_NICK]
    assert any(a.external_id == "3000000000000000008" for a in of(parsed, Activity))


def test_douyin_export_given_to_taobao_is_rejected_naming_expected_headers():
    douyin = "主订单编号,子订单编号,选购商品,商品数量,订单应付金额,订单状态\n".encode()
    with pytest.raises(ImportFormatError, match="订单编号.*买家实际支付金额"):
        list(taobao.parse(io.BytesIO(douyin), filename="douyin.csv"))


def test_items_file_alone_is_rejected():
    with pytest.raises(ImportFormatError, match="taobao order"):
        parse_file(ITEMS)


def test_pair_uses_order_quantities_when_present():
    with ORDERS.open("rb") as o, ITEMS.open("rb") as i:
        parsed = list(
            taobao.parse_pair(o, i, orders_filename=ORDERS.name, items_filename=ITEMS.name)
        )
    assert parsed == parse_file(ORDERS)


def test_pair_fills_quantity_from_items_when_order_file_lacks_it():
    orders = (
        "订单编号,买家会员名,买家应付邮费,买家实际支付金额,订单状态,订单创建时间,订单付款时间\r\n"
        '="3000000000000000002",测试用户乙,0.00,128.00,交易成功,2024-03-02 21:00:00,\r\n'
        '="3000000000000000003",测试用户丙,0.00,59.90,交易成功,2024-03-03 08:00:00,\r\n'
    ).encode("gbk")
    with ITEMS.open("rb") as items:
        parsed = list(
            taobao.parse_pair(
                io.BytesIO(orders), items, orders_filename="o.csv", items_filename=ITEMS.name
            )
        )
    acts = {a.external_id: a for a in of(parsed, Activity)}
    assert acts["3000000000000000002"].quantity == 2
    assert acts["3000000000000000003"].quantity == 0
    assert [(e.file, e.line, e.column) for e in of(parsed, RowError)] == [
        (ITEMS.name, 5, "购买数量")
    ]


def test_ouid_is_the_key_and_is_scoped_by_shop():
    data = (
        "\ufeff订单编号,买家会员名,ouid,买家应付邮费,买家实付金额,订单状态,订单创建时间\n"
        "'3000000000000000001,测试用户甲,AAF0000000000000000000000001,0,10.00,交易成功,2024/03/01 10:00:00\n"
    ).encode()
    parsed = list(taobao.parse(io.BytesIO(data), filename="o.csv", shop_id="SHOP001"))
    record = of(parsed, SourceRecord)[0]
    assert record.source_key == "AAF0000000000000000000000001"
    assert (
        Identifier(IdentifierKind.TAOBAO_OUID, "AAF0000000000000000000000001", scope="SHOP001")
        in record.identifiers
    )
    unscoped = list(taobao.parse(io.BytesIO(data), filename="o.csv"))
    assert of(unscoped, SourceRecord)[0].source_key == "测试用户甲"
    assert [e.column for e in of(unscoped, RowError)] == ["ouid"]


def _xlsx(main_rows, sub_rows):
    book = openpyxl.Workbook()
    main = book.active
    main.title = "订单"
    for r in main_rows:
        main.append(r)
    sub = book.create_sheet("子订单")
    for r in sub_rows:
        sub.append(r)
    buf = io.BytesIO()
    book.save(buf)
    buf.seek(0)
    return buf


MAIN_HEADER = [
    "订单编号",
    "买家会员名",
    "联系手机",
    "收货地址",
    "买家应付邮费",
    "买家实付金额",
    "订单状态",
    "订单创建时间",
    "订单付款时间",
    "退款金额",
]
SUB_HEADER = [
    "子订单编号",
    "主订单编号",
    "商品ID",
    "商品标题",
    "商品价格",
    "购买数量",
    "买家实付金额",
    "订单状态",
    "退款状态",
    "退款金额",
    "发货时间",
]


def _qianniu_book():
    return _xlsx(
        [
            MAIN_HEADER,
            [
                "3000000000000000010",
                "测试用户甲",
                "138****0001",
                "浙江省 杭州市 西湖区 ******",
                "8.00",
                "187.00",
                "交易成功",
                datetime(2024, 4, 1, 10, 0),  # noqa: DTZ001 - Excel cells hold wall-clock time
                "2024-04-01 10:00:30",
                "0.00",
            ],
            [
                "'3000000000000000020",
                "样例用户乙",
                "13800000002",
                "上海 上海市 徐汇区 ******",
                0,
                189,
                "交易关闭",
                "2024-04-02 11:00:00",
                "2024-04-02 11:00:05",
                "189.00",
            ],
        ],
        [
            SUB_HEADER,
            [
                "3000000000000000011",
                "3000000000000000010",
                700000000001,
                "样例面霜",
                199,
                1,
                179,
                "交易成功",
                None,
                0,
                "2024-04-01 12:00:00",
            ],
            [
                "3000000000000000012",
                "3000000000000000010",
                700000000002,
                "样例小样",
                0,
                2,
                0,
                "交易成功",
                None,
                0,
                "2024-04-01 12:00:00",
            ],
            [
                "3000000000000000021",
                "'3000000000000000020",
                700000000001,
                "样例面霜",
                199,
                1,
                "189.00",
                "交易关闭",
                "退款成功",
                "189.00",
                None,
            ],
            [
                3000000000000000031,
                "3000000000000000030",
                1,
                "样例",
                1,
                1,
                1,
                "交易成功",
                None,
                0,
                None,
            ],
            [
                "3000000000000000041",
                "3000000000000000099",
                1,
                "样例",
                1,
                1,
                1,
                "交易成功",
                None,
                0,
                None,
            ],
        ],
    )


def test_qianniu_xlsx_yields_one_purchase_per_sub_order_with_buyer_from_main_sheet():
    parsed = list(taobao.parse(_qianniu_book(), filename="qianniu.xlsx"))
    keys = [r.source_key for r in of(parsed, SourceRecord)]
    assert keys == ["测试用户甲", "样例用户乙"]
    acts = {a.external_id: a for a in of(parsed, Activity)}
    face = acts["3000000000000000011"]
    assert face.source_key == "测试用户甲"
    assert face.amount_fen == 17900
    assert face.status is ActivityStatus.CONFIRMED
    assert face.details["order_id"] == "3000000000000000010"
    assert face.details["item_id"] == "700000000001"
    assert face.occurred_at == datetime(2024, 4, 1, 10, 0, 30, tzinfo=SH)
    assert acts["3000000000000000012"].amount_fen == 0
    assert acts["3000000000000000012"].quantity == 2
    assert acts["3000000000000000021"].status is ActivityStatus.CANCELLED


def test_qianniu_refund_success_becomes_a_linked_refund_activity():
    parsed = list(taobao.parse(_qianniu_book(), filename="qianniu.xlsx"))
    refunds = [a for a in of(parsed, Activity) if a.kind is ActivityKind.REFUND]
    assert len(refunds) == 1
    refund = refunds[0]
    assert refund.external_id == "3000000000000000021:refund"
    assert refund.original_external_id == "3000000000000000021"
    assert refund.amount_fen == 18900
    assert refund.source_key == "样例用户乙"
    assert refund.status is ActivityStatus.CONFIRMED


def test_qianniu_float_id_and_orphan_sub_order_are_row_errors():
    errors = of(list(taobao.parse(_qianniu_book(), filename="qianniu.xlsx")), RowError)
    assert [(e.file, e.line, e.column) for e in errors] == [
        ("qianniu.xlsx[子订单]", 5, "子订单编号"),
        ("qianniu.xlsx[子订单]", 6, "主订单编号"),
    ]
    assert "missing" in errors[1].reason


def test_xlsx_is_detected_by_content_not_name():
    parsed = list(taobao.parse(_qianniu_book(), filename="export.bin"))
    assert len(of(parsed, Activity)) == 4


def test_xlsx_main_sheet_alone_yields_purchases_per_order():
    book = _xlsx(
        [
            MAIN_HEADER,
            [
                "3000000000000000010",
                "测试用户甲",
                None,
                None,
                "8.00",
                "187.00",
                "交易成功",
                "2024-04-01 10:00:00",
                None,
                None,
            ],
        ],
        [["其他"]],
    )
    acts = of(list(taobao.parse(book, filename="main.xlsx")), Activity)
    assert [(a.external_id, a.amount_fen, a.details["shipping_fen"]) for a in acts] == [
        ("3000000000000000010", 17900, 800)
    ]


def test_xlsx_without_an_order_sheet_is_rejected():
    book = _xlsx([["子订单编号", "主订单编号", "买家实付金额", "订单状态"]], [])
    with pytest.raises(ImportFormatError, match="订单编号"):
        list(taobao.parse(book, filename="subs.xlsx"))


def test_looks_like_tells_taobao_orders_from_douyin_and_items():
    assert taobao.looks_like(["\ufeff订单编号", "买家会员名", "买家应付邮费"])
    assert not taobao.looks_like(["主订单编号", "子订单编号", "选购商品"])
    assert taobao.looks_like_items(["订单编号", "标题", "价格", "购买数量"])


@pytest.mark.parametrize(
    "cell",
    [
        '="3000000000000000001"',
        "3000000000000000001",
        "'3000000000000000001",
        '=" 3000000000000000001"',
        "3000000000000000001\t",
        '="３０００"',  # full-width digits: what the record lane's check accepts
        "9" * 32,
        "9" * 33,  # too long for an order number
        '="12a4"',
        '=""',
        "-",
    ],
)
def test_the_fast_lane_reads_each_order_number_form_as_the_record_lane(cell):
    _assert_both_lanes_read_alike({0: cell, 16: "138****0001"})


def _assert_both_lanes_read_alike(changed: dict[int, str]) -> None:
    """One paid order, with ``changed`` cells (by column), read by the fast lane and by the
    record lane: the same records and row errors."""
    cells = [""] * len(TAOBAO_ORDERS_HEADER)
    cells[0] = '="3000000000000000001"'
    cells[1] = "买家甲"
    cells[3] = cells[6] = cells[8] = "12.00"
    cells[4] = "0.00"
    cells[10] = "交易成功"
    cells[17] = "2025-03-01 10:12:05"
    for column, cell in changed.items():
        cells[column] = cell
    out = io.StringIO()
    csv.writer(out).writerows([TAOBAO_ORDERS_HEADER, cells])
    data = out.getvalue().encode("gb18030")

    slow = list(taobao.parse(io.BytesIO(data), filename="o.csv"))
    fast = [
        r
        for item in taobao.parse(io.BytesIO(data), filename="o.csv", fast=True)
        for r in (item.records() if isinstance(item, Purchase) else [item])
    ]
    assert fast == slow


@pytest.mark.parametrize(
    "cell",
    [
        "12.00",
        "0.00",
        "12.5",
        "12",
        "012.30",
        "¥1,280.50",
        "１２.００",  # full-width digits
        "१२.००",  # other decimal digits: not the plain form, read by the record lane's rules
        " 12.00",
        "12.00\t",
        "12.345",  # more than two decimals
        "-1.00",
        "." + "00",
        "1" * 15 + ".99",
        "1" * 16 + ".99",  # beyond the plain form: read as a decimal
        "",
        "-",
    ],
)
@pytest.mark.parametrize("column", [4, 8])  # 买家应付邮费, 买家实际支付金额 (required)
def test_the_fast_lane_reads_each_amount_form_as_the_record_lane(cell, column):
    _assert_both_lanes_read_alike({column: cell})


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("a\x1fb", "c"), ("a", "b\x1fc")),  # the same text joined
        (("a\x1fb", "c"), ("a\x1fb\x1fc", "")),
        (("('a\\x1fb',)",), ("a\x1fb",)),  # one tuple's repr written as the other's cell
        (("测试买家", ""), ("测试买家", " ")),
    ],
)
def test_buyers_with_different_cells_never_share_a_digest(one, other):
    # The fast lane skips a buyer by this digest: two buyers sharing one would swap orders.
    assert taobao._cells_digest(one) != taobao._cells_digest(other)
    assert taobao._cells_digest(one) == taobao._cells_digest(tuple(one))
