"""Douyin 会员通 shop/brand membership data (formats doc §4) → member SourceRecords and signups.

Layout (hub-normalised from ``/member/mGetMemberInfoByOpenIdList`` and the union-id APIs)::

    platform,shop_id,open_id,union_id,mobile,mobile_encrypted,is_member,joined_at

- ``open_id`` is per shop → DOUYIN_OPEN_ID scoped by shop_id; ``source_key`` ``<shop>:<open id>``
  (the key the ``douyin`` connector gives API buyers, so a member and their orders meet).
- ``union_id`` is per brand (all the brand's shops) → DOUYIN_UNION_ID scoped by the ``brand_id``
  column when the file has one, else by ``brand`` (the parse argument, default ``"brand"``: one
  hub serves one group, and a group's Douyin shops normally sit under one brand). A row with only
  a union id (history backfill) is keyed ``union:<brand>:<union id>``. A union id does not prove
  membership (formats doc §4), so membership comes from ``is_member`` alone.
- A plaintext ``mobile`` is returned by Douyin only to shops the user recently paid, i.e. a real,
  platform-held number → verified PHONE. ``mobile_encrypted`` is ciphertext only Douyin can open;
  it is not kept.
- ``is_member`` true with ``joined_at`` → SIGNUP ``member:<shop>:<open id>``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import BinaryIO

from connectors import marketplace as m
from connectors.base import HeaderMap, csv_rows, resolve_header
from hub.core.clock import utcnow
from hub.core.normalize import is_masked, masked_phone_pattern
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Identifier,
    IdentifierKind,
    Parsed,
    SourceRecord,
)

SOURCE = "douyin"
BUSINESS_LINE = "douyin"
DEFAULT_BRAND = "brand"

SYNONYMS: Mapping[str, Sequence[str]] = {
    "platform": ("platform", "平台"),
    "shop_id": ("shop_id", "店铺ID"),
    "brand_id": ("brand_id", "品牌ID"),
    "open_id": ("open_id", "openid", "doudian_open_id"),
    "union_id": ("union_id", "unionid"),
    "mobile": ("mobile", "手机号"),
    "is_member": ("is_member", "是否会员"),
    "level": ("level", "grade", "会员等级"),
    "joined_at": ("joined_at", "入会时间"),
}
REQUIRED = ("shop_id", "open_id", "union_id")
_TRUE = {"true", "1", "yes", "y", "是"}
_FALSE = {"false", "0", "no", "n", "否"}


def looks_like(header: Sequence[str]) -> bool:
    names = {h.strip().lstrip("\ufeff") for h in header}
    return {"shop_id", "open_id", "union_id"} <= names


def parse(stream: BinaryIO, *, filename: str, brand: str = DEFAULT_BRAND) -> Iterator[Parsed]:
    rows = csv_rows(stream)
    hm = resolve_header(
        next(rows, (1, []))[1], SYNONYMS, REQUIRED, connector="douyin member", filename=filename
    )
    now = utcnow()
    yield from m.map_rows(
        rows, filename, lambda line, row: _member(hm, row, line, filename, brand, now)
    )


def _member(
    hm: HeaderMap, row: Sequence[str], line: int, filename: str, brand: str, now: datetime
) -> list[Parsed]:
    shop = m.required(hm, row, "shop_id")
    open_id = hm.get(row, "open_id")
    union_id = hm.get(row, "union_id")
    if open_id is None and union_id is None:
        raise m.FieldError(hm.column("open_id"), "neither open_id nor union_id is given")
    joined = m.when(hm, row, "joined_at")
    is_member = _flag(hm, row, "is_member")
    scope = hm.get(row, "brand_id") or brand
    out: list[Parsed] = []
    identifiers: list[Identifier] = []
    if open_id:
        identifiers.append(Identifier(IdentifierKind.DOUYIN_OPEN_ID, open_id, scope=shop))
    if union_id:
        identifiers.append(Identifier(IdentifierKind.DOUYIN_UNION_ID, union_id, scope=scope))
    if mobile := hm.get(row, "mobile"):
        try:
            if is_masked(mobile):
                identifiers.append(
                    Identifier(IdentifierKind.PHONE_MASKED, masked_phone_pattern(mobile))
                )
            else:
                e164 = m.mobile_e164(mobile)
                identifiers.append(
                    Identifier(IdentifierKind.PHONE, e164, verified=True, verified_at=joined)
                )
        except ValueError as exc:
            out.append(m.note(filename, line, hm.column("mobile"), f"phone ignored: {exc}", row))
    key = f"{shop}:{open_id}" if open_id else f"union:{scope}:{union_id}"
    attributes = {"shop_id": shop}
    if is_member is not None:
        attributes["is_member"] = "true" if is_member else "false"
    for fld in ("platform", "level"):
        if value := hm.get(row, fld):
            attributes[fld] = value
    out.append(
        SourceRecord(
            source=SOURCE,
            source_key=key,
            business_line=BUSINESS_LINE,
            observed_at=joined or now,
            identifiers=tuple(identifiers),
            attributes=attributes,
        )
    )
    if is_member and joined is not None and open_id:
        out.append(
            Activity(
                source=SOURCE,
                external_id=f"member:{shop}:{open_id}",
                kind=ActivityKind.SIGNUP,
                business_line=BUSINESS_LINE,
                occurred_at=joined,
                status=ActivityStatus.CONFIRMED,
                source_key=key,
                details={"shop_id": shop},
            )
        )
    return out


def _flag(hm: HeaderMap, row: Sequence[str], fld: str) -> bool | None:
    value = hm.get(row, fld)
    if value is None:
        return None
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise m.FieldError(hm.column(fld), f"not true/false: {value!r}")
