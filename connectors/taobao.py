"""Taobao/Tmall order exports (formats doc §1) → buyer SourceRecords, purchase and refund Activities.

Two layouts, told apart by content (an XLSX is a zip):

- legacy GBK CSV pair: ``ExportOrderList*.csv``, one row per main order, is complete on its own
  (宝贝总数量 gives the quantity). ``parse_pair`` also takes ``ExportOrderDetailList*.csv``; its
  items are only read, and indexed by 订单编号, when the order file lacks 宝贝总数量, so the
  usual case stays constant-memory.
- 千牛 XLSX: a main-order sheet (buyer, shipping) and a sub-order sheet (one purchase per
  sub-order, refunds from 退款状态/退款金额). The sub-order sheet has no buyer column, so the
  main sheet is indexed by order id first; Excel caps a sheet at 1,048,576 rows, which bounds it.

Buyer key: the ouid when the export carries one (stable per merchant, the key taobao_members uses),
else 买家会员名. A masked nick like ``t**0`` is shared by many buyers and is never a key: such
buyers get ``rcv:<digest>`` of the *masked* receiver fields — weak, and never reversible to a phone.
Receiver name, phone and province/city describe the receiver, not necessarily the buyer, so they are
weak evidence only; the street address is dropped (PIPL minimisation, formats doc §9).

Statuses: 交易成功 → confirmed; paid or shipped → pending; 交易关闭 → cancelled; 等待买家付款 →
no activity (nothing was paid yet), though the buyer record is still emitted.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import openpyxl

from connectors.base import HeaderMap, csv_rows, resolve_header, row_error
from hub.core.clock import local_naive_to_aware
from hub.core.errors import ImportFormatError, RecordError
from hub.core.normalize import (
    is_masked,
    masked_phone_pattern,
    parse_datetime,
    phone_e164,
    yuan_to_fen,
)
from hub.core.pii import mask_name, mask_phone
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Address,
    Identifier,
    IdentifierKind,
    Parsed,
    RowError,
    SourceRecord,
)

SOURCE = "taobao"
BUSINESS_LINE = "taobao"

ORDER_SYNONYMS: Mapping[str, Sequence[str]] = {
    "order_id": ("订单编号",),
    "buyer_nick": ("买家会员名", "买家昵称"),
    "ouid": ("ouid", "买家ouid", "buyer_open_uid", "买家open_uid"),
    "paid": ("买家实际支付金额", "买家实付金额"),
    "shipping": ("买家应付邮费",),
    "status": ("订单状态",),
    "created_at": ("订单创建时间", "下单时间"),
    "paid_at": ("订单付款时间", "付款时间"),
    "confirmed_at": ("确认收货时间",),
    "receiver": ("收货人姓名", "收件人姓名", "收件人"),
    "address": ("收货地址",),
    "mobile": ("联系手机", "收货人手机"),
    "quantity": ("宝贝总数量",),
    "shop_id": ("店铺Id", "店铺ID"),
    "refund": ("退款金额",),
}
ORDER_REQUIRED = ("order_id", "paid", "status", "created_at")

ITEM_SYNONYMS: Mapping[str, Sequence[str]] = {
    "order_id": ("订单编号",),
    "title": ("标题", "宝贝标题"),
    "quantity": ("购买数量",),
}

SUB_ORDER_SYNONYMS: Mapping[str, Sequence[str]] = {
    "sub_order_id": ("子订单编号",),
    "order_id": ("主订单编号",),
    "item_id": ("商品ID",),
    "quantity": ("购买数量",),
    "paid": ("买家实付金额", "买家实际支付金额"),
    "status": ("订单状态",),
    "refund_status": ("退款状态",),
    "refund": ("退款金额",),
    "created_at": ("订单创建时间",),
    "paid_at": ("订单付款时间",),
    "shipped_at": ("发货时间",),
}
SUB_ORDER_REQUIRED = ("sub_order_id", "order_id", "paid", "status")

_ORDER_NO = re.compile(r"\d{1,32}")
_ZIP_MAGIC = b"PK\x03\x04"
# Prefix → status; None = not paid yet (no activity). Texts and TOP API codes both appear.
_STATUSES: tuple[tuple[str, ActivityStatus | None], ...] = (
    ("等待买家付款", None),
    ("WAIT_BUYER_PAY", None),
    ("TRADE_NO_CREATE_PAY", None),
    ("交易成功", ActivityStatus.CONFIRMED),
    ("TRADE_FINISHED", ActivityStatus.CONFIRMED),
    ("交易关闭", ActivityStatus.CANCELLED),
    ("交易被淘宝关闭", ActivityStatus.CANCELLED),
    ("TRADE_CLOSED", ActivityStatus.CANCELLED),  # also TRADE_CLOSED_BY_TAOBAO
    ("买家已付款", ActivityStatus.PENDING),
    ("卖家已发货", ActivityStatus.PENDING),
    ("卖家部分发货", ActivityStatus.PENDING),
    ("WAIT_", ActivityStatus.PENDING),  # WAIT_SELLER_SEND_GOODS, WAIT_BUYER_CONFIRM_GOODS
    ("SELLER_CONSIGNED_PART", ActivityStatus.PENDING),
    ("TRADE_BUYER_SIGNED", ActivityStatus.PENDING),
)


class FieldError(ValueError):
    """One cell could not be read; the row becomes a RowError naming the column."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


def looks_like(header: Sequence[str]) -> bool:
    """A legacy order CSV or a 千牛 main-order sheet (not Douyin: it has no 买家应付邮费)."""
    names = {h.strip().lstrip("\ufeff") for h in header}
    return "订单编号" in names and bool(names & {"买家会员名", "买家应付邮费", "买家应付货款"})


def looks_like_items(header: Sequence[str]) -> bool:
    names = {h.strip().lstrip("\ufeff") for h in header}
    return {"订单编号", "标题", "购买数量"} <= names


def parse(
    stream: BinaryIO, *, filename: str, shop_id: str | None = None
) -> Iterator[Parsed]:
    """An order CSV (legacy) or a 千牛 XLSX. ``shop_id`` scopes ouids when no 店铺Id column."""
    if _is_zip(stream, filename):
        yield from _parse_xlsx(stream, filename=filename, shop_id=shop_id)
        return
    rows = csv_rows(stream)
    hm = _order_header(next(rows, (1, []))[1], filename)
    yield from _order_rows(rows, hm, _Ctx(filename, shop_id), quantities=None)


def parse_pair(
    orders: BinaryIO,
    items: BinaryIO,
    *,
    orders_filename: str,
    items_filename: str,
    shop_id: str | None = None,
) -> Iterator[Parsed]:
    """The legacy pair. Both headers are checked; items fill quantities the order file lacks."""
    rows = csv_rows(orders)
    hm = _order_header(next(rows, (1, []))[1], orders_filename)
    item_rows = csv_rows(items)
    ihm = resolve_header(
        next(item_rows, (1, []))[1],
        ITEM_SYNONYMS,
        ("order_id", "quantity"),
        connector="taobao items (ExportOrderDetailList)",
        filename=items_filename,
    )
    quantities: dict[str, int] | None = None
    if "quantity" not in hm.index:
        quantities = {}
        for line, row in item_rows:
            if not any(c.strip() for c in row):
                continue
            try:
                oid = _order_no(ihm, row, "order_id")
                qty = _count(ihm, row, "quantity")
            except FieldError as exc:
                yield row_error(items_filename, line, exc.reason, column=exc.column, raw=row)
                continue
            quantities[oid] = quantities.get(oid, 0) + qty
    yield from _order_rows(rows, hm, _Ctx(orders_filename, shop_id), quantities=quantities)


# -- legacy CSV / main-order rows ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ctx:
    filename: str
    shop_id: str | None


def _order_header(header: Sequence[str], filename: str) -> HeaderMap:
    hm = resolve_header(
        header, ORDER_SYNONYMS, ORDER_REQUIRED, connector="taobao order", filename=filename
    )
    if "buyer_nick" not in hm.index and "ouid" not in hm.index:
        raise ImportFormatError(
            f"{filename} does not look like a taobao order file: it has neither 买家会员名 "
            "nor ouid, so no order can be tied to a buyer"
        )
    return hm


def _order_rows(
    rows: Iterator[tuple[int, list[str]]],
    hm: HeaderMap,
    ctx: _Ctx,
    *,
    quantities: Mapping[str, int] | None,
    index: dict[str, tuple[str | None, datetime]] | None = None,
) -> Iterator[Parsed]:
    """One main order per row. With ``index`` (XLSX), only buyers are emitted and indexed."""
    for line, row in rows:
        if not any(c.strip() for c in row):
            continue
        try:
            out = _order_row(hm, row, line, ctx, quantities=quantities, index=index)
        except FieldError as exc:
            yield row_error(ctx.filename, line, exc.reason, column=exc.column, raw=row)
            continue
        except RecordError as exc:
            yield row_error(ctx.filename, line, exc.reason, column=exc.field, raw=row)
            continue
        yield from out


def _order_row(
    hm: HeaderMap,
    row: Sequence[str],
    line: int,
    ctx: _Ctx,
    *,
    quantities: Mapping[str, int] | None,
    index: dict[str, tuple[str | None, datetime]] | None,
) -> list[Parsed]:
    order_id = _order_no(hm, row, "order_id")
    status = _status(hm, row)
    created = _when(hm, row, "created_at", required=True)
    assert created is not None
    paid_at = _when(hm, row, "paid_at")
    paid = _fen(hm, row, "paid", required=True) or 0
    shipping = _fen(hm, row, "shipping") or 0
    refund = _fen(hm, row, "refund") or 0
    confirmed_at = _when(hm, row, "confirmed_at")
    if quantities is not None:
        quantity = quantities.get(order_id, 0)
    else:
        quantity = _count(hm, row, "quantity") if hm.get(row, "quantity") else 0
    out: list[Parsed] = []
    record = _buyer(hm, row, line, ctx, observed_at=created, notes=out)
    if record is not None:
        out.append(record)
    key = record.source_key if record is not None else None
    occurred = paid_at or created
    if index is not None:
        index[order_id] = (key, occurred)
        return out
    if status is not None:
        out.append(
            Activity(
                source=SOURCE,
                external_id=order_id,
                kind=ActivityKind.PURCHASE,
                business_line=BUSINESS_LINE,
                occurred_at=occurred,
                status=status,
                source_key=key,
                # 买家实际支付金额 includes postage; a closed unpaid order can show 0 paid.
                amount_fen=max(paid - shipping, 0),
                quantity=quantity,
                details={"shipping_fen": shipping, "paid_fen": paid},
            )
        )
    if refund > 0:
        out.append(_refund(order_id, key, refund, max(confirmed_at or occurred, occurred)))
    return out


# -- XLSX ------------------------------------------------------------------------------------


def _parse_xlsx(stream: BinaryIO, *, filename: str, shop_id: str | None) -> Iterator[Parsed]:
    with warnings.catch_warnings():
        # Vendor workbooks often lack a default style; that is not a problem for reading values.
        warnings.simplefilter("ignore", UserWarning)
        book = openpyxl.load_workbook(stream, read_only=True, data_only=True)
    try:
        main, sub = None, None
        for ws in book.worksheets:
            names = {c.strip() for c in next(_sheet_rows(ws), (1, []))[1]}
            if "子订单编号" in names and sub is None:
                sub = ws
            elif "订单编号" in names and main is None:
                main = ws
        if main is None:
            first = book.worksheets[0] if book.worksheets else None
            header = next(_sheet_rows(first), (1, []))[1] if first is not None else []
            _order_header(header, filename)  # raises, naming the expected headers
            return
        main_file = f"{filename}[{main.title}]"
        rows = _sheet_rows(main)
        hm = _order_header(next(rows, (1, []))[1], main_file)
        index: dict[str, tuple[str | None, datetime]] | None = {} if sub is not None else None
        yield from _order_rows(rows, hm, _Ctx(main_file, shop_id), quantities=None, index=index)
        if sub is not None and index is not None:
            yield from _sub_order_rows(sub, index, f"{filename}[{sub.title}]")
    finally:
        book.close()


def _sub_order_rows(
    ws: Any, index: Mapping[str, tuple[str | None, datetime]], filename: str
) -> Iterator[Parsed]:
    rows = _sheet_rows(ws)
    hm = resolve_header(
        next(rows, (1, []))[1],
        SUB_ORDER_SYNONYMS,
        SUB_ORDER_REQUIRED,
        connector="taobao sub-order sheet",
        filename=filename,
    )
    for line, row in rows:
        if not any(c.strip() for c in row):
            continue
        try:
            yield from _sub_order_row(hm, row, index)
        except FieldError as exc:
            yield row_error(filename, line, exc.reason, column=exc.column, raw=row)
        except RecordError as exc:
            yield row_error(filename, line, exc.reason, column=exc.field, raw=row)


def _sub_order_row(
    hm: HeaderMap, row: Sequence[str], index: Mapping[str, tuple[str | None, datetime]]
) -> list[Parsed]:
    sub_id = _order_no(hm, row, "sub_order_id")
    order_id = _order_no(hm, row, "order_id")
    if order_id not in index:
        raise FieldError(hm.column("order_id"), "main order is missing or unreadable in the main sheet")
    key, main_time = index[order_id]
    status = _status(hm, row)
    paid = _fen(hm, row, "paid", required=True) or 0
    refund = _fen(hm, row, "refund")
    refunded = (hm.get(row, "refund_status") or "") in ("退款成功", "SUCCESS")
    occurred = _when(hm, row, "paid_at") or _when(hm, row, "created_at") or main_time
    latest = max(occurred, _when(hm, row, "shipped_at") or occurred)
    quantity = _count(hm, row, "quantity") if hm.get(row, "quantity") else 0
    out: list[Parsed] = []
    if status is not None:
        out.append(
            Activity(
                source=SOURCE,
                external_id=sub_id,
                kind=ActivityKind.PURCHASE,
                business_line=BUSINESS_LINE,
                occurred_at=occurred,
                status=status,
                source_key=key,
                amount_fen=paid,  # postage is charged on the main order, not the sub-order
                quantity=quantity,
                details={"order_id": order_id, "item_id": hm.get(row, "item_id") or ""},
            )
        )
    if refunded and refund != 0:
        # 退款成功 without 退款金额 means the whole sub-order was refunded.
        out.append(_refund(sub_id, key, paid if refund is None else refund, latest))
    return out


def _sheet_rows(ws: Any) -> Iterator[tuple[int, list[str]]]:
    for line, values in enumerate(ws.iter_rows(values_only=True), start=1):
        yield line, [_cell_text(v) for v in values]


def _cell_text(value: object) -> str:
    """Cells as the text a CSV would hold; a float id above 2**53 stays visibly broken (3e+18)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


# -- shared pieces ---------------------------------------------------------------------------


def _refund(original: str, key: str | None, amount_fen: int, when: datetime) -> Activity:
    return Activity(
        source=SOURCE,
        external_id=f"{original}:refund",
        kind=ActivityKind.REFUND,
        business_line=BUSINESS_LINE,
        # Exports carry no refund time; the latest time on the order is the best bound we have.
        occurred_at=when,
        status=ActivityStatus.CONFIRMED,
        source_key=key,
        amount_fen=amount_fen,
        original_external_id=original,
        details={"refund_time_known": False},
    )


def _buyer(
    hm: HeaderMap,
    row: Sequence[str],
    line: int,
    ctx: _Ctx,
    *,
    observed_at: datetime,
    notes: list[Parsed],
) -> SourceRecord | None:
    nick = hm.get(row, "buyer_nick")
    ouid = hm.get(row, "ouid")
    shop = hm.get(row, "shop_id") or ctx.shop_id
    identifiers: list[Identifier] = []
    if ouid and not shop:
        notes.append(_note(ctx, line, hm.column("ouid"), "ouid ignored: no 店铺Id column or shop_id to scope it", row))
        ouid = None
    if ouid:
        identifiers.append(Identifier(IdentifierKind.TAOBAO_OUID, ouid, scope=shop))
    clear_nick = nick if nick and not is_masked(nick) else None
    if clear_nick:
        identifiers.append(Identifier(IdentifierKind.TAOBAO_NICK, clear_nick))
    phone = _phone(hm, row, line, ctx, notes)
    if phone is not None:
        identifiers.append(phone)
    receiver = hm.get(row, "receiver")
    address = _address(hm.get(row, "address"))
    key = ouid or clear_nick or _receiver_key(nick, phone, receiver, address)
    if key is None:
        return None
    return SourceRecord(
        source=SOURCE,
        source_key=key,
        business_line=BUSINESS_LINE,
        observed_at=observed_at,
        identifiers=tuple(identifiers),
        name=receiver,
        address=address,
    )


def _phone(
    hm: HeaderMap, row: Sequence[str], line: int, ctx: _Ctx, notes: list[Parsed]
) -> Identifier | None:
    raw = hm.get(row, "mobile")
    if raw is None:
        return None
    try:
        if is_masked(raw):
            return Identifier(IdentifierKind.PHONE_MASKED, masked_phone_pattern(raw))
        return Identifier(IdentifierKind.PHONE, phone_e164(raw))
    except ValueError as exc:
        # The order itself is fine; only this weak identifier is lost, and the report says so.
        notes.append(_note(ctx, line, hm.column("mobile"), f"phone ignored: {exc}", row))
        return None


def _note(ctx: _Ctx, line: int, column: str, reason: str, row: Sequence[str]) -> RowError:
    return row_error(ctx.filename, line, reason, column=column, raw=row, code="FIELD_IGNORED")


def _address(raw: str | None) -> Address | None:
    """``浙江省 杭州市 西湖区 ****** (000000)`` → province/city/district; the rest is dropped."""
    if not raw:
        return None
    parts = [p for p in raw.split() if not is_masked(p) and not p.startswith(("(", "（"))]
    if not parts:
        return None
    return Address(
        province=parts[0],
        city=parts[1] if len(parts) > 1 else None,
        district=parts[2] if len(parts) > 2 else None,
        country="CN",
    )


def _receiver_key(
    nick: str | None, phone: Identifier | None, receiver: str | None, address: Address | None
) -> str | None:
    """A weak, stable key from masked values only, so the digest cannot be reversed to PII."""
    masked_phone = None
    if phone is not None:
        masked_phone = phone.value if "*" in phone.value else mask_phone(phone.value)
    parts = [
        nick or "",
        masked_phone or "",
        mask_name(receiver) if receiver else "",
        address.province or "" if address else "",
        address.city or "" if address else "",
    ]
    if not any(parts[:3]):
        return None
    return "rcv:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _status(hm: HeaderMap, row: Sequence[str]) -> ActivityStatus | None:
    raw = hm.get(row, "status")
    if raw is None:
        raise FieldError(hm.column("status"), "is empty")
    text = unicodedata.normalize("NFKC", raw).replace(" ", "")
    for prefix, status in _STATUSES:
        if text.startswith(prefix):
            return status
    raise FieldError(hm.column("status"), f"unknown order status {raw!r}")


def _order_no(hm: HeaderMap, row: Sequence[str], fld: str) -> str:
    value = hm.get(row, fld)
    if value is None:
        raise FieldError(hm.column(fld), "is empty")
    if not _ORDER_NO.fullmatch(value):
        raise FieldError(hm.column(fld), "is not an order number (was it saved as a number?)")
    return value


def _fen(hm: HeaderMap, row: Sequence[str], fld: str, *, required: bool = False) -> int | None:
    value = hm.get(row, fld)
    if value is None:
        if required:
            raise FieldError(hm.column(fld), "is empty")
        return None
    try:
        fen = yuan_to_fen(value)
    except ValueError as exc:
        raise FieldError(hm.column(fld), str(exc)) from None
    if fen < 0:
        raise FieldError(hm.column(fld), "must not be negative")
    return fen


def _count(hm: HeaderMap, row: Sequence[str], fld: str) -> int:
    value = hm.get(row, fld) or ""
    if not value.isdigit():
        raise FieldError(hm.column(fld), f"not a whole number: {value!r}")
    return int(value)


def _when(
    hm: HeaderMap, row: Sequence[str], fld: str, *, required: bool = False
) -> datetime | None:
    value = hm.get(row, fld)
    if value is None:
        if required:
            raise FieldError(hm.column(fld), "is empty")
        return None
    try:
        return local_naive_to_aware(parse_datetime(value))
    except ValueError as exc:
        raise FieldError(hm.column(fld), str(exc)) from None


def _is_zip(stream: BinaryIO, filename: str) -> bool:
    if filename.lower().endswith((".xlsx", ".xlsm")):
        return True
    if not stream.seekable():
        return False
    pos = stream.tell()
    head = stream.read(len(_ZIP_MAGIC))
    stream.seek(pos)
    return head == _ZIP_MAGIC
