"""Store POS: receipts (CSV lines or JSON receipts) and member-card enrolments (CSV).

``parse(stream, filename=...)`` tells the three inputs apart by their content:

- **Receipt lines CSV** (hub-normalised, formats doc §7), one row per receipt *line*:
  ``store_id,pos_no,serial_num,trd_time,trd_type,member_card_num,member_mobile,line,item_barcode,
  qty,deal_amt_fen,pay_type,original_serial_num``. Lines of one receipt are consecutive, so a
  receipt is emitted when the next one starts (constant memory). A bad line drops its whole
  receipt (a partial sum would earn the wrong points) with one ``RowError`` per bad line.
- **Receipt JSON** (the Alibaba retail receipt model): header ``store_id, pos_no, serial_num,
  trd_time, trd_type, member_card_num, actual_amt`` (fen), ``lines[]``, ``payments[]``; returns
  carry ``original_pos_no``/``original_serial_num``. One object, an array, or NDJSON.
- **Enrolments CSV**: card no., phone, name, birthday, gender, store, enrolled at (English or
  Chinese headers, see ``MEMBER_SYNONYMS``).

Receipts become ``Activity``: a sale is ``PURCHASE``, a return ``REFUND``; both ``confirmed``
(a POS receipt is closed when printed) with a positive ``amount_fen`` (returns are written with
negative amounts; the sign lives in the kind). ``external_id`` is ``"{store_id}:{pos_no}:
{serial_num}"``, which assumes a serial is unique per till. ``trd_type`` SALE/RETURN (and
销售/退货) is read; other values (the API's integer codes are undocumented) are inferred: a
receipt that names an original serial is a return, otherwise a sale.

A return's original is ``"{store_id}:{original_pos_no}:{original_serial_num}"``. Returns are
often rung up on another till and the CSV layout has no ``original_pos_no``, so when it is
absent the till of a sale with that serial seen earlier in the same file (at the same store) is
used; failing that the id is ``"{store_id}:*:{original_serial_num}"`` — "any till at this
store" — which the ingest flow resolves by (store, serial). ``details["original_resolved_by"]``
says which rule applied (``column``, ``same_file``, ``unresolved``).

The person behind a receipt: ``source_key`` = the member card no. A receipt with a phone but no
card also yields a ``SourceRecord`` keyed ``"mobile:<E.164>"`` (cashier-typed, so unverified)
that the activity points to. No card and no phone: an anonymous sale, ``source_key`` None.

Enrolments become ``SourceRecord`` (``source_key`` = card no.) with ``CARD_NO`` (scope
``brand``) and ``PHONE`` marked verified: enrolment at the till confirms the phone by SMS code,
so ``verified_at`` is the enrolment time. Year-less birthdays stay unknown.

Row errors: ``BAD_ROW`` means the row was not imported; ``BAD_FIELD`` means the row was imported
without the named column's value.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from connectors import fields
from connectors.base import HeaderMap, csv_rows, resolve_header, row_error, sniff_encoding
from connectors.fields import BadField
from connectors.jsonio import first_char, json_objects, peek_head
from hub.core.clock import utcnow
from hub.core.errors import ImportFormatError, RecordError
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Identifier,
    IdentifierKind,
    Parsed,
    SourceRecord,
)

SOURCE = "pos"
BUSINESS_LINE = "store"
CARD_SCOPE = "brand"
RECENT_SALES = 10_000  # sales remembered to find a return's till; bounds memory on huge files

RECEIPT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "store_id": ("store_id", "门店号", "门店编码", "门店"),
    "pos_no": ("pos_no", "款机号", "收银机号"),
    "serial_num": ("serial_num", "流水号", "小票号"),
    "trd_time": ("trd_time", "交易时间"),
    "trd_type": ("trd_type", "交易类型"),
    "member_card_num": ("member_card_num", "会员卡号"),
    "member_mobile": ("member_mobile", "客户电话", "会员手机号"),
    "line": ("line", "index", "行号"),
    "item_barcode": ("item_barcode", "商品条码"),
    "qty": ("qty", "quantity", "数量"),
    "deal_amt_fen": ("deal_amt_fen", "deal_amt", "成交金额(分)"),
    "pay_type": ("pay_type", "支付方式"),
    "original_pos_no": ("original_pos_no", "原款机号"),
    "original_serial_num": ("original_serial_num", "原始单号", "原流水号"),
}
RECEIPT_REQUIRED = ("store_id", "pos_no", "serial_num", "trd_time", "deal_amt_fen")

MEMBER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "card_no": ("card_no", "会员卡号", "卡号", "member_card_num"),
    "phone": ("phone", "手机号", "手机", "手机号码", "mobile"),
    "name": ("name", "姓名", "会员姓名"),
    "birthday": ("birthday", "生日", "出生日期"),
    "gender": ("gender", "性别", "sex"),
    "store": ("store", "门店", "开卡门店", "store_id", "member_shop_id"),
    "enrolled_at": ("enrolled_at", "开卡时间", "入会时间", "注册时间", "member_time"),
}
MEMBER_REQUIRED = ("card_no", "phone")

_SALE = frozenset({"sale", "销售", "1"})
_RETURN = frozenset({"return", "refund", "退货"})


def looks_like(head: bytes) -> bool:
    """True when a file head is a POS receipt CSV/JSON or an enrolment CSV."""
    if first_char(head) in ("{", "["):
        sample = head[:4096].decode("utf-8", errors="ignore")
        return '"serial_num"' in sample and '"store_id"' in sample
    text = head.decode(sniff_encoding(head), errors="ignore").lstrip("\ufeff")
    header = {cell.strip().strip('"') for cell in text.split("\n", 1)[0].split(",")}
    return any(
        all(any(n in header for n in table[f]) for f in required)
        for table, required in (
            (RECEIPT_SYNONYMS, RECEIPT_REQUIRED),
            (MEMBER_SYNONYMS, MEMBER_REQUIRED),
        )
    )


def parse(
    stream: BinaryIO, *, filename: str, observed_at: datetime | None = None
) -> Iterator[Parsed]:
    """Receipts or enrolments, told apart by content. ``observed_at`` stands in for enrolment
    rows without a date (default: now)."""
    buffered, head = peek_head(stream)
    if first_char(head) in ("{", "["):
        yield from _parse_receipts_json(buffered, filename)
        return
    rows = csv_rows(buffered)
    try:
        _, header = next(rows)
    except StopIteration:
        raise ImportFormatError(f"{filename} is empty") from None
    try:
        hmap = resolve_header(
            header, RECEIPT_SYNONYMS, RECEIPT_REQUIRED, connector="POS receipt", filename=filename
        )
    except ImportFormatError as receipt_error:
        try:
            hmap = resolve_header(
                header, MEMBER_SYNONYMS, MEMBER_REQUIRED, connector="POS member", filename=filename
            )
        except ImportFormatError:
            raise ImportFormatError(
                f"{receipt_error.message}; nor is it a POS member file (expected headers include "
                f"{', '.join(MEMBER_SYNONYMS[f][0] for f in MEMBER_REQUIRED)})"
            ) from None
        yield from _members(rows, hmap, filename, observed_at or utcnow())
        return
    yield from _receipt_lines(rows, hmap, filename)


# -- receipts -------------------------------------------------------------------------------------


@dataclass
class _Receipt:
    line: int
    head: dict[str, str | None]
    amount_fen: int = 0
    quantity: int = 0
    lines: int = 0
    pay_types: set[str] = field(default_factory=set)
    broken: bool = False


class _Tills:
    """Which till a recent sale was rung up on, per (store, serial): finds a return's original."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[str, str], str | None] = OrderedDict()

    def remember(self, store: str, serial: str, pos_no: str) -> None:
        key = (store, serial)
        # Two tills with one serial make the serial ambiguous: remember that, not a guess.
        self._seen[key] = pos_no if self._seen.get(key, pos_no) == pos_no else None
        self._seen.move_to_end(key)
        if len(self._seen) > RECENT_SALES:
            self._seen.popitem(last=False)

    def find(self, store: str, serial: str) -> str | None:
        return self._seen.get((store, serial))


def _receipt_lines(
    rows: Iterator[tuple[int, list[str]]], hmap: HeaderMap, filename: str
) -> Iterator[Parsed]:
    tills = _Tills()
    current: _Receipt | None = None
    closed: OrderedDict[tuple[str | None, ...], None] = OrderedDict()
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        head = {f: hmap.get(row, f) for f in RECEIPT_SYNONYMS}
        key = (head["store_id"], head["pos_no"], head["serial_num"])
        if current is None or key != _key(current.head):
            if current is not None:
                yield from _close(current, tills, filename, hmap.column)
                closed[_key(current.head)] = None
                if len(closed) > RECENT_SALES:
                    closed.popitem(last=False)
            if key in closed:
                reason = "receipt lines are not consecutive; this later line was not imported"
                yield row_error(filename, line, reason, column=hmap.column("serial_num"), raw=row)
                current = None
                continue
            current = _Receipt(line=line, head=head)
        try:
            amount = fields.fen(_need(head, "deal_amt_fen", hmap), hmap.column("deal_amt_fen"))
            qty = head["qty"]
            current.quantity += _quantity(qty, hmap.column("qty")) if qty else 1
        except BadField as exc:
            current.broken = True
            reason = f"{exc.reason}; receipt not imported"
            yield row_error(filename, line, reason, column=exc.column, raw=row)
            continue
        current.amount_fen += amount
        current.lines += 1
        if head["pay_type"]:
            current.pay_types.add(head["pay_type"])
    if current is not None:
        yield from _close(current, tills, filename, hmap.column)


def _key(head: Mapping[str, str | None]) -> tuple[str | None, ...]:
    return (head["store_id"], head["pos_no"], head["serial_num"])


def _need(head: Mapping[str, Any], fld: str, hmap: HeaderMap | None = None) -> Any:
    value = head.get(fld)
    if value is None or value == "":
        raise BadField(hmap.column(fld) if hmap else fld, "is empty")
    return value


def _quantity(raw: str, column: str) -> int:
    try:
        value = float(raw)
    except ValueError:
        raise BadField(column, "is not a quantity") from None
    # Weighed goods (0.35 kg) count as one item.
    return abs(int(value)) if value == int(value) else 1


def _close(
    receipt: _Receipt, tills: _Tills, filename: str, column: Callable[[str], str]
) -> Iterator[Parsed]:
    if receipt.broken:
        return
    details = {"lines": receipt.lines, "pay_types": sorted(receipt.pay_types)}
    try:
        yield from _receipt(receipt.head, receipt.amount_fen, receipt.quantity, details, tills)
    except (BadField, RecordError) as exc:
        bad = exc.column if isinstance(exc, BadField) else exc.field
        yield row_error(filename, receipt.line, exc.reason, column=column(bad))


def _receipt(
    head: Mapping[str, Any],
    amount_fen: int,
    quantity: int,
    details: dict[str, Any],
    tills: _Tills,
) -> Iterator[Parsed]:
    """One receipt's header and totals → (an optional SourceRecord and) one Activity."""
    store, pos_no, serial, trd_time = (
        _need({f: fields.text(head.get(f))}, f)
        for f in ("store_id", "pos_no", "serial_num", "trd_time")
    )
    when = fields.local_time(trd_time, "trd_time")
    original_serial = fields.text(head.get("original_serial_num"))
    trd_type = (fields.text(head.get("trd_type")) or "").lower()
    is_return = trd_type in _RETURN or (trd_type not in _SALE and original_serial is not None)
    if is_return and original_serial is None:
        raise BadField("original_serial_num", "a return must name the original receipt")
    if not is_return and amount_fen < 0:
        raise BadField("deal_amt_fen", "a sale has a negative total")
    details = {"store_id": store, "pos_no": pos_no, "serial_num": serial, **details}
    original = None
    if is_return:
        assert original_serial is not None
        original_pos = fields.text(head.get("original_pos_no"))
        resolved_by = "column"
        if original_pos is None:
            original_pos = tills.find(store, original_serial)
            resolved_by = "same_file" if original_pos else "unresolved"
        original = f"{store}:{original_pos or '*'}:{original_serial}"
        details["original_resolved_by"] = resolved_by
    else:
        tills.remember(store, serial, pos_no)

    source_key = fields.text(head.get("member_card_num"))
    mobile = fields.text(head.get("member_mobile"))
    if source_key is None and mobile is not None:
        try:
            ident = fields.phone(mobile, "member_mobile")
        except BadField:
            ident = None  # an unreadable phone leaves the sale anonymous rather than lost
        if ident is not None and ident.kind is IdentifierKind.PHONE:
            source_key = f"mobile:{ident.value}"
            yield SourceRecord(
                source=SOURCE,
                source_key=source_key,
                business_line=BUSINESS_LINE,
                observed_at=when,
                identifiers=(ident,),
            )
    yield Activity(
        source=SOURCE,
        external_id=f"{store}:{pos_no}:{serial}",
        kind=ActivityKind.REFUND if is_return else ActivityKind.PURCHASE,
        business_line=BUSINESS_LINE,
        occurred_at=when,
        status=ActivityStatus.CONFIRMED,
        source_key=source_key,
        amount_fen=abs(amount_fen),
        quantity=quantity,
        original_external_id=original,
        details=details,
    )


def _parse_receipts_json(stream: BinaryIO, filename: str) -> Iterator[Parsed]:
    tills = _Tills()
    first = True
    for item in json_objects(stream, filename=filename):
        if not isinstance(item, tuple):
            yield item
            continue
        line, obj = item
        if first and not (isinstance(obj, dict) and "serial_num" in obj and "store_id" in obj):
            raise ImportFormatError(
                f"{filename} does not look like POS receipt JSON: expected objects with "
                "store_id, pos_no, serial_num, trd_time, actual_amt"
            )
        first = False
        if not isinstance(obj, dict):
            yield row_error(filename, line, "expected a receipt object", raw=str(obj)[:200])
            continue
        try:
            amount = fields.fen(_need(obj, "actual_amt"), "actual_amt")
            lines = obj.get("lines") or []
            quantity = sum(
                _quantity(str(ln.get("quantity", 1)), "lines.quantity")
                for ln in (lines if isinstance(lines, list) else [])
                if isinstance(ln, dict)
            )
            payments = obj.get("payments") or []
            pay_types = sorted(
                {str(p["pay_type"]) for p in payments if isinstance(p, dict) and p.get("pay_type")}
            )
            details: dict[str, Any] = {"lines": len(lines), "pay_types": pay_types}
            for extra in ("ask_amt", "discount_amt", "member_discount"):
                if isinstance(obj.get(extra), int):
                    details[f"{extra}_fen"] = obj[extra]
            head = {**obj, "member_mobile": obj.get("member_mobile", obj.get("mobile"))}
            yield from _receipt(head, amount, quantity, details, tills)
        except (BadField, RecordError) as exc:
            bad = exc.column if isinstance(exc, BadField) else exc.field
            yield row_error(filename, line, exc.reason, column=bad, raw=_safe_raw(obj))


def _safe_raw(obj: Mapping[str, Any]) -> str:
    keep = ("store_id", "pos_no", "serial_num", "trd_time", "trd_type", "actual_amt")
    return ",".join(f"{k}={obj.get(k)}" for k in keep if k in obj)


# -- enrolments -----------------------------------------------------------------------------------


def _members(
    rows: Iterator[tuple[int, list[str]]], hmap: HeaderMap, filename: str, default_time: datetime
) -> Iterator[Parsed]:
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        yield from _member(line, row, hmap, filename, default_time)


def _member(
    line: int, row: Sequence[str], hmap: HeaderMap, filename: str, default_time: datetime
) -> Iterator[Parsed]:
    get = hmap.get
    card = get(row, "card_no")
    if card is None:
        yield row_error(
            filename, line, "card number is empty", column=hmap.column("card_no"), raw=row
        )
        return
    try:
        enrolled = get(row, "enrolled_at")
        when = fields.local_time(enrolled, hmap.column("enrolled_at")) if enrolled else None
    except BadField as exc:
        yield row_error(filename, line, exc.reason, column=exc.column, raw=row)
        return
    identifiers = [Identifier(IdentifierKind.CARD_NO, card, scope=CARD_SCOPE)]
    errors: list[BadField] = []
    mobile = get(row, "phone")
    if mobile:
        # Enrolment sends an SMS code to the phone before the card is issued.
        phone = fields.attempt(
            errors,
            lambda: fields.phone(mobile, hmap.column("phone"), verified=True, verified_at=when),
        )
        if phone is not None:
            identifiers.append(phone)
    birthday = fields.attempt(
        errors, lambda: fields.birthday(get(row, "birthday"), hmap.column("birthday"))
    )
    for bad in errors:
        yield row_error(filename, line, bad.reason, column=bad.column, raw=row, code="BAD_FIELD")
    store = get(row, "store")
    yield SourceRecord(
        source=SOURCE,
        source_key=card,
        business_line=BUSINESS_LINE,
        observed_at=when or default_time,
        identifiers=tuple(identifiers),
        name=get(row, "name"),
        gender=fields.gender(get(row, "gender")),
        birthday=birthday,
        attributes={"enrol_store": store} if store else {},
    )
