"""Normalisers shared by connectors (while parsing) and identity (while keying).

Each returns the canonical form or raises ``ValueError`` with a reason a person can act on; the
caller turns that into a ``RowError`` or ``RecordError``. None of them logs its input.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import phonenumbers

_MASK_CHARS = "*＊•●xX"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SPACE = re.compile(r"\s+")


_EMPTY_CELLS = frozenset(("", "-", "--", "—", "null", "NULL", "None"))
_WRAPPING = "='\""


def clean_cell(value: str | None) -> str | None:
    """Undo exporter wrapping: ``="123"``, a leading ``'``, tab suffixes, ``-`` for empty."""
    if value is None:
        return None
    # Most cells carry none of the wrapping; this check is the whole cost of reading them.
    if (
        value
        and value[0] not in _WRAPPING
        and value[-1] != '"'
        and not value[0].isspace()
        and not value[-1].isspace()
        and "\t" not in value
    ):
        return None if value in _EMPTY_CELLS else value
    text = value.replace("\t", "").strip()
    if text.startswith('="') and text.endswith('"'):
        text = text[2:-1]
    text = text.lstrip("'").strip().strip('"').strip()
    if text in _EMPTY_CELLS:
        return None
    return text


def is_masked(value: str) -> bool:
    return "*" in value or "＊" in value or "•" in value or "●" in value


def phone_e164(raw: str, default_region: str = "CN") -> str:
    """A dialable phone in E.164 (``+8613800000001``); masked or invalid numbers are rejected."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if is_masked(text):
        raise ValueError("phone is masked")
    if re.fullmatch(r"\d{11}-\d{1,6}", text):
        raise ValueError("virtual number (A-B form) is not an identity")
    digits = re.sub(r"[\s\-()]", "", text)
    if re.fullmatch(r"1\d{10}", digits):
        digits = "+86" + digits
    elif re.fullmatch(r"86-?1\d{10}", digits):
        digits = "+" + digits.replace("-", "")
    try:
        parsed = phonenumbers.parse(digits, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"phone does not parse (error {exc.error_type})") from None
    # is_possible_number only checks length ranges (it takes +8612345); a key must be real.
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("phone is not a valid number for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# ``138****5678`` as platforms export it is already canonical (no country code to drop).
_PLAIN_MASKED_PHONE = re.compile(r"(?!86)[\d*]{7,15}", re.ASCII)


def masked_phone_pattern(raw: str) -> str:
    """Canonical form of a masked phone: digits kept, every mask character as ``*``."""
    if "*" in raw and _PLAIN_MASKED_PHONE.fullmatch(raw):
        return raw
    text = re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", raw))
    text = re.sub(r"^\+?86(?=1)", "", text)
    pattern = "".join("*" if ch in _MASK_CHARS and not ch.isdigit() else ch for ch in text)
    if not re.fullmatch(r"[\d*]{7,15}", pattern) or "*" not in pattern:
        raise ValueError("not a masked phone")
    return pattern


def cn_id_number(raw: str) -> str:
    """An 18-character resident ID, upper-cased, with its GB 11643 check digit verified."""
    text = unicodedata.normalize("NFKC", raw).strip().upper()
    if is_masked(text):
        raise ValueError("ID number is masked")
    if not re.fullmatch(r"\d{17}[\dX]", text):
        raise ValueError("ID number must be 17 digits and a check digit")
    total = sum(int(d) * w for d, w in zip(text[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != text[17]:
        raise ValueError("ID number check digit is wrong")
    return text


def document_number(doc_type: str, raw: str) -> str:
    """``TYPE:NUMBER`` for any identity document; Chinese resident IDs are checksum-verified."""
    kind = doc_type.strip().upper() or "UNKNOWN"
    if kind in ("ID_CARD", "0", "CN_ID", "身份证"):
        return "ID_CARD:" + cn_id_number(raw)
    number = re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", raw)).upper()
    if not number or is_masked(number):
        raise ValueError("document number is empty or masked")
    return f"{kind}:{number}"


def email(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip().lower()
    if not _EMAIL.match(text):
        raise ValueError("not an email address")
    return text


def name(raw: str) -> str:
    """Names with width and spacing folded; Latin names upper-cased for comparison."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFKC", raw)).strip()
    if not text:
        raise ValueError("name is empty")
    return text.upper() if text.isascii() else text.replace(" ", "")


_PLAIN_YUAN = re.compile(r"(\d{1,15})(?:\.(\d{1,2}))?", re.ASCII)


def yuan_to_fen(raw: str) -> int:
    """``128.00``, ``¥1,280.5``, ``59.9元`` → integer fen; more than two decimals is an error."""
    # Exports mostly write plain ``128.00``: integer arithmetic gives what Decimal would.
    plain = _PLAIN_YUAN.fullmatch(raw)
    if plain is not None:
        whole, cents = plain.groups()
        return int(whole) * 100 + (int(cents.ljust(2, "0")) if cents else 0)
    text = unicodedata.normalize("NFKC", raw).strip().replace(",", "").replace("¥", "")
    text = text.removesuffix("元").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not an amount: {raw!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount: {raw!r}")
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise ValueError("amount has more than two decimals")
    return int(fen)


_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d",
    "%Y/%m/%d",
)


# The common layouts, for which ``datetime.fromisoformat`` gives the same result as strptime at a
# fiftieth of the cost; the shape is checked first so nothing strptime would refuse gets through.
_ISO_SHAPE = re.compile(
    r"\d{4}([-/])\d{2}\1\d{2}(?: \d{2}:\d{2}(?::\d{2})?)?|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}",
    re.ASCII,
)


def parse_datetime(raw: str) -> datetime:
    """The layouts our sources write; naive results are wall-clock time (caller sets the zone)."""
    text = raw.strip()
    if _ISO_SHAPE.fullmatch(text):
        try:
            return datetime.fromisoformat(text.replace("/", "-"))
        except ValueError:
            pass  # e.g. month 13: let strptime decide, as it always has
    if text.endswith("Z"):
        text = text[:-1] + "+0000"
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)  # noqa: DTZ007 - zone applied by the caller
        except ValueError:
            continue
    raise ValueError(f"not a date/time: {raw!r}")


def parse_date(raw: str) -> date:
    return parse_datetime(raw).date()
