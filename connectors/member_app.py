"""Brand app and WeChat mini-program: accounts and orders (NDJSON, a JSON array, or CSV).

Accounts (formats doc §5): ``app_id, openid, unionid, phone, phone_verified_at, source,
signed_up_at`` → ``SourceRecord`` (source ``app``, business line ``app``, ``source_key`` =
``"{app_id}:{openid}"``). Identifiers:

- ``openid`` is ``WECHAT_OPENID`` scoped by ``app_id`` when the app id is a WeChat one (WeChat
  AppIDs start with ``wx``); for any other app id (native iOS/Android apps) it is that app's own
  user id, ``APP_USER_ID`` scoped by ``app_id``.
- ``unionid`` → ``WECHAT_UNIONID`` (one Open Platform account; native apps get it through
  WeChat login).
- ``phone`` → ``PHONE``, verified only when ``phone_verified_at`` is set *and* ``source`` is a
  method that proves possession (``VERIFYING_METHODS``: getPhoneNumber, SMS OTP). A phone typed
  into a form, or one with no verification time, is kept unverified.

Orders: ``order_id, app_id, openid`` (or ``user_key``), ``amount_fen`` (or ``amount`` in yuan),
``status, created_at, refund_of`` → ``Activity``. A row with ``refund_of`` is a ``REFUND`` whose
``original_external_id`` is that order id; amounts are positive whatever sign the app wrote.
Unpaid orders earn nothing yet: they are reported (code ``SKIPPED``) so they can be re-sent once
paid. A file may mix accounts and orders; each object is read by whether it has an
``order_id``.

Times without an offset are Asia/Shanghai. A malformed JSON line is a ``RowError`` with its line
number and reading goes on. ``BAD_FIELD`` means the row was imported without that value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, BinaryIO

from connectors import fields
from connectors.base import csv_rows, resolve_header, row_error, sniff_encoding
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

SOURCE = "app"
BUSINESS_LINE = "app"
WECHAT_APP_PREFIX = "wx"
VERIFYING_METHODS = frozenset(
    {"getphonenumber", "getrealtimephonenumber", "sms_otp", "sms", "sms_code"}
)

# Canonical field → accepted names (JSON keys and CSV headers alike).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "app_id": ("app_id", "appid", "appId"),
    "openid": ("openid", "open_id", "openId", "user_id"),
    "unionid": ("unionid", "union_id", "unionId"),
    "phone": ("phone", "mobile", "purePhoneNumber", "phoneNumber"),
    "phone_verified_at": ("phone_verified_at", "verified_at"),
    "source": ("source", "verify_method", "phone_source"),
    "signed_up_at": ("signed_up_at", "register_time"),
    "created_at": ("created_at", "create_time"),
    "order_id": ("order_id", "out_trade_no"),
    "user_key": ("user_key",),
    "amount_fen": ("amount_fen", "total_fee"),
    "amount": ("amount",),
    "status": ("status", "order_status"),
    "refund_of": ("refund_of", "original_order_id"),
}
ACCOUNT_REQUIRED = ("app_id", "openid")
ORDER_REQUIRED = ("order_id", "status")

_STATUS: dict[str, ActivityStatus | None] = {
    "paid": ActivityStatus.PENDING,
    "shipped": ActivityStatus.PENDING,
    "delivered": ActivityStatus.PENDING,
    "processing": ActivityStatus.PENDING,
    "completed": ActivityStatus.CONFIRMED,
    "finished": ActivityStatus.CONFIRMED,
    "confirmed": ActivityStatus.CONFIRMED,
    "success": ActivityStatus.CONFIRMED,
    "refunded": ActivityStatus.CONFIRMED,  # on a refund row: the money went back
    "cancelled": ActivityStatus.CANCELLED,
    "canceled": ActivityStatus.CANCELLED,
    "closed": ActivityStatus.CANCELLED,
    "failed": ActivityStatus.CANCELLED,
    "unpaid": None,
    "created": None,
    "wait_pay": None,
}


def looks_like(head: bytes) -> bool:
    """True for app account or order NDJSON/JSON/CSV."""
    text = head.decode(sniff_encoding(head), errors="ignore").lstrip("\ufeff")
    if first_char(head) in ("{", "["):
        return '"openid"' in text or ('"order_id"' in text and '"app_id"' in text)
    header = {c.strip().strip('"') for c in text.split("\n", 1)[0].split(",")}
    return "openid" in header and "app_id" in header


def parse(
    stream: BinaryIO, *, filename: str, observed_at: datetime | None = None
) -> Iterator[Parsed]:
    """Accounts and orders. ``observed_at`` stands in for accounts without any date (default
    now)."""
    fallback = observed_at or utcnow()
    buffered, head = peek_head(stream)
    items = (
        _json_items(buffered, filename)
        if first_char(head) in ("{", "[")
        else _csv_items(buffered, filename)
    )
    first = True
    for item in items:
        if not isinstance(item, tuple):
            yield item
            continue
        line, obj = item
        kind = _kind(obj)
        if first and kind is None:
            raise ImportFormatError(
                f"{filename} does not look like app accounts or orders: expected objects with "
                f"{', '.join(ACCOUNT_REQUIRED)} (accounts) or {', '.join(ORDER_REQUIRED)} (orders)"
            )
        first = False
        if kind is None:
            reason = "neither an account (app_id, openid) nor an order (order_id, status)"
            yield row_error(filename, line, reason, raw=str(obj)[:200])
            continue
        try:
            if kind == "order":
                yield from _order(line, obj, filename)
            else:
                yield from _account(line, obj, filename, fallback)
        except BadField as exc:
            yield row_error(filename, line, exc.reason, column=exc.column, raw=_raw(obj))
        except RecordError as exc:
            yield row_error(filename, line, exc.reason, column=exc.field, raw=_raw(obj))


def _json_items(stream: BinaryIO, filename: str) -> Iterator[Any]:
    for item in json_objects(stream, filename=filename):
        if isinstance(item, tuple) and isinstance(item[1], dict):
            line, obj = item
            yield line, _canonical(obj)
        elif isinstance(item, tuple):
            yield row_error(filename, item[0], "expected a JSON object", raw=str(item[1])[:200])
        else:
            yield item


def _csv_items(stream: BinaryIO, filename: str) -> Iterator[Any]:
    rows = csv_rows(stream)
    try:
        _, header = next(rows)
    except StopIteration:
        raise ImportFormatError(f"{filename} is empty") from None
    required = ORDER_REQUIRED if "order_id" in header else ACCOUNT_REQUIRED
    hmap = resolve_header(header, SYNONYMS, required, connector="app", filename=filename)
    for line, row in rows:
        if any(cell.strip() for cell in row):
            yield line, {f: hmap.get(row, f) for f in hmap.index}


def _canonical(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fld, names in SYNONYMS.items():
        found = next((n for n in names if n in obj), None)
        if found is not None:
            out[fld] = obj[found]
    return out


def _kind(obj: Mapping[str, Any]) -> str | None:
    if obj.get("order_id") is not None:
        return "order"
    if all(obj.get(f) is not None for f in ACCOUNT_REQUIRED):
        return "account"
    return None


def _raw(obj: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in obj.items())


def _user_id(app_id: str, openid: str) -> Identifier:
    if app_id.lower().startswith(WECHAT_APP_PREFIX):
        return Identifier(IdentifierKind.WECHAT_OPENID, openid, scope=app_id)
    return Identifier(IdentifierKind.APP_USER_ID, openid, scope=app_id)


def _account(
    line: int, obj: Mapping[str, Any], filename: str, fallback: datetime
) -> Iterator[Parsed]:
    app_id = fields.text(obj["app_id"])
    openid = fields.text(obj["openid"])
    if app_id is None or openid is None:
        raise BadField("openid" if app_id else "app_id", "is empty")
    errors: list[BadField] = []
    signed_up = _time(obj, "signed_up_at", errors) or _time(obj, "created_at", errors)
    verified_at = _time(obj, "phone_verified_at", errors)
    identifiers = [_user_id(app_id, openid)]
    unionid = fields.text(obj.get("unionid"))
    if unionid:
        identifiers.append(Identifier(IdentifierKind.WECHAT_UNIONID, unionid))
    method = fields.text(obj.get("source"))
    phone = fields.text(obj.get("phone"))
    if phone:
        verified = verified_at is not None and (method or "").lower() in VERIFYING_METHODS
        ident = fields.attempt(
            errors, lambda: fields.phone(phone, "phone", verified=verified, verified_at=verified_at)
        )
        if ident is not None:
            identifiers.append(ident)
    for bad in errors:
        yield row_error(
            filename, line, bad.reason, column=bad.column, raw=_raw(obj), code="BAD_FIELD"
        )
    yield SourceRecord(
        source=SOURCE,
        source_key=f"{app_id}:{openid}",
        business_line=BUSINESS_LINE,
        observed_at=signed_up or verified_at or fallback,
        identifiers=tuple(identifiers),
        attributes={"signup_source": method} if method else {},
    )


def _time(obj: Mapping[str, Any], fld: str, errors: list[BadField]) -> datetime | None:
    raw = fields.text(obj.get(fld))
    return fields.attempt(errors, lambda: fields.local_time(raw, fld)) if raw else None


def _order(line: int, obj: Mapping[str, Any], filename: str) -> Iterator[Parsed]:
    order_id = fields.text(obj["order_id"])
    status_text = (fields.text(obj.get("status")) or "").lower()
    if order_id is None:
        raise BadField("order_id", "is empty")
    if status_text not in _STATUS:
        raise BadField("status", f"unknown order status (known: {', '.join(sorted(_STATUS))})")
    status = _STATUS[status_text]
    if status is None:
        reason = "order is not paid yet; send it again once paid"
        yield row_error(filename, line, reason, column="status", code="SKIPPED")
        return
    created = fields.text(obj.get("created_at"))
    if created is None:
        raise BadField("created_at", "is empty")
    occurred_at = fields.local_time(created, "created_at")
    if obj.get("amount_fen") is not None:
        amount = fields.fen(obj["amount_fen"], "amount_fen")
    elif obj.get("amount") is not None:
        amount = fields.yuan(obj["amount"], "amount")
    else:
        raise BadField("amount_fen", "is empty")
    refund_of = fields.text(obj.get("refund_of"))
    app_id, openid = fields.text(obj.get("app_id")), fields.text(obj.get("openid"))
    user_key = fields.text(obj.get("user_key")) or (
        f"{app_id}:{openid}" if app_id and openid else None
    )
    yield Activity(
        source=SOURCE,
        external_id=order_id,
        kind=ActivityKind.REFUND if refund_of else ActivityKind.PURCHASE,
        business_line=BUSINESS_LINE,
        occurred_at=occurred_at,
        status=status,
        source_key=user_key,
        amount_fen=abs(amount),
        original_external_id=refund_of,
        details={"app_id": app_id} if app_id else {},
    )
