import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connectors import hotel, jsonio
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


def _parse(name: str, **kw) -> list:
    with (SAMPLES / name).open("rb") as fh:
        return list(hotel.parse(fh, filename=name, observed_at=FIXED, **kw))


def _parse_bytes(data: bytes, name: str = "x") -> list:
    return list(hotel.parse(io.BytesIO(data), filename=name, observed_at=FIXED))


def _records(out: list) -> dict[str, SourceRecord]:
    return {r.source_key: r for r in out if isinstance(r, SourceRecord)}


def _kinds(record: SourceRecord) -> dict:
    return {(i.kind, i.scope): i.value for i in record.identifiers}


def _errors(out: list) -> list[tuple]:
    return [(e.line, e.column, e.code) for e in out if isinstance(e, RowError)]


def test_opera_profile_maps_names_keys_consents_and_address():
    record = _records(_parse("hotel_profiles_opera.json"))["900001"]
    assert (record.source, record.business_line) == ("hotel", "hotel")
    assert record.name == "测试甲"
    assert record.name_latin == "CESHI JIA"
    assert record.gender is Gender.FEMALE
    assert record.birthday == date(1990, 1, 1)
    assert _kinds(record) == {
        (IdentifierKind.HOTEL_PROFILE_ID, "opera"): "900001",
        (IdentifierKind.PHONE, None): "+8613800000001",
        (IdentifierKind.EMAIL, None): "ceshi.jia@example.com",
        (IdentifierKind.MEMBERSHIP_ID, "DEMO"): "D000000001",
    }
    assert not any(i.verified for i in record.identifiers)
    assert record.consents == {"email": True, "sms": False}
    assert (record.address.province, record.address.city, record.address.country) == (
        "上海",
        "上海市",
        "CN",
    )
    assert record.address.detail is None  # street detail is not kept
    assert record.observed_at.isoformat() == "2024-06-30T18:00:00+08:00"


def test_masked_id_number_is_not_an_identifier():
    record = _records(_parse("hotel_profiles_opera.json"))["900001"]
    assert IdentifierKind.ID_DOCUMENT not in {i.kind for i in record.identifiers}


def test_opera_documents_are_normalised_and_checksummed():
    records = _records(_parse("hotel_profiles_opera.json"))
    docs = sorted(
        i.value for i in records["900002"].identifiers if i.kind is IdentifierKind.ID_DOCUMENT
    )
    assert docs == ["ID_CARD:110101198502030028", "PASSPORT:E00000001"]
    # The profile id of type "Profile" wins over an external reference.
    assert _kinds(records["900002"])[(IdentifierKind.HOTEL_PROFILE_ID, "opera")] == "900002"
    assert records["900002"].gender is Gender.MALE


def test_bad_checksum_is_reported_and_profile_kept_without_it():
    out = _parse("hotel_profiles_opera.json")
    assert (22, "identifications", "BAD_FIELD") in _errors(out)
    record = _records(out)["900003"]
    assert [i.kind for i in record.identifiers] == [IdentifierKind.HOTEL_PROFILE_ID]
    assert record.name_latin == "Jane Sample"  # no Chinese name: given name first
    assert record.observed_at == FIXED


def test_opera_row_errors_bad_email_anonymised_and_missing_id():
    out = _parse("hotel_profiles_opera.json")
    assert _errors(out) == [
        (15, "emails", "BAD_FIELD"),
        (22, "identifications", "BAD_FIELD"),
        (25, None, "SKIPPED"),
        (27, "profileIdList", "BAD_ROW"),
    ]
    assert set(_records(out)) == {"900001", "900002", "900003"}


def test_pms_id_scopes_the_profile_id():
    record = _records(_parse("hotel_profiles_opera.json", pms_id="opera_sh"))["900001"]
    assert (IdentifierKind.HOTEL_PROFILE_ID, "opera_sh") in _kinds(record)


def test_single_profile_object_and_ndjson_are_accepted():
    profiles = json.loads((SAMPLES / "hotel_profiles_opera.json").read_text())[:2]
    single = json.dumps(profiles[0], ensure_ascii=False, indent=2).encode()
    assert list(_records(_parse_bytes(single))) == ["900001"]
    ndjson = "\n".join(json.dumps(p, ensure_ascii=False) for p in profiles).encode()
    out = _parse_bytes(ndjson)
    assert list(_records(out)) == ["900001", "900002"]
    assert _errors(out) == [(2, "emails", "BAD_FIELD")]


def test_array_is_streamed_across_small_chunks(monkeypatch):
    monkeypatch.setattr(jsonio, "CHUNK_CHARS", 7)
    out = _parse("hotel_profiles_opera.json")
    assert set(_records(out)) == {"900001", "900002", "900003"}
    assert _errors(out)[0] == (15, "emails", "BAD_FIELD")


def test_truncated_array_reports_and_keeps_what_was_read():
    data = (SAMPLES / "hotel_profiles_opera.json").read_bytes()
    cut = data[: data.index(b'{"profileIdList":[{"id":"900003"') + 30]
    out = _parse_bytes(cut)
    assert set(_records(out)) == {"900001", "900002"}
    assert [e.code for e in out if isinstance(e, RowError)][-1] == "BAD_JSON"


def test_ota_xml_profile():
    out = _parse("hotel_profiles_ota.xml")
    record = _records(out)["900001"]
    assert (record.name, record.name_latin) == ("测试甲", "CESHI JIA")
    assert _kinds(record) == {
        (IdentifierKind.HOTEL_PROFILE_ID, "opera"): "900001",
        (IdentifierKind.PHONE, None): "+8613800000001",
        (IdentifierKind.EMAIL, None): "ceshi.jia@example.com",
        (IdentifierKind.ID_DOCUMENT, None): "PASSPORT:E00000001",
        (IdentifierKind.MEMBERSHIP_ID, "DEMO"): "D000000001",
    }
    assert record.address.province == "浙江省"
    other = _records(out)["900005"]
    assert other.birthday is None  # --05-01 has no year
    assert _errors(out) == [(19, "Telephone", "BAD_FIELD")]


def test_ota_xml_refuses_external_entities():
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<OTA_ProfileReadRS><Profiles><ProfileInfo><UniqueID ID='1'/><Profile><Customer>"
        b"<Email>&x;</Email></Customer></Profile></ProfileInfo></Profiles></OTA_ProfileReadRS>"
    )
    with pytest.raises(ImportFormatError, match="entities"):
        _parse_bytes(xxe)


def test_ota_xml_refuses_entity_expansion():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<OTA_ProfileReadRS>&b;</OTA_ProfileReadRS>"
    )
    with pytest.raises(ImportFormatError):
        _parse_bytes(bomb)


def test_ota_xml_wrong_root_and_error_response():
    with pytest.raises(ImportFormatError, match="OTA_ProfileReadRS"):
        _parse_bytes(b"<OTA_HotelResNotifRQ/>")
    with pytest.raises(ImportFormatError, match="error response"):
        _parse_bytes(b"<OTA_ProfileReadRS><Errors><Error>x</Error></Errors></OTA_ProfileReadRS>")


def test_ota_xml_broken_midway_keeps_earlier_profiles():
    data = (
        (SAMPLES / "hotel_profiles_ota.xml")
        .read_bytes()
        .replace(b"</Customer>\n      </Profile>\n    </ProfileInfo>\n  </Profiles>", b"</Custom>")
    )
    out = _parse_bytes(data)
    assert "900001" in _records(out)
    assert out[-1].code == "BAD_XML"


def test_stays_compute_nights_amount_and_status():
    acts = {a.external_id: a for a in _parse("hotel_stays.csv") if isinstance(a, Activity)}
    stay = acts["HTL01:C000000001"]
    assert (stay.kind, stay.status, stay.quantity) == (
        ActivityKind.STAY,
        ActivityStatus.CONFIRMED,
        2,
    )
    assert stay.amount_fen == 158000 + 23600
    assert stay.details["fb_revenue_fen"] == 23600
    assert stay.source_key == "900001"
    assert stay.occurred_at.isoformat() == "2024-07-03T00:00:00+08:00"
    assert acts["HTL02:C000000003"].status is ActivityStatus.CANCELLED
    assert acts["HTL01:C000000002"].amount_fen == 98000 + 4500


def test_stay_nights_disagreement_trusts_the_dates():
    out = _parse("hotel_stays.csv")
    stay = next(a for a in out if isinstance(a, Activity) and a.external_id == "HTL02:C000000004")
    assert stay.quantity == 3
    assert stay.status is ActivityStatus.CONFIRMED  # "Checked Out" spelled with a space
    assert stay.amount_fen == 210000  # "-" revenue is zero
    assert (5, "room_nights", "BAD_FIELD") in _errors(out)


def test_stay_row_errors():
    assert _errors(_parse("hotel_stays.csv")) == [
        (5, "room_nights", "BAD_FIELD"),
        (6, "currency", "BAD_ROW"),
        (7, "departure", "BAD_ROW"),
        (8, "room_revenue", "BAD_ROW"),
        (9, "status", "BAD_ROW"),
        (10, "profile_id", "BAD_ROW"),
    ]


def test_wrong_csv_raises_naming_expected_headers():
    with pytest.raises(ImportFormatError) as exc:
        _parse_bytes("订单编号,买家会员名\n1,x\n".encode("gbk"), "ExportOrderList.csv")
    assert "confirmation_no" in exc.value.message


def test_wrong_json_raises():
    with pytest.raises(ImportFormatError, match="profileDetails"):
        _parse_bytes(b'{"openid": "x"}\n')


def test_looks_like():
    for name in ("hotel_profiles_opera.json", "hotel_profiles_ota.xml", "hotel_stays.csv"):
        assert hotel.looks_like((SAMPLES / name).read_bytes()[:4096]), name
    assert not hotel.looks_like(b"store_id,pos_no,serial_num\n")


def test_stays_with_chinese_headers_in_gbk():
    text = (
        "酒店代码,确认号,档案号,到店日期,离店日期,房费,餐饮,其他,币种,状态\n"
        'HTL03,C000000010,900001,2024/10/01,2024/10/04,="1200.00",100.00,-,CNY,CheckedOut\n'
    )
    (stay,) = _parse_bytes(text.encode("gbk"), "stays_gbk.csv")
    assert (stay.external_id, stay.quantity, stay.amount_fen) == ("HTL03:C000000010", 3, 130000)
