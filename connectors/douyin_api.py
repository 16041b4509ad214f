"""Douyin 抖店 open-API orders (formats doc §3b, ``/order/searchList`` and ``/order/orderDetail``).

Input is a JSON array or NDJSON of orders, or of API responses wrapping them
(``{"data": {"shop_order_list": [...]}}`` / ``{"data": {"shop_order_detail": {...}}}``), read
document by document by ``connectors.jsonio`` so a large array costs one order's memory.

- Amounts are fen (int) and times Unix seconds; ids may be numbers or strings and become strings.
- Buyer: ``doudian_open_id`` scoped by shop → DOUYIN_OPEN_ID, ``source_key`` ``<shop>:<open id>``
  (the key douyin_members uses). Without it, the receiver digest the CSV uses.
- Receiver: plaintext ``post_*`` (normally empty) wins over ``mask_post_*``; ``encrypt_*``
  ciphertexts are ignored. With ``is_virtual_tel`` true, or a ``A-B`` number, the phone is a
  per-order virtual number and is discarded as identity.
- One purchase per ``sku_order_list`` entry (amount = pay_amount − post_amount). A refund
  (``after_sale_info.refund_status`` 3, or ``main_status`` 21/22/39 refund-completed) adds
  ``<sku order>:refund``; its amount is ``refund_amount`` when given, else the sku order's
  amount. Exchanges (after_sale_type 3) and re-sends (7) are not refunds; a price-protection
  refund (6) without an amount is reported, not guessed.

RowError line numbers are the line where the order's JSON starts; columns are JSON paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, BinaryIO

from connectors import marketplace as m
from connectors.base import row_error
from connectors.douyin import purchase, refund
from connectors.jsonio import json_objects
from hub.core.clock import SHANGHAI
from hub.core.errors import ImportFormatError, RecordError
from hub.core.normalize import clean_cell
from hub.core.records import (
    ActivityStatus,
    Address,
    Identifier,
    IdentifierKind,
    Parsed,
    RowError,
    SourceRecord,
)

SOURCE = "douyin"
BUSINESS_LINE = "douyin"

ORDER_STATUS: Mapping[int, ActivityStatus | None] = {
    1: None,  # 待支付
    103: None,  # 部分支付 (pre-sale deposit only)
    105: ActivityStatus.PENDING,  # 已支付
    2: ActivityStatus.PENDING,  # 备货中
    101: ActivityStatus.PENDING,  # 部分发货
    3: ActivityStatus.PENDING,  # 已发货
    4: ActivityStatus.CANCELLED,  # 已取消
    5: ActivityStatus.CONFIRMED,  # 已完成
}
REFUND_DONE_MAIN_STATUS = frozenset({21, 22, 39})
REFUND_SUCCESS = 3
NOT_A_REFUND_TYPES = frozenset({3, 7})  # 换货, 补寄
PRICE_PROTECTION = 6


def parse(stream: BinaryIO, *, filename: str, shop_id: str | None = None) -> Iterator[Parsed]:
    first = True
    for item in json_objects(stream, filename=filename):
        if isinstance(item, RowError):
            yield item
            continue
        line, value = item
        for order in _orders(value):
            if first and not _is_order(order):
                raise ImportFormatError(
                    f"{filename} does not look like douyin API orders: expected objects "
                    "with order_id and sku_order_list"
                )
            first = False
            yield from _order(order, line, filename, shop_id)


def _is_order(value: object) -> bool:
    return isinstance(value, dict) and "order_id" in value and "sku_order_list" in value


def _orders(value: Any) -> Iterator[Any]:
    """Orders from an order, a list, or an API response page."""
    if isinstance(value, list):
        for item in value:
            yield from _orders(item)
    elif (
        isinstance(value, dict) and "order_id" not in value and isinstance(value.get("data"), dict)
    ):
        data = value["data"]
        yield from _orders(data.get("shop_order_list") or data.get("shop_order_detail") or [])
    else:
        yield value


def _order(order: Any, line: int, filename: str, default_shop: str | None) -> Iterator[Parsed]:
    safe_raw = _safe_raw(order)
    if not _is_order(order):
        yield row_error(
            filename, line, "not an order object (no order_id/sku_order_list)", raw=safe_raw
        )
        return
    try:
        order_id = _id(order, "order_id", "order_id")
        shop = _opt_id(order, "shop_id", "shop_id") or default_shop
        notes: list[Parsed] = []
        record = _buyer(order, shop, line, filename, safe_raw, notes)
        skus = order["sku_order_list"]
        if not isinstance(skus, list):
            raise m.FieldError("sku_order_list", "must be a list")
    except (m.FieldError, RecordError) as exc:
        column = exc.column if isinstance(exc, m.FieldError) else exc.field
        yield row_error(filename, line, exc.reason, column=column, raw=safe_raw)
        return
    yield from notes
    if record is not None:
        yield record
    key = record.source_key if record is not None else None
    for i, sku in enumerate(skus):
        try:
            yield from _sku(order, sku, f"sku_order_list[{i}]", order_id, key, shop)
        except m.FieldError as exc:
            yield row_error(filename, line, exc.reason, column=exc.column, raw=safe_raw)
        except RecordError as exc:
            yield row_error(filename, line, exc.reason, column=exc.field, raw=safe_raw)


def _buyer(
    order: Mapping[str, Any],
    shop: str | None,
    line: int,
    filename: str,
    safe_raw: str,
    notes: list[Parsed],
) -> SourceRecord | None:
    identifiers: list[Identifier] = []
    open_id = _text(order, "doudian_open_id")
    if open_id and not shop:
        reason = "doudian_open_id ignored: no shop_id to scope it"
        notes.append(m.note(filename, line, "doudian_open_id", reason, safe_raw))
        open_id = None
    if open_id:
        identifiers.append(Identifier(IdentifierKind.DOUYIN_OPEN_ID, open_id, scope=shop))
    phone = None
    virtual = order.get("is_virtual_tel") is True
    tel = None if virtual else _text(order, "post_tel")
    for fld, raw in (("post_tel", tel), ("mask_post_tel", _text(order, "mask_post_tel"))):
        if raw and phone is None:
            try:
                phone = m.receiver_phone(raw)
            except ValueError as exc:
                notes.append(m.note(filename, line, fld, f"phone ignored: {exc}", safe_raw))
    if phone is not None:
        identifiers.append(phone)
    name = _text(order, "post_receiver") or _text(order, "mask_post_receiver")
    address = _address(order.get("post_addr")) or _address(order.get("mask_post_addr"))
    area = (address.province, address.city, address.district) if address else ()
    key = f"{shop}:{open_id}" if open_id else m.receiver_key(phone=phone, name=name, extra=area)
    created = _time(order, "create_time", "create_time")
    if key is None:
        return None
    if created is None:
        raise m.FieldError("create_time", "is missing")
    return SourceRecord(
        source=SOURCE,
        source_key=key,
        business_line=BUSINESS_LINE,
        observed_at=created,
        identifiers=tuple(identifiers),
        name=name,
        address=address,
    )


def _sku(
    order: Mapping[str, Any],
    sku: Any,
    path: str,
    order_id: str,
    key: str | None,
    shop: str | None,
) -> list[Parsed]:
    if not isinstance(sku, dict):
        raise m.FieldError(path, "must be an object")
    sub_id = _id(sku, "order_id", f"{path}.order_id")
    code = _int(sku, "order_status", f"{path}.order_status", fallback=order)
    if code not in ORDER_STATUS:
        raise m.FieldError(f"{path}.order_status", f"unknown order_status {code}")
    status = ORDER_STATUS[code]
    created = _time(sku, "create_time", f"{path}.create_time", fallback=order)
    occurred = _time(sku, "pay_time", f"{path}.pay_time", fallback=order) or created
    if occurred is None:
        raise m.FieldError(f"{path}.create_time", "is missing")
    latest = max(
        occurred, _time(sku, "finish_time", f"{path}.finish_time", fallback=order) or occurred
    )
    pay = _int(sku, "pay_amount", f"{path}.pay_amount")
    post = _int(sku, "post_amount", f"{path}.post_amount", default=0)
    amount = max(pay - post, 0)
    details: dict[str, object] = {"order_id": order_id, "shipping_fen": post}
    if shop:
        details["shop_id"] = shop
    if product := sku.get("product_id_str") or sku.get("product_id"):
        details["product_id"] = str(product)
    out: list[Parsed] = []
    if status is not None:
        quantity = _int(sku, "item_num", f"{path}.item_num", default=0)
        out.append(purchase(sub_id, key, occurred, status, amount, quantity, details))
    refund_fen = _refund_fen(sku, path, amount)
    if refund_fen:
        out.append(refund(sub_id, key, latest, refund_fen))
    return out


def _refund_fen(sku: Mapping[str, Any], path: str, amount: int) -> int:
    info = sku.get("after_sale_info") or {}
    if not isinstance(info, dict):
        raise m.FieldError(f"{path}.after_sale_info", "must be an object")
    done = (
        info.get("refund_status") == REFUND_SUCCESS
        or sku.get("main_status") in REFUND_DONE_MAIN_STATUS
    )
    kind = info.get("after_sale_type")
    if not done or kind in NOT_A_REFUND_TYPES:
        return 0
    explicit = _int(info, "refund_amount", f"{path}.after_sale_info.refund_amount", default=-1)
    if explicit >= 0:
        return explicit
    if kind == PRICE_PROTECTION:
        raise m.FieldError(
            f"{path}.after_sale_info", "price-protection refund without refund_amount"
        )
    return amount


def _address(value: Any) -> Address | None:
    if not isinstance(value, dict):
        return None
    parts = [
        _text(part, "name") if isinstance(part := value.get(k), dict) else None
        for k in ("province", "city", "town")
    ]
    if not any(parts):
        return None
    return Address(province=parts[0], city=parts[1], district=parts[2], country="CN")


def _text(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return clean_cell(value) if isinstance(value, str) else None


def _id(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = _opt_id(obj, key, path)
    if value is None:
        raise m.FieldError(path, "is missing")
    return value


def _opt_id(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value in (None, "", 0):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and (text := clean_cell(value)) and text.isalnum():
        return text
    raise m.FieldError(path, "is not an id (ids must be strings or integers)")


def _int(
    obj: Mapping[str, Any],
    key: str,
    path: str,
    *,
    default: int | None = None,
    fallback: Mapping[str, Any] | None = None,
) -> int:
    value = obj.get(key)
    if value is None and fallback is not None:
        value = fallback.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise m.FieldError(path, "must be a non-negative integer (amounts are fen)")
    return value


def _time(
    obj: Mapping[str, Any], key: str, path: str, *, fallback: Mapping[str, Any] | None = None
) -> datetime | None:
    seconds = _int(obj, key, path, default=0, fallback=fallback)
    return datetime.fromtimestamp(seconds, tz=SHANGHAI) if seconds else None


def _safe_raw(order: Any) -> str:
    """What a report may show of an order: its ids and status, never the receiver."""
    if not isinstance(order, dict):
        return type(order).__name__
    keep = {k: order.get(k) for k in ("order_id", "shop_id", "order_status") if k in order}
    return json.dumps(keep, ensure_ascii=False)
