from __future__ import annotations

import pytest

from hub.core import normalize as n


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ('="3000000000000000001"', "3000000000000000001"),
        ("6900000000000000001\t", "6900000000000000001"),
        ("'3000000000000000011", "3000000000000000011"),
        ("-", None),
        ("  ", None),
        (None, None),
    ],
)
def test_clean_cell_unwraps_exporter_tricks(raw: str | None, cleaned: str | None) -> None:
    assert n.clean_cell(raw) == cleaned


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13800000001", "+8613800000001"),
        ("+86 138 0000 0001", "+8613800000001"),
        ("86-13800000001", "+8613800000001"),
        ("+44 20 7946 0000", "+442079460000"),
    ],
)
def test_phone_e164(raw: str, e164: str) -> None:
    assert n.phone_e164(raw) == e164


@pytest.mark.parametrize("raw", ["138****0001", "18400000000-1234", "12", "abc"])
def test_phone_rejects_masked_virtual_and_garbage(raw: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - reason text differs per case
        n.phone_e164(raw)


def test_masked_phone_pattern() -> None:
    assert n.masked_phone_pattern("138****0001") == "138****0001"
    assert n.masked_phone_pattern("13*******01") == "13*******01"
    with pytest.raises(ValueError, match="masked"):
        n.masked_phone_pattern("13800000001")


def test_cn_id_number_verifies_the_check_digit() -> None:
    assert n.cn_id_number("11010519491231002x") == "11010519491231002X"
    with pytest.raises(ValueError, match="check digit"):
        n.cn_id_number("110105194912310021")
    with pytest.raises(ValueError, match="masked"):
        n.cn_id_number("1101**********002X")
    assert n.document_number("passport", "e 1234 567") == "PASSPORT:E1234567"


@pytest.mark.parametrize(
    ("raw", "fen"), [("128.00", 12800), ("59.9元", 5990), ("¥1,280.5", 128050), ("0", 0)]
)
def test_yuan_to_fen(raw: str, fen: int) -> None:
    assert n.yuan_to_fen(raw) == fen


@pytest.mark.parametrize("raw", ["12.345", "abc", "NaN"])
def test_yuan_to_fen_rejects(raw: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        n.yuan_to_fen(raw)


def test_dates_and_names() -> None:
    assert n.parse_datetime("2024/03/01 10:12:05").day == 1
    assert n.parse_date("2024-07-01").month == 7
    assert n.name(" jia  ceshi ") == "JIA CESHI"
    assert n.name("测试 甲") == "测试甲"
    assert n.email(" CeShi@Example.COM ") == "ceshi@example.com"
