"""Canonical records: the contract between every source connector and the hub.

Connectors turn raw input into these; nothing downstream ever sees a vendor layout. All three are
frozen dataclasses validated on construction (``RecordError`` names the offending field), so a
record that exists is a record the hub can take.

Identifier values are already normalised (see ``hub.core.normalize``): phones in E.164, masked
phones as a digit/``*`` pattern, documents as ``TYPE:NUMBER``, emails lower-cased. Raw PII lives
only inside these in-memory objects; the ingest flow hashes and encrypts it before it is stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from hub.core.errors import RecordError

_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_KEY_LEN = 128
MAX_VALUE_LEN = 512
MAX_IDENTIFIERS = 32


class IdentifierKind(StrEnum):
    """What an identifier is. Strength lives in identity's configuration, not here."""

    PHONE = "phone"  # E.164
    PHONE_MASKED = "phone_masked"  # e.g. 138****5678 / 13*******01: weak evidence only
    EMAIL = "email"
    ID_DOCUMENT = "id_document"  # TYPE:NUMBER
    WECHAT_UNIONID = "wechat_unionid"
    WECHAT_OPENID = "wechat_openid"  # scoped by app id
    APP_USER_ID = "app_user_id"  # scoped by app id
    DOUYIN_UNION_ID = "douyin_union_id"  # scoped by brand
    DOUYIN_OPEN_ID = "douyin_open_id"  # scoped by shop
    TAOBAO_OUID = "taobao_ouid"  # scoped by shop/merchant
    TAOBAO_OMID = "taobao_omid"
    TAOBAO_NICK = "taobao_nick"
    TAOBAO_MIX_NICK = "taobao_mix_nick"
    CARD_NO = "card_no"  # POS member card, scoped by brand
    HOTEL_PROFILE_ID = "hotel_profile_id"  # scoped by PMS
    MEMBERSHIP_ID = "membership_id"  # scoped by programme


SCOPED_KINDS = frozenset(
    {
        IdentifierKind.WECHAT_OPENID,
        IdentifierKind.APP_USER_ID,
        IdentifierKind.DOUYIN_OPEN_ID,
        IdentifierKind.TAOBAO_OUID,
        IdentifierKind.HOTEL_PROFILE_ID,
    }
)


class ActivityKind(StrEnum):
    PURCHASE = "purchase"
    REFUND = "refund"
    STAY = "stay"
    SIGNUP = "signup"
    OTHER = "other"


class ActivityStatus(StrEnum):
    PENDING = "pending"  # paid / reserved, may still be returned or cancelled
    CONFIRMED = "confirmed"  # completed / checked out / receipt closed
    CANCELLED = "cancelled"  # closed before completion, no-show, cancelled stay


class Gender(StrEnum):
    FEMALE = "F"
    MALE = "M"


# Every record is validated as it is built, a few times per imported row, so the checks below
# are written to cost little when they pass: a field name with an f-string in it is only built
# when a check fails, and slugs already seen skip the regular expression.
_KNOWN_SLUGS: set[str] = set()
_MAX_KNOWN_SLUGS = 256


def _require(cond: bool, fld: str, reason: str) -> None:
    if not cond:
        raise RecordError(fld, reason)


def _slug(value: str, fld: str) -> None:
    if value in _KNOWN_SLUGS:
        return
    _require(bool(_SLUG.match(value)), fld, "must be a lower-case slug like 'taobao'")
    if len(_KNOWN_SLUGS) < _MAX_KNOWN_SLUGS:
        _KNOWN_SLUGS.add(value)


def _text_problem(value: object, limit: int, required: bool) -> str | None:
    """Why ``value`` is not acceptable text (None when it is); the caller names the field."""
    if value is None:
        return "is required" if required else None
    if not isinstance(value, str):
        return "must be text"
    if not value.strip():
        return "must not be blank"
    if len(value) > limit:
        return f"is longer than {limit} characters"
    return None


def _text(value: str | None, fld: str, limit: int = MAX_VALUE_LEN, required: bool = False) -> None:
    if value is None and not required:
        return
    problem = _text_problem(value, limit, required)
    if problem is not None:
        raise RecordError(fld, problem)


def _aware(value: datetime | None, fld: str) -> None:
    if value is None:
        return
    _require(isinstance(value, datetime), fld, "must be a datetime")
    _require(value.tzinfo is not None, fld, "must carry a time zone")


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: IdentifierKind
    value: str
    scope: str | None = None  # app id, shop id, PMS id... for kinds only valid within a scope
    verified: bool = False
    verified_at: datetime | None = None

    def __post_init__(self) -> None:
        kind = self.kind
        _require(isinstance(kind, IdentifierKind), "identifier.kind", "unknown kind")
        if (problem := _text_problem(self.value, MAX_KEY_LEN, True)) is not None:
            raise RecordError(f"identifier[{kind}].value", problem)
        if (problem := _text_problem(self.scope, MAX_KEY_LEN, False)) is not None:
            raise RecordError(f"identifier[{kind}].scope", problem)
        if self.scope is None and kind in SCOPED_KINDS:
            raise RecordError(f"identifier[{kind}].scope", "is required")
        if kind is IdentifierKind.PHONE:
            _require(self.value.startswith("+"), "identifier[phone].value", "must be E.164")
        elif kind is IdentifierKind.PHONE_MASKED:
            _require("*" in self.value, "identifier[phone_masked].value", "must hold a mask")
            _require(not self.verified, "identifier[phone_masked].verified", "cannot be verified")
        if self.verified_at is not None:
            _aware(self.verified_at, f"identifier[{kind}].verified_at")


@dataclass(frozen=True, slots=True)
class Address:
    province: str | None = None
    city: str | None = None
    district: str | None = None
    detail: str | None = None  # street and number; often masked by platforms
    country: str | None = None  # ISO 3166-1 alpha-2 when known

    def __post_init__(self) -> None:
        for fld, value in (
            ("province", self.province),
            ("city", self.city),
            ("district", self.district),
            ("detail", self.detail),
            ("country", self.country),
        ):
            if value is not None and (problem := _text_problem(value, MAX_VALUE_LEN, False)):
                raise RecordError(f"address.{fld}", problem)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """What one source knows about one person."""

    source: str
    source_key: str
    business_line: str
    observed_at: datetime
    identifiers: tuple[Identifier, ...] = ()
    name: str | None = None  # as written, in any script
    name_latin: str | None = None  # pinyin / romanised name when the source gives one
    gender: Gender | None = None
    birthday: date | None = None
    address: Address | None = None
    consents: Mapping[str, bool] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)  # non-identifying extras (grade)

    def __post_init__(self) -> None:
        _slug(self.source, "source")
        _slug(self.business_line, "business_line")
        _text(self.source_key, "source_key", MAX_KEY_LEN, required=True)
        _aware(self.observed_at, "observed_at")
        _require(self.observed_at is not None, "observed_at", "is required")
        _require(len(self.identifiers) <= MAX_IDENTIFIERS, "identifiers", "too many")
        for ident in self.identifiers:
            _require(isinstance(ident, Identifier), "identifiers", "must hold Identifier objects")
        _text(self.name, "name", 128)
        _text(self.name_latin, "name_latin", 128)
        if self.birthday is not None:
            _require(isinstance(self.birthday, date), "birthday", "must be a date")
            _require(1900 <= self.birthday.year <= 2100, "birthday", "year out of range")
        for key, val in self.consents.items():
            if not isinstance(val, bool):
                raise RecordError(f"consents.{key}", "must be true or false")
        for key, text in self.attributes.items():
            if (problem := _text_problem(text, MAX_VALUE_LEN, False)) is not None:
                raise RecordError(f"attributes.{key}", problem)


_RECORD_FIELDS: tuple[str, ...] = ()  # filled below, once the class exists


def reobserved(record: SourceRecord, observed_at: datetime) -> SourceRecord:
    """``record`` as seen again at ``observed_at``: what ``dataclasses.replace`` gives, without
    validating again the fields that were validated when ``record`` was built (a connector
    re-reads the same buyer on each of their orders)."""
    _aware(observed_at, "observed_at")
    _require(observed_at is not None, "observed_at", "is required")
    if observed_at == record.observed_at and observed_at.tzinfo is record.observed_at.tzinfo:
        return record
    copy = object.__new__(SourceRecord)
    for name in _RECORD_FIELDS:
        object.__setattr__(copy, name, getattr(record, name))
    object.__setattr__(copy, "observed_at", observed_at)
    return copy


@dataclass(frozen=True, slots=True)
class Activity:
    """Something a member did that may earn points or growth. Amounts are integer fen."""

    source: str
    external_id: str  # unique within the source: (sub-)order no., folio no., receipt serial
    kind: ActivityKind
    business_line: str
    occurred_at: datetime
    status: ActivityStatus
    source_key: str | None = None  # the person in that source; None for anonymous sales
    amount_fen: int = 0  # what counts for earning (paid, ex. shipping); refunds positive
    quantity: int = 0  # e.g. room nights, item count
    original_external_id: str | None = None  # for refunds and returns: what they reverse
    details: Mapping[str, Any] = field(default_factory=dict)  # shipping_fen, fb_revenue_fen ...

    def __post_init__(self) -> None:
        _slug(self.source, "source")
        _slug(self.business_line, "business_line")
        _text(self.external_id, "external_id", MAX_KEY_LEN, required=True)
        _text(self.source_key, "source_key", MAX_KEY_LEN)
        _require(isinstance(self.kind, ActivityKind), "kind", "unknown activity kind")
        _require(isinstance(self.status, ActivityStatus), "status", "unknown status")
        _aware(self.occurred_at, "occurred_at")
        for fld, val in (("amount_fen", self.amount_fen), ("quantity", self.quantity)):
            _require(isinstance(val, int) and not isinstance(val, bool), fld, "must be an integer")
            _require(val >= 0, fld, "must not be negative (refunds are their own kind)")
        if self.kind is ActivityKind.REFUND:
            _require(self.original_external_id is not None, "original_external_id", "required")
        _text(self.original_external_id, "original_external_id", MAX_KEY_LEN)


@dataclass(frozen=True, slots=True)
class RowError:
    """A row a connector could not read. ``raw`` is already masked; ``line`` is 1-based."""

    file: str
    line: int
    reason: str
    code: str = "BAD_ROW"
    column: str | None = None
    raw: str | None = None

    def __post_init__(self) -> None:
        _require(self.line >= 0, "line", "must not be negative")
        _text(self.reason, "reason", 1000, required=True)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f" [{self.column}]" if self.column else "")
        return f"{where}: {self.reason}"


Parsed = SourceRecord | Activity | RowError

_RECORD_FIELDS = tuple(f.name for f in fields(SourceRecord))


class Seen:
    """One buyer (the same raw cells) a connector's fast lane has read before in this import,
    and what the ingest side learned about it.

    The connector creates it and sets ``source_key``; ``hub.flows.ingest`` fills in the row key
    and content hash of the record it built, and sets ``skip`` once the database is known to
    hold exactly that record (and nothing else has been staged for its key since). While
    ``skip`` is set the connector need not read the buyer's next orders into a record at all:
    the record they stand for is one the database already holds."""

    __slots__ = ("content_hash", "row_key", "skip", "source_key", "staged_batch")

    def __init__(self, source_key: str) -> None:
        self.source_key = source_key
        self.row_key: tuple[str, str] | None = None
        self.content_hash: str | None = None
        self.staged_batch = -1
        self.skip = False


class Purchase(NamedTuple):
    """The import fast lane's item: one purchase and the buyer who made it, as plain values.

    It stands for exactly two canonical records — ``buyer`` re-observed at ``observed_at`` and
    the ``Activity`` the other fields describe (``kind`` purchase, no original) — and
    ``hub.flows.ingest`` writes the same rows for it, without building either object for every
    row of a large export. A connector yields one only for a row whose two records it has
    already validated: ``buyer`` was built (and validated) as a ``SourceRecord`` when first
    read, and the activity's fields are valid by construction (a connector-checked order
    number, amounts >= 0, an aware time, a known status). ``records()`` gives the two records.
    """

    buyer: SourceRecord | None
    observed_at: datetime
    source: str
    external_id: str
    business_line: str
    occurred_at: datetime
    status: ActivityStatus
    amount_fen: int
    quantity: int
    details: Mapping[str, Any]
    # The buyer as the import has seen them before; with ``buyer`` None and ``seen.skip`` set,
    # the buyer's record is one the database already holds and was not read again.
    seen: Seen | None = None

    @property
    def source_key(self) -> str | None:
        if self.buyer is not None:
            return self.buyer.source_key
        return None if self.seen is None else self.seen.source_key

    def buyer_record(self) -> SourceRecord | None:
        if self.buyer is None:
            if self.seen is not None:
                raise ValueError("a purchase whose buyer was skipped carries no buyer record")
            return None
        return reobserved(self.buyer, self.observed_at)

    def activity(self) -> Activity:
        return Activity(
            source=self.source,
            external_id=self.external_id,
            kind=ActivityKind.PURCHASE,
            business_line=self.business_line,
            occurred_at=self.occurred_at,
            status=self.status,
            source_key=self.source_key,
            amount_fen=self.amount_fen,
            quantity=self.quantity,
            details=self.details,
        )

    def records(self) -> list[SourceRecord | Activity]:
        record = self.buyer_record()
        return [self.activity()] if record is None else [record, self.activity()]


# What a connector's fast lane yields (``Purchase`` where it can, canonical records elsewhere).
Item = Parsed | Purchase
