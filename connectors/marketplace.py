"""Cell readers shared by the marketplace connectors (taobao*, douyin*).

Each reader either returns a clean value or raises ``FieldError`` naming the column; ``map_rows``
turns that into a ``RowError`` and moves on, so one bad cell costs one row, never the import.
Optional evidence that fails (an unusable phone) is reported as a ``FIELD_IGNORED`` row error
while the row itself is kept.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TypeVar

from connectors.base import HeaderMap, row_error
from hub.core.clock import local_naive_to_aware
from hub.core.errors import RecordError
from hub.core.normalize import (
    is_masked,
    masked_phone_pattern,
    parse_datetime,
    phone_e164,
    yuan_to_fen,
)
from hub.core.pii import mask_name, mask_phone
from hub.core.records import Identifier, IdentifierKind, RowError

_ORDER_NO = re.compile(r"\d{1,32}")
_CN_MOBILE = re.compile(r"\+861\d{10}")
_VIRTUAL = re.compile(r"\d{11}[-_]\d{1,6}")
_SPACES = re.compile(r"\s")
_S = TypeVar("_S")
_Item = TypeVar("_Item")  # what a connector yields per row: records, or a fast lane's items


class FieldError(ValueError):
    """One cell could not be read; the row becomes a RowError naming the column."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


def map_rows(
    rows: Iterable[tuple[int, list[str]]],
    filename: str,
    read_row: Callable[[int, list[str]], Iterable[_Item]],
) -> Iterator[_Item | RowError]:
    """Apply ``read_row`` to each non-blank row; a failing row becomes one RowError."""
    for line, row in rows:
        # Blank: no cell holds anything but whitespace (a first cell that does is enough to
        # know, without joining the row: the usual case).
        first = row[0] if row else ""
        if not (first and not first.isspace()) and not "".join(row).strip():
            continue
        try:
            # Materialised first so a row yields all of its records or only its error (a tuple
            # or list already is: the fast lane's one item per row is not copied).
            out = read_row(line, row)
            if type(out) is not tuple and type(out) is not list:
                out = list(out)
        except FieldError as exc:
            yield row_error(filename, line, exc.reason, column=exc.column, raw=row)
            continue
        except RecordError as exc:
            yield row_error(filename, line, exc.reason, column=exc.field, raw=row)
            continue
        yield from out


def note(filename: str, line: int, column: str, reason: str, raw: Sequence[str] | str) -> RowError:
    """A value we dropped from an otherwise good row (the row's records are still emitted)."""
    return row_error(filename, line, reason, column=column, raw=raw, code="FIELD_IGNORED")


def required(hm: HeaderMap, row: Sequence[str], fld: str) -> str:
    value = hm.get(row, fld)
    if value is None:
        raise FieldError(hm.column(fld), "is empty")
    return value


def order_no(hm: HeaderMap, row: Sequence[str], fld: str) -> str:
    value = required(hm, row, fld)
    if not _ORDER_NO.fullmatch(value):
        raise FieldError(hm.column(fld), "is not an order number (was it saved as a number?)")
    return value


def fen(hm: HeaderMap, row: Sequence[str], fld: str, *, need: bool = False) -> int | None:
    """Yuan text → integer fen; negative amounts are errors (refunds are their own records)."""
    value = required(hm, row, fld) if need else hm.get(row, fld)
    if value is None:
        return None
    try:
        amount = yuan_to_fen(value)
    except ValueError as exc:
        raise FieldError(hm.column(fld), str(exc)) from None
    if amount < 0:
        raise FieldError(hm.column(fld), "must not be negative")
    return amount


def count(hm: HeaderMap, row: Sequence[str], fld: str) -> int:
    value = hm.get(row, fld)
    if value is None:
        return 0
    if not value.isdigit():
        raise FieldError(hm.column(fld), f"not a whole number: {value!r}")
    return int(value)


def when(hm: HeaderMap, row: Sequence[str], fld: str) -> datetime | None:
    """Local wall-clock text (Asia/Shanghai) → aware datetime."""
    value = hm.get(row, fld)
    if value is None:
        return None
    try:
        return local_naive_to_aware(parse_datetime(value))
    except ValueError as exc:
        raise FieldError(hm.column(fld), str(exc)) from None


def when_required(hm: HeaderMap, row: Sequence[str], fld: str) -> datetime:
    value = when(hm, row, fld)
    if value is None:
        raise FieldError(hm.column(fld), "is empty")
    return value


def status_of(raw: str | None, column: str, table: Sequence[tuple[str, _S]]) -> _S:
    """First matching prefix in ``table`` (width-folded, spaces removed); unknown is an error."""
    if raw is None:
        raise FieldError(column, "is empty")
    text = unicodedata.normalize("NFKC", raw).replace(" ", "")
    for prefix, status in table:
        if text.startswith(prefix):
            return status
    raise FieldError(column, f"unknown order status {raw!r}")


def is_virtual_number(raw: str) -> bool:
    """Douyin's privacy numbers ``18400000000-1234`` route one order's calls; not an identity."""
    return bool(_VIRTUAL.fullmatch(_SPACES.sub("", raw)))


def receiver_phone(raw: str) -> Identifier | None:
    """A receiver's mobile: masked → PHONE_MASKED, dialable → unverified PHONE, virtual → None.

    Raises ``ValueError`` when the text is neither (the caller reports it and keeps the row).
    """
    if is_virtual_number(raw):
        return None
    if is_masked(raw):
        return Identifier(IdentifierKind.PHONE_MASKED, masked_phone_pattern(raw))
    return Identifier(IdentifierKind.PHONE, mobile_e164(raw))


def mobile_e164(raw: str) -> str:
    """A dialable mobile in E.164; raises ``ValueError`` for masked, virtual or short numbers."""
    e164 = phone_e164(raw)
    if e164.startswith("+86") and not _CN_MOBILE.fullmatch(e164):
        # phone_e164 accepts short numbers such as 12345; a Chinese mobile has 11 digits.
        raise ValueError("not an 11-digit mobile number")
    return e164


def receiver_key(
    *, phone: Identifier | None, name: str | None, extra: Sequence[str | None] = ()
) -> str | None:
    """``rcv:<digest>`` of masked receiver fields: weak, stable, and never reversible to PII.

    Plain phones and names are masked before hashing, so brute-forcing the digest can at best
    recover ``138****0001`` and ``张*``, which the exports already show.
    """
    masked_phone = None
    if phone is not None:
        masked_phone = phone.value if "*" in phone.value else mask_phone(phone.value)
    masked_name = mask_name(name) if name else None
    if not masked_phone and not masked_name:
        return None
    parts = [masked_phone or "", masked_name or "", *(e or "" for e in extra)]
    return "rcv:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
