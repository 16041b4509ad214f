"""Any partner CSV, described by a TOML mapping: how a new business line starts sending data.

``load_mapping(path)`` reads and validates the mapping (``ConfigError`` names the offending key);
``parse(stream, filename=..., mapping=...)`` reads the CSV. Every column the mapping names must
be in the header, matched by exact name (else ``ImportFormatError`` listing them). Each row gives a
``SourceRecord`` when ``[person]`` is mapped and an ``Activity`` when ``[activity]`` is mapped.
See ``connectors/examples/generic_partner.toml`` for a complete example.

Mapping format (``[person]`` or ``[activity]`` or both are required; other keys optional)::

    source = "partner_gym"            # slug: lower-case letters, digits, _
    business_line = "fitness"         # slug
    timezone = "Europe/Paris"         # for times without an offset; default Asia/Shanghai
    delimiter = ","                   # one character; "\\t" for tab-separated
    phone_region = "FR"               # region for phones written without +country; default CN
    date_formats = ["%d/%m/%Y"]       # strptime formats for birthdays; default ISO-like
    datetime_formats = ["%d/%m/%Y %H:%M"]  # for times; default ISO-like

    [person]
    key = "member_no"                 # column: the person's id in this source (required)
    name = ["first_name", "last_name"]  # one column or several joined by a space
    name_latin = "name_romanised"     # same; for a romanised form next to a native-script name
    gender = "gender"                 # M/F, male/female, 男/女, 1/2 ...; others are unknown
    gender_values = { F = ["Mme"], M = ["M."] }   # extra spellings
    birthday = "dob"                  # year-less values (--05-01, 1900-05-01) stay unknown
    observed_at = "updated_at"        # when the source saw this; default: parse time
    address = { city = "city", province = "region", district = "district", country = "country" }
    consents = { email = "newsletter" }   # consent name -> column of yes/no, true/false, 1/0
    attributes = { postcode = "zip" }     # non-identifying extras, name -> column

    [[identifiers]]                   # repeatable
    column = "phone"
    kind = "phone"                    # an IdentifierKind value: phone, email, id_document, ...
    verified = false                  # does the partner prove possession (SMS code, login)?
    scope = "..."                     # required for app/shop/PMS-scoped kinds
    region = "FR"                     # phones only; overrides phone_region
    document_type = "PASSPORT"        # id_document only (ID_CARD is checksum-verified)

    [activity]
    external_id = "visit_id"          # column, unique within the source (required)
    occurred_at = "visited_at"        # column (required)
    kind = "purchase"                 # a constant, or { column = "type", values = {...} }
    status = { column = "state", values = { confirmed = ["done"], cancelled = ["void"] } }
    amount = "total"                  # column; refunds may be negative, the kind carries the sign
    amount_unit = "yuan"              # "yuan" (2 decimals) or "fen" (whole numbers)
    quantity = "visits"
    original_external_id = "refund_of"  # for refunds
    source_key = "member_no"          # default: [person].key

Row errors: ``BAD_ROW`` (not imported) or ``BAD_FIELD`` (imported without that column's value).
Phones that are masked become weak ``phone_masked`` evidence, never verified.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from connectors import fields
from connectors.base import HeaderMap, csv_rows, resolve_header, row_error, sniff_encoding
from connectors.fields import BadField
from connectors.generic_mapping import CsvMapping, IdentifierSpec, mapping_from_dict
from hub.core import normalize
from hub.core.clock import utcnow
from hub.core.errors import ConfigError, ImportFormatError, RecordError
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Address,
    Identifier,
    IdentifierKind,
    Parsed,
    SourceRecord,
)

_YES = frozenset({"1", "true", "yes", "y", "t", "是", "同意"})
_NO = frozenset({"0", "false", "no", "n", "f", "否", "不同意"})


def load_mapping(path: str | Path) -> CsvMapping:
    """Read and validate a TOML mapping file."""
    origin = str(path)
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{origin}: mapping file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc})") from None
    return mapping_from_dict(data, origin=origin)


def looks_like(head: bytes, *, mapping: CsvMapping) -> bool:
    """True when the file's header holds every column the mapping names."""
    text = head.decode(sniff_encoding(head), errors="ignore").lstrip("\ufeff")
    header = {c.strip().strip('"') for c in text.split("\n", 1)[0].split(mapping.delimiter)}
    return set(mapping.columns()) <= header


def parse(
    stream: BinaryIO,
    *,
    filename: str,
    mapping: CsvMapping,
    observed_at: datetime | None = None,
) -> Iterator[Parsed]:
    fallback = observed_at or utcnow()
    rows = csv_rows(stream, delimiter=mapping.delimiter)
    try:
        _, header = next(rows)
    except StopIteration:
        raise ImportFormatError(f"{filename} is empty") from None
    columns = mapping.columns()
    synonyms = {c: (c,) for c in columns}
    hmap = resolve_header(header, synonyms, columns, connector=mapping.source, filename=filename)
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        try:
            yield from _row(line, row, hmap, mapping, filename, fallback)
        except BadField as exc:
            yield row_error(filename, line, exc.reason, column=exc.column, raw=row)
        except RecordError as exc:
            yield row_error(filename, line, exc.reason, column=exc.field, raw=row)


def _row(
    line: int,
    row: Sequence[str],
    hmap: HeaderMap,
    m: CsvMapping,
    filename: str,
    fallback: datetime,
) -> Iterator[Parsed]:
    def get(column: str | None) -> str | None:
        return hmap.get(row, column) if column else None

    def need(column: str) -> str:
        value = get(column)
        if value is None:
            raise BadField(column, "is empty")
        return value

    errors: list[BadField] = []
    record: SourceRecord | None = None
    p = m.person
    if p is not None:
        key = need(p.key)
        stamp = get(p.observed_at)
        when = (
            fields.local_time(stamp, p.observed_at or "", tz=m.tz, formats=m.datetime_formats)
            if stamp
            else None
        )
        identifiers: list[Identifier] = []
        for spec in m.identifiers:
            raw = get(spec.column)
            if raw is not None:
                ident = fields.attempt(errors, partial(_identifier, spec, raw, m, when))
                if ident is not None:
                    identifiers.append(ident)
        gender_raw = get(p.gender)
        gender = p.gender_values.get((gender_raw or "").strip().lower()) or fields.gender(
            gender_raw
        )
        birthday: date | None = fields.attempt(
            errors, lambda: fields.birthday(get(p.birthday), p.birthday or "", m.date_formats)
        )
        address = {part: get(col) for part, col in p.address.items()}
        consents = {}
        for consent, col in p.consents.items():
            flag = (get(col) or "").lower()
            if flag in _YES or flag in _NO:
                consents[consent] = flag in _YES
            elif flag:
                errors.append(BadField(col, "is not yes/no, true/false or 1/0"))
        record = SourceRecord(
            source=m.source,
            source_key=key,
            business_line=m.business_line,
            observed_at=when or fallback,
            identifiers=tuple(identifiers),
            name=_joined(get, p.name),
            name_latin=_joined(get, p.name_latin),
            gender=gender,
            birthday=birthday,
            address=Address(**address) if any(address.values()) else None,
            consents=consents,
            attributes={k: v for k, col in p.attributes.items() if (v := get(col)) is not None},
        )
    for bad in errors:
        yield row_error(filename, line, bad.reason, column=bad.column, raw=row, code="BAD_FIELD")
    if record is not None:
        yield record
    if m.activity is None:
        return
    try:
        yield _activity(get, need, m)
    except (BadField, RecordError) as exc:
        # The person was read; only the activity is lost, and the reason says so.
        column = exc.column if isinstance(exc, BadField) else exc.field
        reason = f"activity not imported: {exc.reason}"
        yield row_error(filename, line, reason, column=column, raw=row)


def _joined(get: Any, columns: Sequence[str]) -> str | None:
    parts = [v for c in columns if (v := get(c)) is not None]
    return " ".join(parts) if parts else None


def _identifier(spec: IdentifierSpec, raw: str, m: CsvMapping, when: datetime | None) -> Identifier:
    kind = spec.kind
    if kind in (IdentifierKind.PHONE, IdentifierKind.PHONE_MASKED):
        region = spec.region or m.phone_region
        return fields.phone(
            raw, spec.column, verified=spec.verified, verified_at=when, region=region
        )
    if kind is IdentifierKind.EMAIL:
        value = fields.email(raw, spec.column).value
    elif kind is IdentifierKind.ID_DOCUMENT:
        try:
            value = normalize.document_number(spec.document_type or "UNKNOWN", raw)
        except ValueError as exc:
            raise BadField(spec.column, str(exc)) from None
    else:
        value = raw
    return Identifier(
        kind,
        value,
        scope=spec.scope,
        verified=spec.verified,
        verified_at=when if spec.verified else None,
    )


def _activity(get: Any, need: Any, m: CsvMapping) -> Activity:
    a = m.activity
    assert a is not None
    kind = ActivityKind(a.kind.pick(get))
    status = ActivityStatus(a.status.pick(get))
    occurred_at = fields.local_time(
        need(a.occurred_at), a.occurred_at, tz=m.tz, formats=m.datetime_formats
    )
    amount = 0
    if a.amount and (raw := get(a.amount)) is not None:
        amount = (
            fields.yuan(raw, a.amount) if a.amount_unit == "yuan" else fields.fen(raw, a.amount)
        )
    quantity = 0
    if a.quantity and (raw := get(a.quantity)) is not None:
        quantity = abs(fields.fen(raw, a.quantity))
    original = get(a.original_external_id)
    if kind is ActivityKind.REFUND and original is None:
        raise BadField(
            a.original_external_id or "original_external_id", "a refund must name its original"
        )
    return Activity(
        source=m.source,
        external_id=need(a.external_id),
        kind=kind,
        business_line=m.business_line,
        occurred_at=occurred_at,
        status=status,
        source_key=get(a.source_key),
        amount_fen=abs(amount),
        quantity=quantity,
        original_external_id=original,
    )
