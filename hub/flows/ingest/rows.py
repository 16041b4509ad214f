"""Canonical records → database rows: keyed hashes, encrypted PII, content digests.

Pure and CPU-bound, and run for every imported item, so it is written for speed: the PII JSON is
assembled directly rather than through ``json.dumps`` of a nested dict, and the content digest
covers a separator-joined string of already-canonical parts. Nothing here keeps a plaintext
value beyond the call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from hub.core.pii import KeyRing, aad_for, mask_email, mask_id_number, mask_phone
from hub.core.records import (
    Activity,
    ActivityKind,
    Address,
    Identifier,
    IdentifierKind,
    Purchase,
    SourceRecord,
)

_MASKERS = {
    IdentifierKind.PHONE: mask_phone,
    IdentifierKind.EMAIL: mask_email,
    IdentifierKind.ID_DOCUMENT: mask_id_number,
}


# Source keys that are themselves PII (a POS sale keyed by the phone typed at the till) are
# stored as a keyed hash, never in clear.
_PII_KEY_PREFIXES = ("mobile:",)

# Canonical JSON: sorted keys, no spaces, non-ASCII kept. One encoder for the whole run (building
# one per call is a third of ``json.dumps``'s cost on the small mappings we encode).
_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
).encode

# The record enums are StrEnums: a member is its value as a ``str``, and is used as one here
# (``.value`` is a descriptor call, one of the larger costs per row at this volume).

# Content parts are joined with this. Every part is a slug, an enum value, a number, a date, a
# digest or JSON text (in which a raw control character cannot occur), so the join is unambiguous.
_SEP = "\x1f"


# COPY's text format: tab-separated, \N for NULL, and backslash, tab, newline and carriage return
# escaped. Digests, enum values, slugs, numbers and ISO times never need it; JSON text has no
# raw control characters but may hold backslashes.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str | None) -> str:
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def copy_json(value: str) -> str:
    return value.replace("\\", "\\\\") if "\\" in value else value


def copy_time(value: datetime | None) -> str:
    return "\\N" if value is None else value.isoformat()


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


# JSON text of mapping keys seen so far: a few constant names ("paid_fen", "shipping_fen").
_KEY_JSON: dict[str, str] = {}
_KEY_JSON_LIMIT = 1_000


def _key_json(key: str) -> str:
    text = _KEY_JSON.get(key)
    if text is None:
        text = encode_basestring(key)
        if len(_KEY_JSON) < _KEY_JSON_LIMIT:
            _KEY_JSON[key] = text
    return text


def _canonical(data: Mapping[str, Any]) -> str:
    if not data:
        return "{}"  # the usual case, and the encoder's slowest per byte
    if len(data) == 2 and type(data) is dict:
        # Two whole numbers (an order's shipping and paid fen, on every row of an export),
        # written without the loop below: a third of its cost.
        (k1, v1), (k2, v2) = data.items()
        if type(v1) is int and type(v2) is int and type(k1) is str and type(k2) is str:
            if k2 < k1:
                k1, v1, k2, v2 = k2, v2, k1, v1
            return f"{{{_KEY_JSON.get(k1) or _key_json(k1)}:{v1},{_KEY_JSON.get(k2) or _key_json(k2)}:{v2}}}"
    # Any other flat mapping of text and whole numbers is written directly too: what the
    # encoder gives, at a third of its cost on a few keys.
    parts = []
    key_json = _KEY_JSON
    for key in sorted(data):
        value = data[key]
        kind = type(value)
        if kind is int:
            text = str(value)
        elif kind is str:
            text = encode_basestring(value)
        else:
            return _encode(data if isinstance(data, dict) else dict(data))
        if type(key) is not str:
            return _encode(data if isinstance(data, dict) else dict(data))
        parts.append((key_json.get(key) or _key_json(key)) + ":" + text)
    return "{" + ",".join(parts) + "}"


def _json_text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _address_json(a: Address | None) -> str:
    if a is None:
        return "null"
    return (
        f'{{"city":{_json_text(a.city)},"country":{_json_text(a.country)},'
        f'"detail":{_json_text(a.detail)},"district":{_json_text(a.district)},'
        f'"province":{_json_text(a.province)}}}'
    )


def pii_json(record: SourceRecord) -> str:
    """The record's PII as canonical JSON, the plaintext that is encrypted into ``pii_enc``.

    Byte for byte what ``_canonical`` gives for the same dict (a test holds it to that), written
    out by hand because this runs for every imported record.
    """
    identifiers = ",".join(
        f'{{"kind":"{i.kind}","scope":{_json_text(i.scope)},"value":{_json_text(i.value)}}}'
        for i in record.identifiers
    )
    birthday = f'"{record.birthday.isoformat()}"' if record.birthday else "null"
    return (
        f'{{"address":{_address_json(record.address)},"birthday":{birthday},'
        f'"identifiers":[{identifiers}],"name":{_json_text(record.name)},'
        f'"name_latin":{_json_text(record.name_latin)}}}'
    )


class RecordRow(NamedTuple):
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
    # COPY text (``store.stage``), UTF-8, written once per record built however often it is
    # observed: the ``stage_record`` row after its ``seq`` and ``observed_at`` columns, and the
    # ``stage_identifier`` rows, one per line (empty for none). As bytes: a line with a 汉字
    # key would otherwise widen every character of the line, and be encoded per batch.
    copy: bytes
    identifiers_copy: bytes
    # Built with ``seal=False``: the PII is sealed where the batch is written. ``pii_enc`` is
    # then None and ``copy`` lacks its column's text, which goes at this offset.
    unsealed: tuple[int, str, bytes] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_key)


# A line of COPY text whose sealed PII is still to be made: (text before it, the plaintext, the
# associated data, text after it); see ``sealed``.
Unsealed = tuple[bytes, str, bytes, bytes]


def sealed(part: Unsealed, keyring: KeyRing) -> bytes:
    before, plaintext, aad, after = part
    return before + keyring.encrypt(plaintext, aad=aad).encode() + after


class ActivityRow(NamedTuple):
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
    # The row's COPY text (``store.ACTIVITY_COLUMNS`` but the import run, which the writer
    # adds), written here from the same strings the content digest was made of; UTF-8.
    copy: bytes

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.external_id)


# Identifier digests already computed in one import: (kind, value, scope) -> digest. Bounded,
# and owned by one import (``hub.flows.ingest.batch.Preparer``), never by the long-lived key ring.
HashMemo = dict[tuple[str, str, str | None], str]
HASH_MEMO_LIMIT = 200_000


def _digest(keyring: KeyRing, ident: Identifier, memo: HashMemo | None) -> str:
    if memo is None:
        return keyring.hash(ident.kind, ident.value, ident.scope)
    key = (ident.kind, ident.value, ident.scope)
    digest = memo.get(key)
    if digest is None:
        digest = keyring.hash(ident.kind, ident.value, ident.scope)
        if len(memo) >= HASH_MEMO_LIMIT:
            memo.clear()
        memo[key] = digest
    return digest


def record_row(
    record: SourceRecord, keyring: KeyRing, memo: HashMemo | None = None, *, seal: bool = True
) -> RecordRow:
    """``memo``: identifier digests to reuse within one import (a buyer's nick on each order,
    a masked phone shared by many). ``seal=False``: the PII is left for the writer to seal
    (``RecordRow.unsealed``; the import worker's load, moved to the importing process)."""
    key = storage_key(record.source_key, keyring)
    source_text, key_text = copy_text(record.source), copy_text(key)
    # One pass over the identifiers: their columns, their COPY lines, and their verification
    # (values and scopes are inside the PII JSON; only the verification is not).
    identifiers = []
    verification = []
    lines = []
    for i in record.identifiers:
        scope = i.scope or ""
        digest = _digest(keyring, i, memo)
        masked = _masked(i)
        verified_at = i.verified_at
        identifiers.append((i.kind, scope, digest, i.verified, verified_at, masked))
        verification.append(
            ("1" if i.verified else "0") + (verified_at.isoformat() if verified_at else "")
        )
        lines.append(
            "\t".join(
                (
                    source_text,
                    key_text,
                    i.kind,
                    copy_text(scope),
                    digest,
                    "t" if i.verified else "f",
                    copy_time(verified_at),
                    copy_text(masked),
                )
            )
        )
    consents = _canonical(record.consents)
    attributes = _canonical(record.attributes)
    pii = pii_json(record)
    gender = record.gender
    content = _SEP.join(
        (record.business_line, pii, ",".join(verification), gender or "", consents, attributes)
    )
    has_pii = (
        record.name is not None
        or record.name_latin is not None
        or record.birthday is not None
        or record.address is not None
        or bool(identifiers)
    )
    content_hash = keyring.content_digest(content)
    # Sealed to the key as stored, so the row can be decrypted from what the table holds.
    aad = pii_aad(record.source, key)
    unsealed = None
    if has_pii and not seal:
        pii_enc = None
        head = f"{source_text}\t{key_text}\t{record.business_line}\t{content_hash}\t".encode()
        unsealed = (len(head), pii, aad)
        pii_text = ""
    else:
        pii_enc = keyring.encrypt(pii, aad=aad) if has_pii else None
        pii_text = copy_text(pii_enc)  # a sealed token is base64 and a key id: never escaped
    copy = "\t".join(
        (
            source_text,
            key_text,
            record.business_line,
            content_hash,
            pii_text,
            copy_text(gender),
            copy_json(consents),
            copy_json(attributes),
        )
    ).encode()
    # Positional: a NamedTuple built by keyword costs twice as much.
    return RecordRow(
        record.source,
        key,
        record.business_line,
        record.observed_at,
        content_hash,
        pii_enc,
        gender,
        consents,
        attributes,
        tuple(identifiers),
        copy,
        "\n".join(lines).encode(),
        unsealed,
    )


def activity_row(activity: Activity, keyring: KeyRing) -> ActivityRow:
    return _activity_row(
        activity.source,
        activity.external_id,
        activity.kind,
        activity.business_line,
        activity.source_key,
        activity.amount_fen,
        activity.quantity,
        activity.occurred_at,
        activity.status,
        activity.original_external_id,
        activity.details,
        keyring,
    )


def purchase_row(item: Purchase, keyring: KeyRing) -> ActivityRow:
    """The row of ``item.activity()``, without building it (the fast lane)."""
    return _purchase_row(purchase_cells(item), keyring)


# A fast-lane purchase's activity row before it is written out: what ``purchase_row`` takes from
# the ``Purchase`` (source, external id, business line, source key, amount in fen, quantity,
# occurred at, status, details), sent from the import worker as a plain tuple and rendered where
# the batch is written (``purchase_copy``). Without hooks the worker is the import's bound and the
# importing process waits on the database for most of each batch, so the row's content digest and
# COPY text are made there instead (``batch.Preparer``'s ``defer_purchases``). A plain tuple, not
# a NamedTuple: pickling a NamedTuple calls back into Python for each one (measured: 4.0 against
# 0.5 µs per row to pickle, 2.4 against 1.7 to load).
PurchaseCells = tuple[str, str, str, str | None, int, int, datetime, str, Mapping[str, Any]]


def purchase_cells(item: Purchase) -> PurchaseCells:
    return (
        item.source,
        item.external_id,
        item.business_line,
        item.source_key,
        item.amount_fen,
        item.quantity,
        item.occurred_at,
        item.status,
        item.details,
    )


def purchase_copy(cells: PurchaseCells, keyring: KeyRing) -> bytes:
    """The COPY text ``purchase_row`` gives for the purchase ``cells`` were taken from."""
    return _purchase_row(cells, keyring).copy


def _purchase_row(cells: PurchaseCells, keyring: KeyRing) -> ActivityRow:
    source, external_id, line, source_key, amount_fen, quantity, occurred, status, details = cells
    return _activity_row(
        source,
        external_id,
        ActivityKind.PURCHASE,
        line,
        source_key,
        amount_fen,
        quantity,
        occurred,
        status,
        None,
        details,
        keyring,
    )


def _activity_row(
    source: str,
    external_id: str,
    kind: str,
    business_line: str,
    source_key: str | None,
    amount_fen: int,
    quantity: int,
    occurred: datetime,
    status: str,
    original_external_id: str | None,
    details_map: Mapping[str, Any],
    keyring: KeyRing,
) -> ActivityRow:
    details = _canonical(details_map)
    person = storage_key(source_key, keyring) if source_key else None
    amount, count, when = str(amount_fen), str(quantity), occurred.isoformat()
    content_hash = keyring.content_digest(
        _SEP.join(
            (
                kind,
                business_line,
                _json_text(person),
                amount,
                count,
                when,
                status,
                _json_text(original_external_id),
                details,
            )
        )
    )
    copy = "\t".join(
        (
            copy_text(source),
            copy_text(external_id),
            kind,
            business_line,
            copy_text(person),
            amount,
            count,
            when,
            status,
            copy_text(original_external_id),
            copy_json(details),
            content_hash,
        )
    ).encode()
    # Positional: a NamedTuple built by keyword costs twice as much, once per imported row.
    return ActivityRow(
        source,
        external_id,
        kind,
        business_line,
        person,
        amount_fen,
        quantity,
        occurred,
        status,
        original_external_id,
        details,
        content_hash,
        copy,
    )
