"""Taobao/Tmall order exports (formats doc §1) → buyer SourceRecords, purchase and refund Activities.

Two layouts, told apart by content (an XLSX is a zip):

- legacy GBK CSV pair: ``ExportOrderList*.csv``, one row per main order, is complete on its own
  (宝贝总数量 gives the quantity) and is streamed. ``parse_pair`` also takes
  ``ExportOrderDetailList*.csv``; its items are read, and indexed by 订单编号, only when the order
  file lacks 宝贝总数量, so the usual case stays constant-memory.
- 千牛 XLSX (main-order + sub-order sheets): see ``connectors.taobao_qianniu``.

Buyer key: the ouid when the export carries one (stable per merchant, the key taobao_members uses),
else 买家会员名. A masked nick like ``t**0`` is shared by many buyers and is never a key: such
buyers get ``rcv:<digest>`` of masked receiver fields (``marketplace.receiver_key``). Receiver name,
phone and province/city describe the receiver, not necessarily the buyer, so they are weak evidence
only; the street address is dropped (PIPL minimisation, formats doc §9).

Statuses: 交易成功 → confirmed; paid or shipped → pending; 交易关闭 → cancelled; 等待买家付款 →
no activity (nothing was paid yet), though the buyer record is still emitted. A 退款金额 column
(later layouts) > 0 adds a refund activity ``<order>:refund`` linked to the order.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import BinaryIO, TypeVar

from connectors import marketplace as m
from connectors.base import HeaderMap, csv_rows, resolve_header, row_error
from hub.core.errors import ImportFormatError, RecordError
from hub.core.normalize import is_masked
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Address,
    Identifier,
    IdentifierKind,
    Item,
    Parsed,
    Purchase,
    Seen,
    SourceRecord,
    reobserved,
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

# Prefix → status; None = not paid yet (no activity). Export texts and TOP API codes both occur;
# half- and full-width commas are folded before matching.
STATUSES: tuple[tuple[str, ActivityStatus | None], ...] = (
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

_ZIP_MAGIC = b"PK\x03\x04"
_V = TypeVar("_V")

# order id → (buyer source_key, time of the order); filled from a 千牛 main-order sheet.
OrderIndex = dict[str, tuple[str | None, datetime]]


def looks_like(header: Sequence[str]) -> bool:
    """A legacy order CSV or a 千牛 main-order sheet (Douyin has no 买家应付邮费/买家会员名)."""
    names = {h.strip().lstrip("\ufeff") for h in header}
    return "订单编号" in names and bool(names & {"买家会员名", "买家应付邮费", "买家应付货款"})


def looks_like_items(header: Sequence[str]) -> bool:
    names = {h.strip().lstrip("\ufeff") for h in header}
    return {"订单编号", "标题", "购买数量"} <= names


def parse(
    stream: BinaryIO, *, filename: str, shop_id: str | None = None, fast: bool = False
) -> Iterator[Item]:
    """An order CSV (legacy) or a 千牛 XLSX. ``shop_id`` scopes ouids when there is no 店铺Id.

    ``fast`` (the import's fast lane, legacy CSV only): a plain paid order of a buyer read
    without notes comes as one ``Purchase`` instead of its ``SourceRecord`` and ``Activity``;
    every other row as without it."""
    if _is_zip(stream, filename):
        # Imported here: taobao_qianniu builds on this module's row mapping.
        from connectors import taobao_qianniu

        yield from taobao_qianniu.parse(stream, filename=filename, shop_id=shop_id)
        return
    rows = csv_rows(stream)
    hm = order_header(next(rows, (1, []))[1], filename)
    yield from order_rows(rows, hm, filename=filename, shop_id=shop_id, fast=fast)


def parse_pair(
    orders: BinaryIO,
    items: BinaryIO,
    *,
    orders_filename: str,
    items_filename: str,
    shop_id: str | None = None,
    fast: bool = False,
) -> Iterator[Item]:
    """The legacy pair. Both headers are checked; items fill quantities the order file lacks."""
    rows = csv_rows(orders)
    hm = order_header(next(rows, (1, []))[1], orders_filename)
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
                oid = m.order_no(ihm, row, "order_id")
                qty = m.count(ihm, row, "quantity")
            except m.FieldError as exc:
                yield row_error(items_filename, line, exc.reason, column=exc.column, raw=row)
                continue
            quantities[oid] = quantities.get(oid, 0) + qty
    yield from order_rows(
        rows, hm, filename=orders_filename, shop_id=shop_id, quantities=quantities, fast=fast
    )


def order_header(header: Sequence[str], filename: str) -> HeaderMap:
    hm = resolve_header(
        header, ORDER_SYNONYMS, ORDER_REQUIRED, connector="taobao order", filename=filename
    )
    if "buyer_nick" not in hm.index and "ouid" not in hm.index:
        raise ImportFormatError(
            f"{filename} does not look like a taobao order file: it has neither 买家会员名 "
            "nor ouid, so no order can be tied to a buyer"
        )
    return hm


def order_rows(
    rows: Iterator[tuple[int, list[str]]],
    hm: HeaderMap,
    *,
    filename: str,
    shop_id: str | None,
    quantities: Mapping[str, int] | None = None,
    index: OrderIndex | None = None,
    fast: bool = False,
) -> Iterator[Item]:
    """One main order per row. With ``index`` (千牛 XLSX) buyers are emitted and indexed, and
    purchases are left to the sub-order sheet. ``fast``: see ``parse``."""
    ctx = _Ctx(hm, filename, shop_id, quantities, index)
    if fast and index is None and quantities is None:
        return m.map_rows(rows, filename, ctx.read_fast)
    return m.map_rows(rows, filename, ctx.read)


# Cells that repeat across an export (statuses, times to the second, prices, a buyer's receiver
# fields on each of their orders) are converted once: each memo maps the raw cell(s) to what was
# read from them and is emptied when full, so memory stays bounded whatever the file size.
_MEMO_LIMIT = 20_000
# Buyers the fast lane remembers per file (a digest and a ``Seen``, ~250 bytes each); emptied
# when full, after which the buyers read again are simply read in full again.
_SEEN_LIMIT = 400_000
_MISS = object()
_ORDER_NO_MAX = 32  # digits, as ``marketplace.order_no`` allows


class _Ctx:
    """The row mapping for one file: column positions resolved once, repeated cells memoised."""

    __slots__ = (
        "addresses",
        "amounts",
        "buyer_cells",
        "buyer_cols",
        "buyers",
        "created",
        "fast_cells",
        "fast_min_len",
        "filename",
        "hm",
        "index",
        "order_col",
        "phones",
        "quantities",
        "seen",
        "shop_id",
        "statuses",
        "times",
    )

    def __init__(
        self,
        hm: HeaderMap,
        filename: str,
        shop_id: str | None,
        quantities: Mapping[str, int] | None,
        index: OrderIndex | None,
    ) -> None:
        self.hm = hm
        self.filename = filename
        self.shop_id = shop_id
        self.quantities = quantities
        self.index = index
        self.statuses: dict[str | None, ActivityStatus | None] = {}
        self.times: dict[tuple[str, str | None], datetime | None] = {}
        self.created: dict[tuple[str, str | None], datetime] = {}
        self.amounts: dict[tuple[str, str | None], int | None] = {}
        self.phones: dict[str, Identifier | None] = {}
        self.addresses: dict[str | None, Address | None] = {}
        # raw buyer cells -> the buyer as first read (None: no usable key)
        self.buyers: dict[tuple[str | None, ...], SourceRecord | None] = {}
        # The fast lane's every buyer so far, by a digest of their raw cells (see ``Seen``).
        self.seen: dict[bytes, Seen] = {}
        self.buyer_cols = tuple(
            hm.index.get(f)
            for f in ("buyer_nick", "ouid", "shop_id", "mobile", "receiver", "address")
        )
        # The fast lane's cells, in ``read_fast``'s order: (column, raw cell -> value, reader);
        # a field the header lacks reads as None, as ``HeaderMap.get`` gives it.
        self.fast_cells: tuple[tuple[int | None, dict[str, object], _Reader], ...] = tuple(
            (hm.index.get(fld), {}, reader) for fld, reader in _FAST_FIELDS
        )
        # The fast lane's buyer cells (rows shorter than ``fast_min_len`` go to ``read``): the
        # present columns only, so the key of a buyer differs from ``_buyer_of``'s when a column
        # is missing, which only means the two lanes do not share that buyer's memo entry.
        present = [i for i in self.buyer_cols if i is not None]
        self.buyer_cells: Callable[[Sequence[str]], tuple[str, ...]] = (
            operator.itemgetter(*present)
            if len(present) > 1
            else lambda row: tuple(row[i] for i in present)
        )
        self.order_col = hm.index["order_id"]  # required by ``order_header``
        used = [
            i
            for i in (self.order_col, *self.buyer_cols, *(c[0] for c in self.fast_cells))
            if i is not None
        ]
        self.fast_min_len = max(used, default=0) + 1

    def _memo(
        self,
        memo: dict[tuple[str, str | None], _V],
        fld: str,
        row: Sequence[str],
        read: Callable[[HeaderMap, Sequence[str], str], _V],
    ) -> _V:
        i = self.hm.index.get(fld)
        key = (fld, row[i] if i is not None and i < len(row) else None)
        value = memo.get(key, _MISS)
        if value is _MISS:
            value = read(self.hm, row, fld)  # a FieldError is raised again for every such cell
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[key] = value
        return value  # type: ignore[return-value]

    def _status(self, row: Sequence[str]) -> ActivityStatus | None:
        raw = self.hm.get(row, "status")
        status = self.statuses.get(raw, _MISS)
        if status is _MISS:
            status = m.status_of(raw, self.hm.column("status"), STATUSES)
            if len(self.statuses) >= _MEMO_LIMIT:
                self.statuses.clear()
            self.statuses[raw] = status
        return status  # type: ignore[return-value]

    def read(self, line: int, row: list[str]) -> list[Parsed]:
        hm = self.hm
        memo = self._memo
        order_id = m.order_no(hm, row, "order_id")
        status = self._status(row)
        times = self.times
        created = memo(self.created, "created_at", row, m.when_required)
        paid_at = memo(times, "paid_at", row, m.when)
        amounts = self.amounts
        paid = memo(amounts, "paid", row, _fen_needed) or 0
        shipping = memo(amounts, "shipping", row, m.fen) or 0
        refund = memo(amounts, "refund", row, m.fen) or 0
        confirmed_at = memo(times, "confirmed_at", row, m.when)
        if self.quantities is not None:
            quantity = self.quantities.get(order_id, 0)
        else:
            quantity = m.count(hm, row, "quantity")
        out: list[Parsed] = []
        record = self._buyer_of(row, line, created, out)
        key = record.source_key if record is not None else None
        if record is not None:
            out.append(record)
        occurred = paid_at or created
        if self.index is not None:
            self.index[order_id] = (key, occurred)
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
            out.append(
                refund_activity(order_id, key, refund, max(confirmed_at or occurred, occurred))
            )
        return out

    def read_fast(self, line: int, row: list[str]) -> Sequence[Item]:
        """A plain paid order of a buyer read without notes as one ``Purchase``; any other row
        (an error, a refund, an unpaid order, a note, a short row) goes to ``read``, which
        reads it again from scratch, so both lanes give the same records and errors."""
        if len(row) < self.fast_min_len:
            return self.read(line, row)
        hm = self.hm
        values: list[object] = []
        for i, memo, reader in self.fast_cells:
            if i is None:
                values.append(None)
                continue
            raw = row[i]
            value = memo.get(raw, _MISS)
            if value is _MISS:
                try:
                    value = reader(hm, row)
                except m.FieldError:
                    return self.read(line, row)
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[raw] = value
            values.append(value)
        status, created, paid_at, paid, shipping, refund, quantity = values
        if status is None or refund or created is None:
            return self.read(line, row)
        # An order number as exports write it, ``="123…"`` or plain digits, is taken as is:
        # what ``m.order_no`` gives for it (its cleaning and check are for every other form).
        raw_id = row[self.order_col]
        order_id = raw_id[2:-1] if raw_id[:2] == '="' and raw_id[-1:] == '"' else raw_id
        if not (order_id.isdecimal() and len(order_id) <= _ORDER_NO_MAX):
            try:
                order_id = m.order_no(hm, row, "order_id")
            except m.FieldError:
                return self.read(line, row)
        cells = self.buyer_cells(row)
        paid_fen: int = paid or 0  # type: ignore[assignment]
        shipping_fen: int = shipping or 0  # type: ignore[assignment]
        digest = _cells_digest(cells)
        seen = self.seen.get(digest)
        buyer: SourceRecord | None
        if seen is not None and seen.skip:
            buyer = None  # the database holds this buyer's record: not read again
        else:
            known = self.buyers.get(cells, _MISS)
            if known is _MISS:
                notes: list[Parsed] = []
                try:
                    buyer = self._buyer(row, line, created, notes)  # type: ignore[arg-type]
                except (m.FieldError, RecordError):
                    return self.read(line, row)
                if notes:
                    return self.read(line, row)
                if len(self.buyers) >= _MEMO_LIMIT:
                    self.buyers.clear()
                self.buyers[cells] = buyer
            else:
                buyer = known  # type: ignore[assignment]
            if buyer is None:
                seen = None
            elif seen is None:
                if len(self.seen) >= _SEEN_LIMIT:
                    self.seen.clear()
                seen = self.seen[digest] = Seen(buyer.source_key)
        purchase = Purchase(
            buyer,
            created,  # type: ignore[arg-type]
            SOURCE,
            order_id,
            BUSINESS_LINE,
            paid_at or created,  # type: ignore[arg-type]
            status,  # type: ignore[arg-type]
            max(paid_fen - shipping_fen, 0),
            quantity or 0,  # type: ignore[arg-type]
            {"shipping_fen": shipping_fen, "paid_fen": paid_fen},
            seen,
        )
        return (purchase,)

    def _buyer_of(
        self, row: Sequence[str], line: int, observed_at: datetime, notes: list[Parsed]
    ) -> SourceRecord | None:
        """The row's buyer; a buyer seen before (same cells) is the earlier record re-observed."""
        n = len(row)
        cells = tuple(row[i] if i is not None and i < n else None for i in self.buyer_cols)
        known = self.buyers.get(cells, _MISS)
        if known is None:
            return None
        if known is not _MISS:
            return reobserved(known, observed_at)  # type: ignore[arg-type]
        before = len(notes)
        record = self._buyer(row, line, observed_at, notes)
        if len(notes) == before:  # a buyer with notes is read again each time, notes and all
            if len(self.buyers) >= _MEMO_LIMIT:
                self.buyers.clear()
            self.buyers[cells] = record
        return record

    def _buyer(
        self, row: Sequence[str], line: int, observed_at: datetime, notes: list[Parsed]
    ) -> SourceRecord | None:
        hm = self.hm
        nick = hm.get(row, "buyer_nick")
        ouid = hm.get(row, "ouid")
        shop = hm.get(row, "shop_id") or self.shop_id
        identifiers: list[Identifier] = []
        if ouid and not shop:
            reason = "ouid ignored: no 店铺Id column or shop_id to scope it"
            notes.append(m.note(self.filename, line, hm.column("ouid"), reason, row))
            ouid = None
        if ouid:
            identifiers.append(Identifier(IdentifierKind.TAOBAO_OUID, ouid, scope=shop))
        clear_nick = nick if nick and not is_masked(nick) else None
        if clear_nick:
            identifiers.append(Identifier(IdentifierKind.TAOBAO_NICK, clear_nick))
        phone: Identifier | None = None
        mobile = hm.get(row, "mobile")
        if mobile is not None:
            if mobile in self.phones:
                phone = self.phones[mobile]
            else:
                try:
                    phone = m.receiver_phone(mobile)
                except ValueError as exc:  # not memoised: the note is the row's
                    reason = f"phone ignored: {exc}"
                    notes.append(m.note(self.filename, line, hm.column("mobile"), reason, row))
                else:
                    if len(self.phones) >= _MEMO_LIMIT:
                        self.phones.clear()
                    self.phones[mobile] = phone
        if phone is not None:
            identifiers.append(phone)
        receiver = hm.get(row, "receiver")
        raw_address = hm.get(row, "address")
        if raw_address in self.addresses:
            address = self.addresses[raw_address]
        else:
            address = parse_address(raw_address)
            if len(self.addresses) >= _MEMO_LIMIT:
                self.addresses.clear()
            self.addresses[raw_address] = address
        area = (address.province, address.city) if address else ()
        key = (
            ouid
            or clear_nick
            or m.receiver_key(phone=phone, name=receiver, extra=(nick or "", *area))
        )
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


def _cells_digest(cells: tuple[str, ...]) -> bytes:
    """A digest of a buyer's raw cells, one per distinct tuple. The cells joined by a separator
    none of them holds (the usual case, at a fifth of ``repr``'s cost); else their ``repr``,
    digested under another personalisation so the two forms never meet."""
    text = "\x1f".join(cells)
    if text.count("\x1f") == len(cells) - 1:
        return hashlib.blake2b(text.encode(), digest_size=16).digest()
    return hashlib.blake2b(repr(cells).encode(), digest_size=16, person=b"repr").digest()


def _fen_needed(hm: HeaderMap, row: Sequence[str], fld: str) -> int | None:
    return m.fen(hm, row, fld, need=True)


_Reader = Callable[[HeaderMap, Sequence[str]], object]


def _status_cell(hm: HeaderMap, row: Sequence[str]) -> ActivityStatus | None:
    return m.status_of(hm.get(row, "status"), hm.column("status"), STATUSES)


def _quantity_cell(hm: HeaderMap, row: Sequence[str]) -> int:
    return m.count(hm, row, "quantity")


def _fen_cell(fld: str, *, need: bool = False) -> _Reader:
    """``m.fen`` of the column, with amounts written as exports write them (``128.00``: ASCII
    digits, two decimals, at most 15 whole digits) read in place: exactly what ``m.fen``
    gives for them, without its four calls (an order's paid amount is a memo miss on most rows)."""

    def read(hm: HeaderMap, row: Sequence[str]) -> int | None:
        whole, dot, cents = row[hm.index[fld]].partition(".")
        if (
            dot
            and len(cents) == 2
            and 0 < len(whole) <= 15
            and whole.isascii()
            and cents.isascii()
            and whole.isdigit()
            and cents.isdigit()
        ):
            return int(whole) * 100 + int(cents)
        return m.fen(hm, row, fld, need=need)

    return read


# The fast lane's per-cell readers, the same ``read`` uses, in ``read_fast``'s unpacking order.
_FAST_FIELDS: tuple[tuple[str, _Reader], ...] = (
    ("status", _status_cell),
    ("created_at", lambda hm, row: m.when_required(hm, row, "created_at")),
    ("paid_at", lambda hm, row: m.when(hm, row, "paid_at")),
    ("paid", _fen_cell("paid", need=True)),
    ("shipping", _fen_cell("shipping")),
    ("refund", _fen_cell("refund")),
    ("quantity", _quantity_cell),
)


def refund_activity(original: str, key: str | None, amount_fen: int, when: datetime) -> Activity:
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


def parse_address(raw: str | None) -> Address | None:
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


def _is_zip(stream: BinaryIO, filename: str) -> bool:
    if filename.lower().endswith((".xlsx", ".xlsm")):
        return True
    if not stream.seekable():
        return False
    pos = stream.tell()
    head = stream.read(len(_ZIP_MAGIC))
    stream.seek(pos)
    return head == _ZIP_MAGIC
