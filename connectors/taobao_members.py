"""Taobao/Tmall 会员通 membership data (formats doc §2) → member SourceRecords and signups.

Layout (hub-normalised from the join-time payload and the CRM member APIs)::

    platform,shop_id,ouid,omid,mix_nick,mobile,mobile_sha256,bind_status,grade,joined_at

- ``source_key`` is the ouid, the same key ``taobao`` uses for order buyers when an export has
  it, so a member and their orders land on one source record.
- ouid, omid and mix_nick are per merchant/AppKey by design; all three are scoped by shop_id so
  they are never compared across merchants (the omid scope is unconfirmed, so we stay narrow).
- A plaintext ``mobile`` is the member's consented number (Tmall passes it only with consent),
  so it is a *verified* phone; a masked one is weak evidence only.
- ``mobile_sha256`` is dropped: an unkeyed hash joins nothing the hub stores (identity uses keyed
  hashes) and keeping it would only retain personal data (PIPL Art 6).
- ``joined_at`` also yields a SIGNUP activity ``member:<shop>:<ouid>`` (stable, so re-imports are
  idempotent); without it the record is observed at import time and no signup is emitted.
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

SOURCE = "taobao"
BUSINESS_LINE = "taobao"

SYNONYMS: Mapping[str, Sequence[str]] = {
    "platform": ("platform", "平台"),
    "shop_id": ("shop_id", "店铺ID", "店铺Id"),
    "ouid": ("ouid", "OUID"),
    "omid": ("omid", "OMID"),
    "mix_nick": ("mix_nick", "混淆昵称"),
    "mobile": ("mobile", "clear_mobile", "手机号"),
    "bind_status": ("bind_status", "绑定状态"),
    "grade": ("grade", "会员等级"),
    "grade_name": ("grade_name", "等级名称"),
    "joined_at": ("joined_at", "gmt_create", "入会时间"),
}
REQUIRED = ("shop_id", "ouid")
BIND_STATUS = {"1": "bind", "2": "register"}  # 1 绑卡 (existing offline member), 2 注册 (new)


def looks_like(header: Sequence[str]) -> bool:
    names = {h.strip().lstrip("\ufeff") for h in header}
    return {"ouid", "shop_id"} <= names and bool(names & {"mix_nick", "omid"})


def parse(stream: BinaryIO, *, filename: str) -> Iterator[Parsed]:
    rows = csv_rows(stream)
    hm = resolve_header(
        next(rows, (1, []))[1], SYNONYMS, REQUIRED, connector="taobao member", filename=filename
    )
    now = utcnow()
    yield from m.map_rows(rows, filename, lambda line, row: _member(hm, row, line, filename, now))


def _member(
    hm: HeaderMap, row: Sequence[str], line: int, filename: str, now: datetime
) -> list[Parsed]:
    shop = m.required(hm, row, "shop_id")
    ouid = m.required(hm, row, "ouid")
    joined = m.when(hm, row, "joined_at")
    bind = hm.get(row, "bind_status")
    if bind is not None and bind not in BIND_STATUS:
        raise m.FieldError(hm.column("bind_status"), f"unknown bind_status {bind!r} (1 or 2)")
    out: list[Parsed] = []
    identifiers = [Identifier(IdentifierKind.TAOBAO_OUID, ouid, scope=shop)]
    if omid := hm.get(row, "omid"):
        identifiers.append(Identifier(IdentifierKind.TAOBAO_OMID, omid, scope=shop))
    if mix := hm.get(row, "mix_nick"):
        identifiers.append(Identifier(IdentifierKind.TAOBAO_MIX_NICK, mix, scope=shop))
    if mobile := hm.get(row, "mobile"):
        try:
            identifiers.append(_member_phone(mobile, joined))
        except ValueError as exc:
            out.append(m.note(filename, line, hm.column("mobile"), f"phone ignored: {exc}", row))
    attributes = {"shop_id": shop}
    for fld in ("platform", "grade", "grade_name"):
        if value := hm.get(row, fld):
            attributes[fld] = value
    if bind is not None:
        attributes["bind_status"] = BIND_STATUS[bind]
    out.append(
        SourceRecord(
            source=SOURCE,
            source_key=ouid,
            business_line=BUSINESS_LINE,
            observed_at=joined or now,
            identifiers=tuple(identifiers),
            attributes=attributes,
        )
    )
    if joined is not None:
        out.append(
            Activity(
                source=SOURCE,
                external_id=f"member:{shop}:{ouid}",
                kind=ActivityKind.SIGNUP,
                business_line=BUSINESS_LINE,
                occurred_at=joined,
                status=ActivityStatus.CONFIRMED,
                source_key=ouid,
                details={
                    "shop_id": shop,
                    **({"bind_status": attributes["bind_status"]} if bind else {}),
                },
            )
        )
    return out


def _member_phone(raw: str, joined: datetime | None) -> Identifier:
    if is_masked(raw):
        return Identifier(IdentifierKind.PHONE_MASKED, masked_phone_pattern(raw))
    return Identifier(IdentifierKind.PHONE, m.mobile_e164(raw), verified=True, verified_at=joined)
