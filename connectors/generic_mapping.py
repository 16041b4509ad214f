"""The validated form of a generic CSV mapping (format documented in ``connectors.generic_csv``).

Validation is strict on purpose: a typo in a mapping key would otherwise silently drop a column
from every row of every import. Every ``ConfigError`` names the file and the full key path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.fields import BadField
from hub.core.clock import SHANGHAI
from hub.core.errors import ConfigError
from hub.core.records import SCOPED_KINDS, ActivityKind, ActivityStatus, Gender, IdentifierKind

_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_ADDRESS_PARTS = ("province", "city", "district", "detail", "country")
MAX_IDENTIFIERS = 16


@dataclass(frozen=True)
class Choice:
    """A value that is either constant or read from a column through a table of spellings."""

    constant: str | None = None
    column: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)  # lower-cased spelling -> value

    def pick(self, get: Callable[[str], str | None]) -> str:
        if self.constant is not None:
            return self.constant
        assert self.column is not None
        raw = get(self.column)
        if raw is None:
            raise BadField(self.column, "is empty")
        found = self.values.get(raw.strip().lower())
        if found is None:
            raise BadField(self.column, "has a value the mapping does not list")
        return found


@dataclass(frozen=True)
class IdentifierSpec:
    column: str
    kind: IdentifierKind
    scope: str | None = None
    verified: bool = False
    region: str | None = None
    document_type: str | None = None


@dataclass(frozen=True)
class PersonSpec:
    key: str
    name: tuple[str, ...] = ()
    name_latin: tuple[str, ...] = ()
    gender: str | None = None
    gender_values: Mapping[str, Gender] = field(default_factory=dict)
    birthday: str | None = None
    observed_at: str | None = None
    address: Mapping[str, str] = field(default_factory=dict)
    consents: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivitySpec:
    external_id: str
    occurred_at: str
    kind: Choice
    status: Choice
    amount: str | None = None
    amount_unit: str = "yuan"
    quantity: str | None = None
    original_external_id: str | None = None
    source_key: str | None = None


@dataclass(frozen=True)
class CsvMapping:
    source: str
    business_line: str
    tz: ZoneInfo = SHANGHAI
    delimiter: str = ","
    phone_region: str = "CN"
    date_formats: tuple[str, ...] = ()
    datetime_formats: tuple[str, ...] = ()
    person: PersonSpec | None = None
    identifiers: tuple[IdentifierSpec, ...] = ()
    activity: ActivitySpec | None = None

    def columns(self) -> list[str]:
        """Every column the mapping reads, in first-mention order (all must be in the header)."""
        cols: list[str | None] = []
        if self.person is not None:
            p = self.person
            cols += [p.key, *p.name, *p.name_latin, p.gender, p.birthday, p.observed_at]
            cols += [*p.address.values(), *p.consents.values(), *p.attributes.values()]
        cols += [i.column for i in self.identifiers]
        if self.activity is not None:
            a = self.activity
            cols += [a.external_id, a.occurred_at, a.kind.column, a.status.column, a.amount]
            cols += [a.quantity, a.original_external_id, a.source_key]
        return list(dict.fromkeys(c for c in cols if c))


class _Table:
    """Reads one TOML table, remembering which keys were used so leftovers can be refused."""

    def __init__(self, data: Any, path: str, origin: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{origin}: {path or 'the file'} must be a table")
        self.data, self.path, self.origin, self.used = data, path, origin, set[str]()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {self.key(name)} {reason}")

    def get(self, name: str, kind: type | tuple[type, ...], required: bool = False) -> Any:
        self.used.add(name)
        value = self.data.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return None
        if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
            raise self.fail(name, f"must be {_type_name(kind)}")
        return value

    def text(self, name: str, required: bool = False) -> str | None:
        value: str | None = self.get(name, str, required)
        if value is not None and not value.strip():
            raise self.fail(name, "must not be blank")
        return value

    def columns(self, name: str) -> tuple[str, ...]:
        value = self.get(name, (str, list))
        items = [value] if isinstance(value, str) else (value or [])
        if not all(isinstance(v, str) and v.strip() for v in items):
            raise self.fail(name, "must be a column name or a list of column names")
        return tuple(items)

    def strings(self, name: str) -> dict[str, str]:
        table = _Table(self.get(name, dict) or {}, self.key(name), self.origin)
        return {k: table.text(k, required=True) or "" for k in table.data}

    def sub(self, name: str, required: bool = False) -> _Table | None:
        value = self.get(name, dict, required)
        return None if value is None else _Table(value, self.key(name), self.origin)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail(unknown[0], "is not a known key (check the spelling)")


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", bool: "true or false", dict: "a table", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def mapping_from_dict(data: Mapping[str, Any], *, origin: str = "mapping") -> CsvMapping:
    top = _Table(dict(data), "", origin)
    source, line = (
        top.text("source", required=True) or "",
        top.text("business_line", required=True) or "",
    )
    for name, value in (("source", source), ("business_line", line)):
        if not _SLUG.match(value):
            raise top.fail(name, "must be a lower-case slug like 'partner_gym'")
    tz_name = top.text("timezone")
    try:
        tz = ZoneInfo(tz_name) if tz_name else SHANGHAI
    except (ZoneInfoNotFoundError, ValueError):
        raise top.fail("timezone", "is not an IANA time zone like 'Asia/Shanghai'") from None
    delimiter = top.get("delimiter", str)
    delimiter = "," if delimiter is None else delimiter
    if len(delimiter) != 1:
        raise top.fail("delimiter", "must be one character")
    region = (top.text("phone_region") or "CN").upper()
    date_formats, datetime_formats = top.columns("date_formats"), top.columns("datetime_formats")
    person_t, activity_t = top.sub("person"), top.sub("activity")
    if person_t is None and activity_t is None:
        raise ConfigError(f"{origin}: map [person], [activity] or both")
    person = _person(person_t) if person_t else None
    raw_ids = top.get("identifiers", list) or []
    if len(raw_ids) > MAX_IDENTIFIERS:
        raise top.fail("identifiers", f"may list at most {MAX_IDENTIFIERS}")
    if raw_ids and person is None:
        raise top.fail("identifiers", "needs a [person] table (identifiers belong to a person)")
    identifiers = tuple(
        _identifier(_Table(d, f"identifiers[{i}]", origin)) for i, d in enumerate(raw_ids)
    )
    activity = _activity(activity_t, person) if activity_t else None
    top.done()
    return CsvMapping(
        source=source,
        business_line=line,
        tz=tz,
        delimiter=delimiter,
        phone_region=region,
        date_formats=date_formats,
        datetime_formats=datetime_formats,
        person=person,
        identifiers=identifiers,
        activity=activity,
    )


def _person(t: _Table) -> PersonSpec:
    genders: dict[str, Gender] = {}
    gv = t.sub("gender_values")
    if gv is not None:
        for code in list(gv.data):
            if code not in ("F", "M"):
                raise gv.fail(code, "must be F or M")
            genders.update({s.strip().lower(): Gender(code) for s in gv.columns(code)})
        gv.done()
    address = t.strings("address")
    for part in address:
        if part not in _ADDRESS_PARTS:
            raise ConfigError(
                f"{t.origin}: {t.key('address')}.{part} is not one of {', '.join(_ADDRESS_PARTS)}"
            )
    spec = PersonSpec(
        key=t.text("key", required=True) or "",
        name=t.columns("name"),
        name_latin=t.columns("name_latin"),
        gender=t.text("gender"),
        gender_values=genders,
        birthday=t.text("birthday"),
        observed_at=t.text("observed_at"),
        address=address,
        consents=t.strings("consents"),
        attributes=t.strings("attributes"),
    )
    t.done()
    return spec


def _identifier(t: _Table) -> IdentifierSpec:
    kind_text = t.text("kind", required=True) or ""
    try:
        kind = IdentifierKind(kind_text)
    except ValueError:
        known = ", ".join(k.value for k in IdentifierKind)
        raise t.fail("kind", f"must be one of {known}") from None
    spec = IdentifierSpec(
        column=t.text("column", required=True) or "",
        kind=kind,
        scope=t.text("scope"),
        verified=bool(t.get("verified", bool)),
        region=(t.text("region") or "").upper() or None,
        document_type=t.text("document_type"),
    )
    if kind in SCOPED_KINDS and spec.scope is None:
        raise t.fail("scope", f"is required for kind {kind.value}")
    if kind is IdentifierKind.ID_DOCUMENT and spec.document_type is None:
        raise t.fail("document_type", "is required for kind id_document (e.g. ID_CARD, PASSPORT)")
    if kind is IdentifierKind.PHONE_MASKED and spec.verified:
        raise t.fail("verified", "cannot be true for a masked phone")
    t.done()
    return spec


def _choice(t: _Table, name: str, allowed: list[str]) -> Choice:
    value = t.get(name, (str, dict), required=True)
    if isinstance(value, str):
        if value not in allowed:
            raise t.fail(name, f"must be one of {', '.join(allowed)}")
        return Choice(constant=value)
    sub = _Table(value, t.key(name), t.origin)
    column = sub.text("column", required=True)
    values_t = sub.sub("values")
    spellings: dict[str, str] = {}
    if values_t is not None:
        for canonical in list(values_t.data):
            if canonical not in allowed:
                raise values_t.fail(canonical, f"must be one of {', '.join(allowed)}")
            spellings.update({s.strip().lower(): canonical for s in values_t.columns(canonical)})
        values_t.done()
    else:
        spellings = {v: v for v in allowed}  # the column holds the canonical names themselves
    sub.done()
    return Choice(column=column, values=spellings)


def _activity(t: _Table, person: PersonSpec | None) -> ActivitySpec:
    unit = t.text("amount_unit") or "yuan"
    if unit not in ("yuan", "fen"):
        raise t.fail("amount_unit", "must be 'yuan' or 'fen'")
    spec = ActivitySpec(
        external_id=t.text("external_id", required=True) or "",
        occurred_at=t.text("occurred_at", required=True) or "",
        kind=_choice(t, "kind", [k.value for k in ActivityKind]),
        status=_choice(t, "status", [s.value for s in ActivityStatus]),
        amount=t.text("amount"),
        amount_unit=unit,
        quantity=t.text("quantity"),
        original_external_id=t.text("original_external_id"),
        source_key=t.text("source_key") or (person.key if person else None),
    )
    t.done()
    return spec
