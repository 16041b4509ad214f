"""Douyin 抖店 orders (formats doc §3) → buyer SourceRecords, purchase and refund Activities.

``parse`` reads either layout, told apart by content: the 订单管理 export CSV (below) or the open
API's order JSON (a JSON array or NDJSON, see ``connectors.douyin_api``).

The export CSV has one row per sub-order (子订单编号; one sub-order shares its parent's number),
ids suffixed with a tab, ``-`` for empty, and 商品单价 called 商品金额 in older versions.

Buyer key: the export has **no buyer account id** (达人ID is the influencer). The only evidence is
the receiver — masked phone, name, province/city/district — so each buyer's ``source_key`` is
``rcv:<digest>`` of those *masked* values (``marketplace.receiver_key``). It is stable across
exports, so repeat buyers with the same receiver collapse into one source record, but it is weak:
two people with ``13*******01``/``测**`` in one district share it. The record therefore carries
only weak identifiers (PHONE_MASKED, name, area); identity never merges on them alone. A
plaintext receiver phone (a decrypted export) becomes an unverified PHONE; Douyin's virtual
numbers (``18400000000-1234``) are discarded. Street and detail address are not kept.

Amounts: 订单应付金额 minus 运费 (shipping kept in ``details``). 售后状态 showing a completed
refund adds ``<sub-order>:refund`` for the sub-order's amount (the export has no refund amount);
an exchange (售后类型 换货/补寄) does not.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import BinaryIO, cast

from connectors import marketplace as m
from connectors.base import HeaderMap, csv_rows, resolve_header
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Address,
    Parsed,
    SourceRecord,
)

SOURCE = "douyin"
BUSINESS_LINE = "douyin"

SYNONYMS: Mapping[str, Sequence[str]] = {
    "order_id": ("主订单编号",),
    "sub_order_id": ("子订单编号",),
    "product_id": ("商品ID",),
    "sku_code": ("商家编码",),
    "quantity": ("商品数量",),
    "unit_price": ("商品单价", "商品金额"),  # older exports call the unit price 商品金额
    "payable": ("订单应付金额", "应付金额"),
    "shipping": ("运费",),
    "receiver": ("收件人", "收件人姓名"),
    "phone": ("收件人手机号", "收件人电话"),
    "province": ("省",),
    "city": ("市",),
    "district": ("区",),
    "created_at": ("订单提交时间", "下单时间"),
    "paid_at": ("支付完成时间",),
    "finished_at": ("订单完成时间",),
    "status": ("订单状态",),
    "after_sale": ("售后状态",),
    "after_sale_type": ("售后类型",),
    "influencer_id": ("达人ID",),
    "channel": ("APP渠道",),
}
REQUIRED = ("order_id", "sub_order_id", "payable", "status", "created_at")

# Prefix → status; None = not paid yet (no activity).
STATUSES: tuple[tuple[str, ActivityStatus | None], ...] = (
    ("待支付", None),
    ("待付款", None),
    ("待确认", None),
    ("已完成", ActivityStatus.CONFIRMED),
    ("交易成功", ActivityStatus.CONFIRMED),
    ("已关闭", ActivityStatus.CANCELLED),
    ("已取消", ActivityStatus.CANCELLED),
    ("交易关闭", ActivityStatus.CANCELLED),
    ("已支付", ActivityStatus.PENDING),
    ("备货中", ActivityStatus.PENDING),
    ("待发货", ActivityStatus.PENDING),
    ("部分发货", ActivityStatus.PENDING),
    ("已发货", ActivityStatus.PENDING),
    ("待收货", ActivityStatus.PENDING),
    ("已签收", ActivityStatus.PENDING),
)
REFUNDED = ("售后完成", "售后成功", "退款成功", "退款完成", "退货退款完成")
NOT_A_REFUND = ("换货", "补寄")


def looks_like(header: Sequence[str]) -> bool:
    """The export CSV (a Taobao 千牛 sub-order sheet also has 主/子订单编号, but not these)."""
    names = {h.replace("\t", "").strip().lstrip("\ufeff") for h in header}
    return {"主订单编号", "子订单编号"} <= names and bool(
        names & {"选购商品", "订单提交时间", "收件人手机号"}
    )


def parse(stream: BinaryIO, *, filename: str, shop_id: str | None = None) -> Iterator[Parsed]:
    """The export CSV or API JSON. ``shop_id`` is recorded on CSV activities and scopes API
    open ids when the orders lack ``shop_id``."""
    if stream.seekable():
        pos = stream.tell()
        head = stream.read(64)
        stream.seek(pos)
    else:
        # A pipe cannot be rewound; a buffered reader can peek without consuming.
        buffered = io.BufferedReader(cast(io.RawIOBase, stream))
        head = buffered.peek(64)[:64]
        stream = cast(BinaryIO, buffered)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"[", b"{"):
        from connectors import douyin_api  # it builds on this module's purchase/refund

        yield from douyin_api.parse(stream, filename=filename, shop_id=shop_id)
    else:
        yield from _parse_csv(stream, filename=filename, shop_id=shop_id)


def _parse_csv(stream: BinaryIO, *, filename: str, shop_id: str | None) -> Iterator[Parsed]:
    rows = csv_rows(stream)
    header = [h.replace("\t", "") for h in next(rows, (1, []))[1]]
    hm = resolve_header(header, SYNONYMS, REQUIRED, connector="douyin order", filename=filename)
    yield from m.map_rows(rows, filename, lambda line, row: _row(hm, row, line, filename, shop_id))


def _row(
    hm: HeaderMap, row: Sequence[str], line: int, filename: str, shop_id: str | None
) -> list[Parsed]:
    order_id = m.order_no(hm, row, "order_id")
    sub_id = m.order_no(hm, row, "sub_order_id")
    status = m.status_of(hm.get(row, "status"), hm.column("status"), STATUSES)
    created = m.when_required(hm, row, "created_at")
    occurred = m.when(hm, row, "paid_at") or created
    finished = m.when(hm, row, "finished_at")
    payable = m.fen(hm, row, "payable", need=True) or 0
    shipping = m.fen(hm, row, "shipping") or 0
    quantity = m.count(hm, row, "quantity")
    out: list[Parsed] = []
    phone = None
    if raw_phone := hm.get(row, "phone"):
        try:
            phone = m.receiver_phone(raw_phone)
        except ValueError as exc:
            out.append(m.note(filename, line, hm.column("phone"), f"phone ignored: {exc}", row))
    receiver = hm.get(row, "receiver")
    area = (hm.get(row, "province"), hm.get(row, "city"), hm.get(row, "district"))
    key = m.receiver_key(phone=phone, name=receiver, extra=area)
    if key is not None:
        out.append(
            SourceRecord(
                source=SOURCE,
                source_key=key,
                business_line=BUSINESS_LINE,
                observed_at=created,
                identifiers=(phone,) if phone is not None else (),
                name=receiver,
                address=Address(*area, country="CN") if any(area) else None,
            )
        )
    amount = max(payable - shipping, 0)
    details = {
        "order_id": order_id,
        "shipping_fen": shipping,
        **{
            f: v
            for f in ("product_id", "sku_code", "channel", "influencer_id")
            if (v := hm.get(row, f))
        },
        **({"shop_id": shop_id} if shop_id else {}),
    }
    if status is not None:
        out.append(purchase(sub_id, key, occurred, status, amount, quantity, details))
    after_sale = hm.get(row, "after_sale") or ""
    kind = hm.get(row, "after_sale_type") or ""
    if after_sale.startswith(REFUNDED) and not any(x in kind for x in NOT_A_REFUND) and amount:
        out.append(refund(sub_id, key, max(finished or occurred, occurred), amount))
    return out


def purchase(
    sub_id: str,
    key: str | None,
    occurred: datetime,
    status: ActivityStatus,
    amount_fen: int,
    quantity: int,
    details: Mapping[str, object],
) -> Activity:
    return Activity(
        source=SOURCE,
        external_id=sub_id,
        kind=ActivityKind.PURCHASE,
        business_line=BUSINESS_LINE,
        occurred_at=occurred,
        status=status,
        source_key=key,
        amount_fen=amount_fen,
        quantity=quantity,
        details=details,
    )


def refund(sub_id: str, key: str | None, occurred: datetime, amount_fen: int) -> Activity:
    return Activity(
        source=SOURCE,
        external_id=f"{sub_id}:refund",
        kind=ActivityKind.REFUND,
        business_line=BUSINESS_LINE,
        # No refund time in the data; the latest time on the sub-order is the best bound.
        occurred_at=occurred,
        status=ActivityStatus.CONFIRMED,
        source_key=key,
        amount_fen=amount_fen,
        original_external_id=sub_id,
        details={"refund_time_known": False},
    )
