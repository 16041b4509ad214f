import io
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connectors import generic_csv
from connectors.generic_mapping import mapping_from_dict
from hub.core.errors import ConfigError, ImportFormatError
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Gender,
    IdentifierKind,
    RowError,
    SourceRecord,
)

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "connectors" / "examples" / "generic_partner.toml"
SAMPLES = Path(__file__).parent / "samples"
FIXED = datetime(2024, 12, 31, tzinfo=UTC)
MINIMAL = {"source": "partner_x", "business_line": "partner", "person": {"key": "id"}}


def _parse(mapping=None) -> list:
    mapping = mapping or generic_csv.load_mapping(EXAMPLE)
    with (SAMPLES / "generic_partner.csv").open("rb") as fh:
        return list(
            generic_csv.parse(
                fh, filename="generic_partner.csv", mapping=mapping, observed_at=FIXED
            )
        )


def _records(out: list) -> dict[str, SourceRecord]:
    return {r.source_key: r for r in out if isinstance(r, SourceRecord)}


def _config_error(data: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        mapping_from_dict(data, origin="m.toml")
    return exc.value.message


def test_example_mapping_reads_non_chinese_person_data():
    record = _records(_parse())["G0001"]
    assert (record.source, record.business_line) == ("partner_gym", "fitness")
    assert record.name == "Jane Sample"
    assert record.gender is Gender.FEMALE  # "Ms" from gender_values
    assert record.birthday == date(1990, 5, 1)  # day-first format from the mapping
    assert record.observed_at.isoformat() == "2024-03-02T10:00:00+08:00"
    ids = {i.kind: i for i in record.identifiers}
    assert ids[IdentifierKind.MEMBERSHIP_ID].scope == "partner_gym"
    assert (ids[IdentifierKind.EMAIL].value, ids[IdentifierKind.EMAIL].verified) == (
        "jane.sample@example.com",
        True,
    )
    assert (ids[IdentifierKind.PHONE].value, ids[IdentifierKind.PHONE].verified) == (
        "+12025550101",
        False,
    )
    assert (record.address.city, record.address.country) == ("Shanghai", "US")
    assert record.consents == {"email": True}
    assert record.attributes == {"postcode": "200000", "club_level": "gold"}


def test_example_mapping_reads_activities_with_kind_and_status_tables():
    acts = {a.external_id: a for a in _parse() if isinstance(a, Activity)}
    visit = acts["V0001"]
    assert (visit.kind, visit.status, visit.amount_fen) == (
        ActivityKind.PURCHASE,
        ActivityStatus.CONFIRMED,
        12000,
    )
    assert visit.source_key == "G0001"
    refund = acts["V0002"]
    assert (refund.kind, refund.amount_fen, refund.original_external_id) == (
        ActivityKind.REFUND,
        12000,
        "V0001",
    )
    assert acts["V0003"].status is ActivityStatus.PENDING


def test_placeholder_birth_year_stays_unknown():
    assert _records(_parse())["G0002"].birthday is None  # 01/05/1900


def test_row_errors_for_bad_fields_missing_key_and_bad_activity():
    out = _parse()
    errors = [(e.line, e.column, e.code) for e in out if isinstance(e, RowError)]
    assert errors == [
        (4, "email", "BAD_FIELD"),
        (4, "phone", "BAD_FIELD"),
        (4, "dob", "BAD_FIELD"),
        (4, "newsletter", "BAD_FIELD"),
        (5, "member_no", "BAD_ROW"),
        (6, "visit_type", "BAD_ROW"),
        (7, "visited_at", "BAD_ROW"),
    ]
    # Bad fields leave the rest of the row imported; a bad activity keeps its person.
    records = _records(out)
    assert [i.kind for i in records["G0003"].identifiers] == [IdentifierKind.MEMBERSHIP_ID]
    assert "G0005" in records
    assert records["G0006"].observed_at == FIXED
    assert "V0005" not in {a.external_id for a in out if isinstance(a, Activity)}


def test_row_error_raw_masks_phones_and_emails():
    mapping = mapping_from_dict(
        {
            **MINIMAL,
            "person": {"key": "id", "birthday": "dob"},
            "identifiers": [
                {"column": "mail", "kind": "email"},
                {"column": "tel", "kind": "phone"},
            ],
        }
    )
    data = b"id,dob,mail,tel\nP1,not-a-date,john@example.com,13800000011\n"
    out = list(generic_csv.parse(io.BytesIO(data), filename="t.csv", mapping=mapping))
    (error,) = [e for e in out if isinstance(e, RowError)]
    assert error.column == "dob"
    assert "13800000011" not in error.raw
    assert "john@example.com" not in error.raw


def test_wrong_file_names_the_missing_columns():
    with pytest.raises(ImportFormatError) as exc:
        list(
            generic_csv.parse(
                io.BytesIO(b"member_no,first_name\nG1,x\n"),
                filename="other.csv",
                mapping=generic_csv.load_mapping(EXAMPLE),
            )
        )
    assert "last_name" in exc.value.message
    assert "visit_id" in exc.value.message


def test_tab_delimited_person_only_mapping():
    mapping = mapping_from_dict(
        {
            **MINIMAL,
            "delimiter": "\t",
            "identifiers": [{"column": "mail", "kind": "email"}],
        }
    )
    data = "id\tmail\nP1\tp1@example.com\n".encode("gb18030")
    out = list(generic_csv.parse(io.BytesIO(data), filename="t.tsv", mapping=mapping))
    (record,) = out
    assert record.identifiers[0].value == "p1@example.com"


def test_example_file_is_valid_toml_matching_the_docstring_keys():
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert generic_csv.load_mapping(EXAMPLE).source == data["source"]


def test_config_error_names_a_misspelt_key():
    assert "person.birthdy" in _config_error({**MINIMAL, "person": {"key": "id", "birthdy": "dob"}})


def test_config_error_names_missing_required_keys():
    assert "source is required" in _config_error({"business_line": "x", "person": {"key": "id"}})
    assert "person.key is required" in _config_error({**MINIMAL, "person": {"name": "n"}})
    assert "[person], [activity]" in _config_error({"source": "a", "business_line": "b"})


def test_config_error_for_bad_values():
    assert "source must be a lower-case slug" in _config_error({**MINIMAL, "source": "Partner X"})
    assert "timezone" in _config_error({**MINIMAL, "timezone": "Mars/Olympus"})
    assert "identifiers[0].kind must be one of" in _config_error(
        {**MINIMAL, "identifiers": [{"column": "c", "kind": "passport"}]}
    )
    assert "identifiers[0].scope is required" in _config_error(
        {**MINIMAL, "identifiers": [{"column": "c", "kind": "wechat_openid"}]}
    )
    assert "identifiers[0].document_type" in _config_error(
        {**MINIMAL, "identifiers": [{"column": "c", "kind": "id_document"}]}
    )
    assert "identifiers[0].verified must be true or false" in _config_error(
        {**MINIMAL, "identifiers": [{"column": "c", "kind": "email", "verified": "yes"}]}
    )
    assert "activity.kind must be one of" in _config_error(
        {
            **MINIMAL,
            "activity": {
                "external_id": "e",
                "occurred_at": "t",
                "kind": "buy",
                "status": "confirmed",
            },
        }
    )
    assert "activity.status.values.done must be one of" in _config_error(
        {
            **MINIMAL,
            "activity": {
                "external_id": "e",
                "occurred_at": "t",
                "kind": "purchase",
                "status": {"column": "s", "values": {"done": ["x"]}},
            },
        }
    )
    assert "activity.amount_unit" in _config_error(
        {
            **MINIMAL,
            "activity": {
                "external_id": "e",
                "occurred_at": "t",
                "kind": "purchase",
                "status": "confirmed",
                "amount_unit": "cents",
            },
        }
    )
    assert "person.address.street" in _config_error(
        {**MINIMAL, "person": {"key": "id", "address": {"street": "s"}}}
    )


def test_load_mapping_reports_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        generic_csv.load_mapping(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("source = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        generic_csv.load_mapping(bad)


def test_activity_only_mapping_with_fen_amounts():
    mapping = mapping_from_dict(
        {
            "source": "partner_x",
            "business_line": "partner",
            "activity": {
                "external_id": "no",
                "occurred_at": "at",
                "kind": {"column": "kind"},
                "status": "confirmed",
                "amount": "fen",
                "amount_unit": "fen",
                "source_key": "who",
            },
        }
    )
    data = b"no,at,kind,fen,who\nA1,2024-05-01 10:00:00,purchase,1999,u1\nA2,2024-05-01 10:00:00,purchase,19.99,u1\n"
    out = list(generic_csv.parse(io.BytesIO(data), filename="a.csv", mapping=mapping))
    assert out[0].amount_fen == 1999
    assert out[0].source_key == "u1"
    assert out[0].occurred_at.isoformat() == "2024-05-01T10:00:00+08:00"
    assert (out[1].line, out[1].column) == (3, "fen")


def test_looks_like_checks_the_mapped_columns():
    mapping = generic_csv.load_mapping(EXAMPLE)
    assert generic_csv.looks_like((SAMPLES / "generic_partner.csv").read_bytes(), mapping=mapping)
    assert not generic_csv.looks_like(b"member_no,first_name\n", mapping=mapping)
