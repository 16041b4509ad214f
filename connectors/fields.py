"""Value parsers the person/activity connectors share: times, money, gender, birthdays, phones.

Each raises ``BadField(column, reason)`` so the connector can turn it into a ``RowError`` that
names the column; reasons never contain the value itself (it may be PII).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import phonenumbers

from hub.core import normalize
from hub.core.clock import SHANGHAI, local_naive_to_aware
from hub.core.records import Gender, Identifier, IdentifierKind

# Placeholder years POS and CRM systems write when the member gave only month and day.
_PLACEHOLDER_YEARS = frozenset({0, 1, 1900, 1904})
_MONTH_DAY = re.compile(r"^-{0,2}(\d{1,2})[-/.](\d{1,2})$|^--(\d{2})(\d{2})$")
_WHOLE = re.compile(r"[+-]?\d{1,15}")
_PLACEHOLDER_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")

_GENDERS: dict[str, Gender | None] = {
    "m": Gender.MALE,
    "male": Gender.MALE,
    "男": Gender.MALE,
    "先生": Gender.MALE,
    "1": Gender.MALE,  # GB/T 2261.1 and WeChat both use 1 = male, 2 = female
    "f": Gender.FEMALE,
    "female": Gender.FEMALE,
    "女": Gender.FEMALE,
    "女士": Gender.FEMALE,
    "2": Gender.FEMALE,
    "0": None,
    "u": None,
    "unknown": None,
    "未知": None,
    "保密": None,
}


T = TypeVar("T")


class BadField(ValueError):
    """One cell could not be read; ``column`` is the header name, ``reason`` is PII-free."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


def local_time(
    raw: str, column: str, *, tz: ZoneInfo = SHANGHAI, formats: tuple[str, ...] = ()
) -> datetime:
    """A timestamp as written; no offset in the data means wall-clock time in ``tz``."""
    for fmt in formats:
        try:
            return local_naive_to_aware(datetime.strptime(raw.strip(), fmt), tz)  # noqa: DTZ007
        except ValueError:
            continue
    if formats:
        raise BadField(column, "does not match the configured date/time formats")
    try:
        return local_naive_to_aware(normalize.parse_datetime(raw), tz)
    except ValueError:
        raise BadField(column, "is not a date/time") from None


def local_date(raw: str, column: str) -> date:
    try:
        return normalize.parse_date(raw)
    except ValueError:
        raise BadField(column, "is not a date") from None


def fen(raw: Any, column: str) -> int:
    """An amount already in fen: an integer, or text of one (``12900``, ``-2900``).

    ``99.00`` is refused rather than read as 99 fen: a decimal point says someone wrote yuan.
    """
    if isinstance(raw, bool):
        raise BadField(column, "is not an amount in fen")
    if isinstance(raw, int):
        return raw
    value = str(raw).strip()
    if not _WHOLE.fullmatch(value):
        raise BadField(column, "must be a whole number of fen")
    return int(value)


def yuan(raw: Any, column: str) -> int:
    """An amount in yuan (``128.00``, ``¥1,280.5``) as integer fen."""
    try:
        return normalize.yuan_to_fen(str(raw))
    except ValueError as exc:
        reason = "has more than two decimals" if "decimals" in str(exc) else "is not an amount"
        raise BadField(column, reason) from None


def gender(raw: str | None) -> Gender | None:
    """Known spellings map to M/F; anything else (未知, blanks, odd codes) is simply unknown."""
    if raw is None:
        return None
    return _GENDERS.get(raw.strip().lower())


def birthday(raw: str | None, column: str, formats: tuple[str, ...] = ()) -> date | None:
    """A birthday, or None when the source knows only month and day (``--05-01``, ``1900-05-01``).

    A year-less birthday stays unknown rather than getting an invented year: identity would
    otherwise compare a made-up year against a real one.
    """
    if raw is None:
        return None
    text = raw.strip()
    month_day = _MONTH_DAY.match(text)
    if month_day:
        return None
    placeholder = _PLACEHOLDER_DATE.match(text)
    if placeholder and int(placeholder.group(1)) in _PLACEHOLDER_YEARS:
        return None
    value: date | None = None
    for fmt in formats:
        try:
            value = datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a date, no zone
            break
        except ValueError:
            continue
    if formats and value is None:
        raise BadField(column, "does not match the configured date formats")
    if value is None:
        value = _iso_date(text, column)
    if value.year in _PLACEHOLDER_YEARS:
        return None
    if not 1900 < value.year <= 2100:
        raise BadField(column, "year is out of range")
    return value


def _iso_date(text: str, column: str) -> date:
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    try:
        return normalize.parse_date(text)
    except ValueError:
        raise BadField(column, "is not a date") from None


def phone(
    raw: str,
    column: str,
    *,
    verified: bool = False,
    verified_at: datetime | None = None,
    region: str = "CN",
) -> Identifier:
    """A dialable phone (E.164), or a masked one as weak evidence (never verified)."""
    if normalize.is_masked(raw):
        try:
            return Identifier(IdentifierKind.PHONE_MASKED, normalize.masked_phone_pattern(raw))
        except ValueError:
            raise BadField(column, "is a masked value but not a masked phone") from None
    try:
        value = normalize.phone_e164(raw, region)
    except ValueError as exc:
        raise BadField(column, str(exc)) from None
    # phone_e164 accepts "possible" numbers (+8612345 is one); a merge key must be a real one.
    if not phonenumbers.is_valid_number(phonenumbers.parse(value)):
        raise BadField(column, "is not a valid phone number")
    return Identifier(
        IdentifierKind.PHONE,
        value,
        verified=verified,
        verified_at=verified_at if verified else None,
    )


def email(raw: str, column: str) -> Identifier:
    try:
        return Identifier(IdentifierKind.EMAIL, normalize.email(raw))
    except ValueError:
        raise BadField(column, "is not an email address") from None


def text(raw: Any) -> str | None:
    """A JSON or CSV value as cleaned text (ids stay strings; ``-`` and blanks are None)."""
    if raw is None or isinstance(raw, dict | list):
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return normalize.clean_cell(str(raw))


def attempt(errors: list[BadField], read: Callable[[], T]) -> T | None:
    """Read one optional field; a failure is collected (row imported without it), not raised."""
    try:
        return read()
    except BadField as exc:
        errors.append(exc)
        return None
