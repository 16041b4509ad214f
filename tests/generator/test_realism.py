import random
import re
from datetime import date

import pytest

from hub.core.normalize import cn_id_number, phone_e164
from hub.generator import generate, layout
from hub.generator.people import pinyin, synthetic_id_number, synthetic_phone
from hub.generator.pos import typo

from .conftest import DataSet


def test_every_email_anywhere_is_at_example_com(dataset: DataSet):
    found = 0
    for name in dataset.summary.files:
        raw = (dataset.out / name).read_bytes()
        text = raw.decode("gbk") if name.startswith("Export") else raw.decode("utf-8-sig")
        for address in re.findall(r"[\w.+-]+@[\w.-]+", text):
            assert address.endswith("@example.com"), name
            found += 1
    assert found > 0


def test_plaintext_phones_are_in_the_synthetic_range(dataset: DataSet):
    phones = [r["phone"] for r in dataset.rows(layout.POS_MEMBERS)]
    phones += [a["phone"] for a in dataset.objects(layout.APP_ACCOUNTS) if a["phone"]]
    phones += [r["mobile"] for r in dataset.rows(layout.TAOBAO_MEMBERS) if r["mobile"]]
    phones += [r["mobile"] for r in dataset.rows(layout.DOUYIN_MEMBERS) if r["mobile"]]
    assert phones
    for phone in phones:
        assert re.fullmatch(r"1380\d{7}", phone)
        assert phone_e164(phone) == "+86" + phone


def test_id_numbers_pass_the_checksum_under_an_unassigned_region(dataset: DataSet):
    numbers = [
        ident["identification"]["idNumber"]
        for profile in dataset.objects(layout.HOTEL_PROFILES)
        for ident in profile["profileDetails"]["customer"]
        .get("identifications", {})
        .get("identificationInfo", [])
    ]
    assert numbers
    for number in numbers:
        assert cn_id_number(number) == number
        assert number.startswith("99")


def test_synthetic_id_number_encodes_birthday_and_gender():
    number = synthetic_id_number(12345, date(1990, 5, 17), "F")
    assert number[6:14] == "19900517"
    assert int(number[16]) % 2 == 0
    assert int(synthetic_id_number(12345, date(1990, 5, 17), "M")[16]) % 2 == 1
    assert cn_id_number(number) == number


def test_synthetic_phones_do_not_repeat():
    phones = {synthetic_phone(serial) for serial in range(1, 200_001)}
    assert len(phones) == 200_000


def test_typo_changes_one_given_name_character():
    rng = random.Random(1)
    for name in ("张伟", "欧阳晓明", "李静"):
        wrong = typo(name, rng)
        assert wrong[0] == name[0]
        assert len(wrong) == len(name)
        assert sum(a != b for a, b in zip(wrong, name, strict=True)) == 1


def test_pinyin_is_upper_case_without_tones():
    assert pinyin("张") == "ZHANG"
    assert pinyin("晓明") == "XIAOMING"


def test_hotels_write_pinyin_and_sometimes_only_chinese(dataset: DataSet):
    shapes = set()
    for profile in dataset.objects(layout.HOTEL_PROFILES):
        names = profile["profileDetails"]["customer"]["personName"]
        shapes.add(
            tuple((n["nameType"], n["surname"].isascii()) for n in names),
        )
    assert (("Primary", True), ("Alternate", False)) in shapes
    assert (("Primary", False),) in shapes


def test_cancelled_stays_earn_nothing_and_nights_match_dates(dataset: DataSet):
    stays = dataset.rows(layout.HOTEL_STAYS)
    assert {"CheckedOut", "Cancelled"} <= {s["status"] for s in stays}
    for stay in stays:
        nights = (date.fromisoformat(stay["departure"]) - date.fromisoformat(stay["arrival"])).days
        assert int(stay["room_nights"]) == nights
        if stay["status"] == "Cancelled":
            assert stay["room_revenue"] == "0.00"


def test_pos_returns_point_back_at_an_earlier_sale(dataset: DataSet):
    rows = dataset.rows(layout.POS_RECEIPTS)
    sales = {r["serial_num"]: r for r in rows if r["trd_type"] == "SALE"}
    returns = [r for r in rows if r["trd_type"] == "RETURN"]
    assert returns
    for ret in returns:
        sale = sales[ret["original_serial_num"]]
        assert int(ret["qty"]) < 0
        assert int(ret["deal_amt_fen"]) < 0
        assert ret["member_card_num"] == sale["member_card_num"]
        assert ret["trd_time"] >= sale["trd_time"]
    assert any(r["member_card_num"] == "" for r in rows)  # walk-in sales


def test_orders_include_refunds_and_cancellations(dataset: DataSet):
    taobao = dataset.rows(layout.TAOBAO_ORDERS, "gbk")
    assert any(r["订单关闭原因"] == "买家申请退款" for r in taobao)
    assert any(r["订单状态"] == "交易成功" for r in taobao)
    stays = {s["status"] for s in dataset.rows(layout.HOTEL_STAYS)}
    assert "Cancelled" in stays


def test_progress_is_reported_and_bad_sizes_are_refused(tmp_path):
    seen: list[int] = []
    generate(2500, 3, tmp_path, seen.append)
    assert seen == [1000, 2000, 2500]
    with pytest.raises(ValueError, match="people"):
        generate(0, 3, tmp_path)
