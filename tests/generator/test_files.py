import codecs
import csv
import io
import re

import pytest

from hub.generator import generate, layout

from .conftest import PEOPLE, SEED, DataSet

CSV_FILES = {
    layout.TAOBAO_ORDERS: (layout.GBK, layout.TAOBAO_ORDERS_HEADER),
    layout.TAOBAO_ITEMS: (layout.GBK, layout.TAOBAO_ITEMS_HEADER),
    layout.TAOBAO_MEMBERS: (layout.UTF8, layout.TAOBAO_MEMBERS_HEADER),
    layout.DOUYIN_ORDERS: (layout.UTF8_BOM, layout.DOUYIN_ORDERS_HEADER),
    layout.DOUYIN_MEMBERS: (layout.UTF8, layout.DOUYIN_MEMBERS_HEADER),
    layout.POS_MEMBERS: (layout.UTF8, layout.POS_MEMBERS_HEADER),
    layout.POS_RECEIPTS: (layout.UTF8, layout.POS_RECEIPTS_HEADER),
    layout.HOTEL_STAYS: (layout.UTF8, layout.HOTEL_STAYS_HEADER),
    layout.TRUTH: (layout.UTF8, layout.TRUTH_HEADER),
}


def test_same_seed_gives_identical_bytes(tmp_path, dataset: DataSet):
    again = generate(PEOPLE, SEED, tmp_path)
    assert again.files == dataset.summary.files
    for name in dataset.summary.files:
        assert (tmp_path / name).read_bytes() == (dataset.out / name).read_bytes(), name


def test_another_seed_gives_other_people(tmp_path, dataset: DataSet):
    generate(PEOPLE, SEED + 1, tmp_path)
    assert (tmp_path / layout.TRUTH).read_bytes() != (dataset.out / layout.TRUTH).read_bytes()


def test_every_file_is_written_and_counted(dataset: DataSet):
    names = {p.name for p in dataset.out.iterdir()}
    assert names == set(CSV_FILES) | {
        layout.APP_ACCOUNTS,
        layout.APP_ORDERS,
        layout.HOTEL_PROFILES,
    }
    for name, rows in dataset.summary.files.items():
        assert rows > 0, name
        if name.endswith(".ndjson"):
            assert len(dataset.objects(name)) == rows, name
        else:
            encoding, _ = CSV_FILES[name]
            assert len(dataset.rows(name, encoding)) == rows, name


@pytest.mark.parametrize("name", sorted(CSV_FILES))
def test_csv_headers_are_the_documented_ones_in_the_documented_encoding(
    dataset: DataSet, name: str
):
    encoding, header = CSV_FILES[name]
    raw = (dataset.out / name).read_bytes()
    assert raw.startswith(codecs.BOM_UTF8) == (encoding == layout.UTF8_BOM)
    first = next(csv.reader(io.StringIO(raw.decode(encoding), newline="")))
    assert first == list(header)


def test_taobao_pair_is_gbk_with_the_37_column_legacy_header(dataset: DataSet):
    raw = (dataset.out / layout.TAOBAO_ORDERS).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    header = raw.decode("gbk").split("\r\n", 1)[0].split(",")
    assert len(header) == 37
    assert header[:3] == ["订单编号", "买家会员名", "买家支付宝账号"]
    assert header[-1] == "异常信息"
    assert re.fullmatch(r"ExportOrderList\d{12}\.csv", layout.TAOBAO_ORDERS)
    assert layout.TAOBAO_ORDERS.replace("OrderList", "OrderDetailList") == layout.TAOBAO_ITEMS


def test_taobao_order_ids_are_bare_excel_formulas(dataset: DataSet):
    for name in (layout.TAOBAO_ORDERS, layout.TAOBAO_ITEMS):
        lines = (dataset.out / name).read_bytes().decode("gbk").split("\r\n")[1:-1]
        assert lines
        for line in lines:
            assert re.match(r'^="3\d{18}",', line), line[:30]


def test_taobao_receivers_are_masked(dataset: DataSet):
    rows = dataset.rows(layout.TAOBAO_ORDERS, "gbk")
    assert all(re.fullmatch(r"1\d\d\*{4}\d{4}", r["联系手机"]) for r in rows)
    assert all(re.fullmatch(r".\*", r["收货人姓名"]) for r in rows)
    assert all(r["收货地址"].split(" ")[3] == "******" for r in rows)


def test_douyin_ids_carry_tabs_masks_and_dashes(dataset: DataSet):
    raw = (dataset.out / layout.DOUYIN_ORDERS).read_bytes().decode("utf-8-sig")
    assert re.search(r'^"69\d{17}\t","69\d{17}\t",', raw.split("\r\n")[1])
    rows = dataset.rows(layout.DOUYIN_ORDERS, "utf-8-sig")
    assert all(r["主订单编号"].endswith("\t") and r["商品ID"].endswith("\t") for r in rows)
    assert all(re.fullmatch(r"1\d\*{7}\d{2}", r["收件人手机号"]) for r in rows)
    assert any(r["售后状态"] == "-" for r in rows)
    assert any(r["售后状态"] == "售后完成" for r in rows)
    # One row per sub-order: multi-SKU orders repeat the parent, and one sub-order shares its id.
    parents = [r["主订单编号"] for r in rows]
    assert len(set(parents)) < len(parents)
    assert all(
        r["子订单编号"] == r["主订单编号"] for r in rows if parents.count(r["主订单编号"]) == 1
    )


def test_app_files_are_ndjson_with_the_documented_fields(dataset: DataSet):
    accounts = dataset.objects(layout.APP_ACCOUNTS)
    assert all(tuple(a) == layout.APP_ACCOUNT_FIELDS for a in accounts)
    orders = dataset.objects(layout.APP_ORDERS)
    assert all(tuple(o) == layout.APP_ORDER_FIELDS for o in orders)
    assert {o["status"] for o in orders} <= set(layout.APP_ORDER_STATUSES)
    by_id = {o["order_id"]: o for o in orders}
    refunds = [o for o in orders if o["refund_of"]]
    assert refunds
    for refund in refunds:
        original = by_id[refund["refund_of"]]
        assert refund["amount_fen"] == -original["amount_fen"] < 0
        assert (refund["app_id"], refund["openid"]) == (original["app_id"], original["openid"])
