"""千牛 XLSX order export (formats doc §1b): a main-order sheet and a sub-order sheet.

One purchase per sub-order; 退款状态 退款成功 adds a refund ``<sub-order>:refund`` linked to it.
The sub-order sheet has no buyer column, so the main sheet is read first and indexed by order id
(buyer key and time only). Excel caps a sheet at 1,048,576 rows, which bounds that index. A
workbook with only a main-order sheet is read like the legacy CSV: one purchase per main order.

Sheets are recognised by their header row, not their names or positions, and read with openpyxl
in read-only mode (streamed from the zip). Cells arrive typed: an 18-19 digit id that Excel stored
as a number has already lost digits, so it stays visibly broken (``3e+18``) and becomes a row error.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, BinaryIO, cast

import openpyxl

from connectors import marketplace as m
from connectors.base import HeaderMap, resolve_header
from connectors.taobao import (
    BUSINESS_LINE,
    SOURCE,
    STATUSES,
    OrderIndex,
    order_header,
    order_rows,
    refund_activity,
)
from hub.core.records import Activity, ActivityKind, Parsed

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
REFUNDED = ("退款成功", "SUCCESS")


def parse(stream: BinaryIO, *, filename: str, shop_id: str | None = None) -> Iterator[Parsed]:
    with warnings.catch_warnings():
        # Vendor workbooks often lack a default style; harmless for reading values.
        warnings.simplefilter("ignore", UserWarning)
        book = openpyxl.load_workbook(stream, read_only=True, data_only=True)
    try:
        main, sub = None, None
        for ws in book.worksheets:
            names = {c.strip() for c in _header(ws)}
            if "子订单编号" in names:
                sub = sub or ws
            elif "订单编号" in names:
                main = main or ws
        if main is None:
            first = book.worksheets[0] if book.worksheets else None
            order_header(_header(first) if first is not None else [], filename)  # raises
            return
        main_file = f"{filename}[{main.title}]"
        rows = _sheet_rows(main)
        hm = order_header(next(rows, (1, []))[1], main_file)
        index: OrderIndex | None = {} if sub is not None else None
        # Without ``fast`` (never with an index) the rows are canonical records only.
        yield from cast(
            Iterator[Parsed],
            order_rows(rows, hm, filename=main_file, shop_id=shop_id, index=index),
        )
        if sub is not None and index is not None:
            yield from _sub_orders(sub, index, f"{filename}[{sub.title}]")
    finally:
        book.close()


def _sub_orders(ws: Any, index: OrderIndex, filename: str) -> Iterator[Parsed]:
    rows = _sheet_rows(ws)
    hm = resolve_header(
        next(rows, (1, []))[1],
        SUB_ORDER_SYNONYMS,
        SUB_ORDER_REQUIRED,
        connector="taobao sub-order sheet",
        filename=filename,
    )
    yield from m.map_rows(rows, filename, lambda _line, row: _sub_order(hm, row, index))


def _sub_order(hm: HeaderMap, row: Sequence[str], index: OrderIndex) -> list[Parsed]:
    sub_id = m.order_no(hm, row, "sub_order_id")
    order_id = m.order_no(hm, row, "order_id")
    if order_id not in index:
        reason = "its main order is missing or unreadable in the main-order sheet"
        raise m.FieldError(hm.column("order_id"), reason)
    key, main_time = index[order_id]
    status = m.status_of(hm.get(row, "status"), hm.column("status"), STATUSES)
    paid = m.fen(hm, row, "paid", need=True) or 0
    refund = m.fen(hm, row, "refund")
    refunded = (hm.get(row, "refund_status") or "") in REFUNDED
    occurred = m.when(hm, row, "paid_at") or m.when(hm, row, "created_at") or main_time
    latest = max(occurred, m.when(hm, row, "shipped_at") or occurred)
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
                quantity=m.count(hm, row, "quantity"),
                details={"order_id": order_id, "item_id": hm.get(row, "item_id") or ""},
            )
        )
    # 退款成功 without 退款金额 means the whole sub-order was refunded.
    refund_fen = paid if refund is None else refund
    if refunded and refund_fen > 0:
        out.append(refund_activity(sub_id, key, refund_fen, latest))
    return out


def _header(ws: Any) -> list[str]:
    return next(_sheet_rows(ws), (1, []))[1]


def _sheet_rows(ws: Any) -> Iterator[tuple[int, list[str]]]:
    for line, values in enumerate(ws.iter_rows(values_only=True), start=1):
        yield line, [_cell_text(v) for v in values]


def _cell_text(value: object) -> str:
    """Cells as the text a CSV would hold."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)
