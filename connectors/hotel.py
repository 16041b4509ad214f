"""Hotel PMS: guest profiles (OPERA Cloud JSON, OpenTravel XML) and stays (CSV).

``parse(stream, filename=..., pms_id="opera")`` tells the inputs apart by their first character:

- **OPERA Cloud profile JSON** (formats doc §6a): one ``{profileIdList, profileDetails}`` object,
  an array of them, or NDJSON.
- **OpenTravel ``OTA_ProfileReadRS`` XML** (§6b), read profile by profile with a streaming
  parser that refuses entity declarations and external references (defusedxml).
- **Stays CSV** (hub-normalised, §6a): ``hotel_id,confirmation_no,profile_id,arrival,departure,
  room_nights,room_type,rate_code,market,channel,room_revenue,fb_revenue,other_revenue,currency,
  status``.

Profiles → ``SourceRecord`` (source ``hotel``, business line ``hotel``, ``source_key`` = the PMS
profile id) with ``HOTEL_PROFILE_ID`` (scope = ``pms_id``, or the XML's ``ID_Context``),
``MEMBERSHIP_ID`` (scope = membership type), ``ID_DOCUMENT`` (``TYPE:NUMBER``, Chinese resident
IDs checksum-verified), ``PHONE`` and ``EMAIL`` (unverified: typed in at the front desk).

- Names: the Alternate (Chinese script) name is ``name``; the Primary latin/pinyin name is
  ``name_latin``, written family name first when a Chinese name is present (so pinyin lines up
  with the characters) and given name first otherwise.
- A masked document number (``idNumberMasked`` only) is not an identifier and is skipped. A
  document number with a bad check digit is reported (``BAD_FIELD``) and the profile is still
  imported without it: the rest of the profile is sound, and a typo must not become a merge key.
- ``privacyInfo`` opt-ins become consents (``email``, ``sms``, ``phone``, ``mailing_list``,
  ``third_party``, ``market_research``). Only province/city/country of the address are kept
  (PIPL minimisation: street detail is not needed to match or serve a member).
- A profile the PMS has anonymised is not imported (``SKIPPED``).

Stays → ``Activity`` of kind ``STAY``: ``external_id`` = ``"{hotel_id}:{confirmation_no}"``,
``quantity`` = room nights computed as departure − arrival. When a ``room_nights`` column
disagrees the dates win and a ``BAD_FIELD`` row error says so (the activity is still imported).
``amount_fen`` = room + F&B + other revenue (yuan → fen) with the parts in ``details``; only CNY
is accepted. Status: CheckedOut → confirmed; Reserved/InHouse → pending; Cancelled/NoShow →
cancelled. ``occurred_at`` is the departure date (00:00 Asia/Shanghai): a stay counts when it
ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time
from typing import Any, BinaryIO

from connectors import fields
from connectors.base import HeaderMap, csv_rows, resolve_header, row_error, sniff_encoding
from connectors.fields import BadField
from connectors.hotel_profiles import DEFAULT_PMS, Person, opera_profiles, ota_profiles
from connectors.jsonio import first_char, peek_head
from hub.core.clock import SHANGHAI, utcnow
from hub.core.errors import ImportFormatError, RecordError
from hub.core.records import Activity, ActivityKind, ActivityStatus, Parsed, SourceRecord

SOURCE = "hotel"
BUSINESS_LINE = "hotel"
CURRENCY = "CNY"

STAY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "hotel_id": ("hotel_id", "hotelId", "酒店代码"),
    "confirmation_no": ("confirmation_no", "confirmationNo", "确认号"),
    "profile_id": ("profile_id", "profileId", "档案号"),
    "arrival": ("arrival", "arrival_date", "arrivalDate", "到店日期"),
    "departure": ("departure", "departure_date", "departureDate", "离店日期"),
    "room_nights": ("room_nights", "nights", "间夜"),
    "room_type": ("room_type", "roomType", "房型"),
    "rate_code": ("rate_code", "ratePlanCode", "房价码"),
    "market": ("market", "marketCode", "市场码"),
    "channel": ("channel", "bookingChannelCode", "渠道"),
    "room_revenue": ("room_revenue", "roomRevenue", "房费"),
    "fb_revenue": ("fb_revenue", "foodAndBevRevenue", "餐饮"),
    "other_revenue": ("other_revenue", "otherRevenue", "其他"),
    "currency": ("currency", "currencyCode", "币种"),
    "status": ("status", "reservationStatus", "状态"),
}
STAY_REQUIRED = ("hotel_id", "confirmation_no", "profile_id", "arrival", "departure", "status")

_STAY_STATUS = {
    "checkedout": ActivityStatus.CONFIRMED,
    "reserved": ActivityStatus.PENDING,
    "inhouse": ActivityStatus.PENDING,
    "cancelled": ActivityStatus.CANCELLED,
    "canceled": ActivityStatus.CANCELLED,
    "noshow": ActivityStatus.CANCELLED,
}


def looks_like(head: bytes) -> bool:
    """True for OPERA profile JSON, OTA_ProfileReadRS XML or a stays CSV."""
    text = head.decode(sniff_encoding(head), errors="ignore").lstrip("\ufeff")
    start = first_char(head)
    if start == "<":
        return "OTA_ProfileReadRS" in text
    if start in ("{", "["):
        return '"profileDetails"' in text or '"profileIdList"' in text
    header = {c.strip().strip('"') for c in text.split("\n", 1)[0].split(",")}
    return all(any(n in header for n in STAY_SYNONYMS[f]) for f in STAY_REQUIRED)


def parse(
    stream: BinaryIO,
    *,
    filename: str,
    pms_id: str = DEFAULT_PMS,
    observed_at: datetime | None = None,
) -> Iterator[Parsed]:
    """Profiles or stays. ``observed_at`` stands in for profiles that carry no timestamp."""
    fallback = observed_at or utcnow()
    buffered, head = peek_head(stream)
    start = first_char(head)
    if start == "<":
        people = ota_profiles(buffered, filename=filename, pms_id=pms_id)
    elif start in ("{", "["):
        people = opera_profiles(buffered, filename=filename, pms_id=pms_id)
    else:
        yield from _stays(buffered, filename)
        return
    for item in people:
        if isinstance(item, Person):
            yield from _record(item, filename, fallback)
        else:
            yield item


def _record(person: Person, filename: str, fallback: datetime) -> Iterator[Parsed]:
    for bad in person.errors:
        yield row_error(filename, person.line, bad.reason, column=bad.column, code="BAD_FIELD")
    try:
        yield SourceRecord(
            source=SOURCE,
            source_key=person.key,
            business_line=BUSINESS_LINE,
            observed_at=person.observed_at or fallback,
            identifiers=tuple(person.identifiers),
            name=person.name,
            name_latin=person.name_latin,
            gender=person.gender,
            birthday=person.birthday,
            address=person.address,
            consents=person.consents,
            attributes=person.attributes,
        )
    except RecordError as exc:
        yield row_error(filename, person.line, exc.reason, column=exc.field)


# -- stays ----------------------------------------------------------------------------------------


def _stays(stream: BinaryIO, filename: str) -> Iterator[Parsed]:
    rows = csv_rows(stream)
    try:
        _, header = next(rows)
    except StopIteration:
        raise ImportFormatError(f"{filename} is empty") from None
    hmap = resolve_header(
        header, STAY_SYNONYMS, STAY_REQUIRED, connector="hotel stay", filename=filename
    )
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        try:
            yield from _stay(line, row, hmap, filename)
        except BadField as exc:
            yield row_error(filename, line, exc.reason, column=exc.column, raw=row)
        except RecordError as exc:
            yield row_error(filename, line, exc.reason, column=hmap.column(exc.field), raw=row)


def _stay(line: int, row: list[str], hmap: HeaderMap, filename: str) -> Iterator[Parsed]:
    col = hmap.column

    def need(fld: str) -> str:
        value = hmap.get(row, fld)
        if value is None:
            raise BadField(col(fld), "is empty")
        return value

    hotel_id, confirmation, profile_id = (
        need("hotel_id"),
        need("confirmation_no"),
        need("profile_id"),
    )
    status_text = re.sub(r"[^a-z]", "", need("status").lower())
    if status_text not in _STAY_STATUS:
        raise BadField(col("status"), "unknown reservation status")
    arrival = fields.local_date(need("arrival"), col("arrival"))
    departure = fields.local_date(need("departure"), col("departure"))
    nights = (departure - arrival).days
    if nights < 0:
        raise BadField(col("departure"), "is before arrival")
    currency = (hmap.get(row, "currency") or CURRENCY).upper()
    if currency != CURRENCY:
        raise BadField(col("currency"), f"only {CURRENCY} amounts can be imported")
    parts = {
        f"{fld}_fen": fields.yuan(hmap.get(row, fld) or "0", col(fld))
        for fld in ("room_revenue", "fb_revenue", "other_revenue")
    }
    if any(v < 0 for v in parts.values()):
        raise BadField(col("room_revenue"), "revenue must not be negative")
    stated = hmap.get(row, "room_nights")
    if stated is not None and stated != str(nights):
        reason = f"room_nights says {stated} but the dates give {nights}; the dates were used"
        yield row_error(
            filename, line, reason, column=col("room_nights"), raw=row, code="BAD_FIELD"
        )
    details: dict[str, Any] = {
        "hotel_id": hotel_id,
        "confirmation_no": confirmation,
        "arrival": arrival.isoformat(),
        "departure": departure.isoformat(),
        **parts,
    }
    for extra in ("room_type", "rate_code", "market", "channel"):
        value = hmap.get(row, extra)
        if value is not None:
            details[extra] = value
    yield Activity(
        source=SOURCE,
        external_id=f"{hotel_id}:{confirmation}",
        kind=ActivityKind.STAY,
        business_line=BUSINESS_LINE,
        occurred_at=datetime.combine(departure, time(0), tzinfo=SHANGHAI),
        status=_STAY_STATUS[status_text],
        source_key=profile_id,
        amount_fen=sum(parts.values()),
        quantity=nights,
        details=details,
    )


__all__ = ["BUSINESS_LINE", "DEFAULT_PMS", "SOURCE", "STAY_SYNONYMS", "looks_like", "parse"]
