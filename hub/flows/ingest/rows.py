"""Canonical records → database rows: keyed hashes, encrypted PII, content hashes.

Pure and CPU-bound, so the pipeline runs it in a worker thread while the previous batch is
being written. Nothing here keeps a plaintext value beyond the call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.core.pii import KeyRing, aad_for, mask_email, mask_id_number, mask_phone
from hub.core.records import Activity, Identifier, IdentifierKind, SourceRecord

_MASKERS = {
    IdentifierKind.PHONE: mask_phone,
    IdentifierKind.EMAIL: mask_email,
    IdentifierKind.ID_DOCUMENT: mask_id_number,
}


# Source keys that are themselves PII (a POS sale keyed by the phone typed at the till) are
# stored as a keyed hash, never in clear.
_PII_KEY_PREFIXES = ("mobile:",)


def storage_key(source_key: str, keyring: KeyRing) -> str:
    if source_key.startswith(_PII_KEY_PREFIXES):
        prefix = source_key.split(":", 1)[0]
        return f"{prefix}#" + keyring.hash("source_key", source_key)
    return source_key


def pii_aad(source: str, source_key: str) -> bytes:
    return aad_for("source_record", "pii", f"{source}/{source_key}")


def _masked(ident: Identifier) -> str | None:
    if ident.kind is IdentifierKind.PHONE_MASKED:
        return ident.value
    masker = _MASKERS.get(ident.kind)
    return masker(ident.value) if masker else None


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class RecordRow:
    source: str
    source_key: str
    business_line: str
    observed_at: datetime
    content_hash: str
    pii_enc: str | None
    gender: str | None
    consents: str
    attributes: str
    identifiers: tuple[tuple[str, str, str, bool, datetime | None, str | None], ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_key)


@dataclass(frozen=True, slots=True)
class ActivityRow:
    source: str
    external_id: str
    kind: str
    business_line: str
    source_key: str | None
    amount_fen: int
    quantity: int
    occurred_at: datetime
    status: str
    original_external_id: str | None
    details: str
    content_hash: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.external_id)


def record_row(record: SourceRecord, keyring: KeyRing) -> RecordRow:
    pii: dict[str, Any] = {
        "name": record.name,
        "name_latin": record.name_latin,
        "birthday": record.birthday.isoformat() if record.birthday else None,
        "address": None,
        "identifiers": [
            {"kind": i.kind.value, "value": i.value, "scope": i.scope} for i in record.identifiers
        ],
    }
    if record.address is not None:
        a = record.address
        pii["address"] = {
            "province": a.province,
            "city": a.city,
            "district": a.district,
            "detail": a.detail,
            "country": a.country,
        }
    identifiers = tuple(
        (
            i.kind.value,
            i.scope or "",
            keyring.hash(i.kind.value, i.value, i.scope),
            i.verified,
            i.verified_at,
            _masked(i),
        )
        for i in record.identifiers
    )
    consents = _canonical(dict(record.consents))
    attributes = _canonical(dict(record.attributes))
    pii_json = _canonical(pii)
    content = _canonical(
        {
            "line": record.business_line,
            "pii": pii_json,
            "ids": [(k, s, v, ts.isoformat() if ts else None) for k, s, _, v, ts, _ in identifiers],
            "gender": record.gender.value if record.gender else None,
            "consents": consents,
            "attributes": attributes,
        }
    )
    has_pii = any(v for k, v in pii.items() if k != "identifiers") or record.identifiers
    key = storage_key(record.source_key, keyring)
    return RecordRow(
        source=record.source,
        source_key=key,
        business_line=record.business_line,
        observed_at=record.observed_at,
        content_hash=keyring.hash("content", content),
        pii_enc=keyring.encrypt(pii_json, aad=pii_aad(record.source, record.source_key))
        if has_pii
        else None,
        gender=record.gender.value if record.gender else None,
        consents=consents,
        attributes=attributes,
        identifiers=identifiers,
    )


def activity_row(activity: Activity, keyring: KeyRing) -> ActivityRow:
    details = _canonical(dict(activity.details))
    person = storage_key(activity.source_key, keyring) if activity.source_key else None
    content = _canonical(
        {
            "kind": activity.kind.value,
            "line": activity.business_line,
            "person": person,
            "amount": activity.amount_fen,
            "qty": activity.quantity,
            "at": activity.occurred_at.isoformat(),
            "status": activity.status.value,
            "orig": activity.original_external_id,
            "details": details,
        }
    )
    return ActivityRow(
        source=activity.source,
        external_id=activity.external_id,
        kind=activity.kind.value,
        business_line=activity.business_line,
        source_key=person,
        amount_fen=activity.amount_fen,
        quantity=activity.quantity,
        occurred_at=activity.occurred_at,
        status=activity.status.value,
        original_external_id=activity.original_external_id,
        details=details,
        content_hash=keyring.hash("content", content),
    )
