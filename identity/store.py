"""Identity persistence: source records back into ``SourceRecord``s, lookup keys, the partition.

What lives where (migrations 0003 and 0005):

- ``source_record.member_id`` is the current partition; ``engine_root`` the engine's own cluster
  (an agent's decision can differ from it; ``member_pinned`` marks those records).
- ``source_block`` rows are keyed hashes, one per lookup key of a record: ``b:`` blocking keys and
  ``h:`` identifier hashes (counted against the block size and fan-out limits, so incremental
  resolution sees the same limits a batch run sees), ``s:`` identifier values and ``n:`` names
  for the agents' search. No plaintext is ever stored here.
- ``identity_link`` says why each record sits in its member, ``review_item`` what an agent should
  look at, ``identity_event`` (append-only) every change of a record's member.

Functions take the caller's session and never commit. Bulk writes go through the asyncpg
connection of that session (array parameters, one round trip per statement).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core import normalize
from hub.core.errors import DecryptionError, LimitExceeded, UnknownKeyError
from hub.core.pii import (
    KeyRing,
    aad_for,
    mask_address,
    mask_email,
    mask_id_number,
    mask_name,
    mask_phone,
)
from hub.core.records import Address, Gender, Identifier, IdentifierKind, SourceRecord
from identity.graph import ReviewReason
from identity.survivorship import GoldenRecord

MAX_CLOSURE = 200_000  # records one incremental step may load; a bigger component is a bug
CHUNK = 10_000


def _json_text(value: Mapping[str, Any]) -> str:
    """JSON text for a ``jsonb`` parameter (formatting is the server's): orjson, a tenth of
    ``json.dumps``'s time on the explains an import writes for every review item in scope."""
    return orjson.dumps(value, default=dict).decode()


# Review items for merge-grade links the engine refused: the clusters on either side belong to one
# component (re-resolving one side can change the other). Score-band and weak-evidence items are
# below merge grade and tie nothing together.
REFUSALS = tuple(
    r.value for r in ReviewReason if r not in (ReviewReason.SCORE_BAND, ReviewReason.WEAK_EVIDENCE)
)
_DRIVER = "identity.store.driver"


async def driver(session: AsyncSession) -> Any:
    """The asyncpg connection inside the session's (begun) transaction."""
    conn = await session.connection()
    cached = session.info.get(_DRIVER)
    if cached is not None and cached[0] is conn and cached[1].is_in_transaction():
        return cached[1]
    await conn.execute(text("SELECT 1"))  # the adapter begins its transaction lazily
    apg = (await conn.get_raw_connection()).driver_connection
    if apg is None or not apg.is_in_transaction():
        raise RuntimeError("identity writes must run inside the unit of work's transaction")
    session.info[_DRIVER] = (conn, apg)
    return apg


def _json(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return dict(value) if isinstance(value, dict) else {}


# -- source records ------------------------------------------------------------------------------


def pii_aad(source: str, stored_key: str) -> bytes:
    """The associated data of ``source_record.pii_enc`` (bound to the key as stored)."""
    return aad_for("source_record", "pii", f"{source}/{stored_key}")


def golden_aad(member_id: int) -> bytes:
    return aad_for("member", "golden", member_id)


@dataclass(slots=True)
class StoredRecord:
    id: int
    source: str
    source_key: str  # as stored: PII-bearing source keys are keyed hashes
    member_id: int | None
    engine_root: int | None
    pinned: bool
    record: SourceRecord | None  # None when it cannot be decrypted (see ``decode``)


_RECORDS = (
    "SELECT id, source, source_key, business_line, observed_at, pii_enc, gender, consents, "
    "attributes, member_id, engine_root, member_pinned FROM source_record "
)
_RECORDS_HASHED = _RECORDS.replace(" FROM ", ", content_hash FROM ")
_IDENTS = (
    "SELECT source_record_id, kind, scope, hash, verified, verified_at FROM source_identifier "
    "WHERE source_record_id = ANY($1::bigint[])"
)


def decode(
    row: Mapping[str, Any], flags: Mapping[str, tuple[bool, datetime | None]], keyring: KeyRing
) -> SourceRecord | None:
    """A stored row as the ``SourceRecord`` the engine reads, keyed by its stored source key."""
    pii: dict[str, Any] = {}
    if row["pii_enc"]:
        try:
            plain = keyring.decrypt(row["pii_enc"], aad=pii_aad(row["source"], row["source_key"]))
        except (DecryptionError, UnknownKeyError):
            return None
        pii = json.loads(plain)
    identifiers = []
    for item in pii.get("identifiers") or ():
        kind = IdentifierKind(item["kind"])
        verified, at = False, None
        for digest in keyring.hashes(kind.value, item["value"], item.get("scope")):
            if digest in flags:
                verified, at = flags[digest]
                break
        identifiers.append(Identifier(kind, item["value"], item.get("scope"), verified, at))
    address = None
    if pii.get("address"):
        address = Address(**pii["address"])
    birthday = pii.get("birthday")
    return SourceRecord(
        source=row["source"],
        source_key=row["source_key"],
        business_line=row["business_line"],
        observed_at=row["observed_at"],
        identifiers=tuple(identifiers),
        name=pii.get("name"),
        name_latin=pii.get("name_latin"),
        gender=Gender(row["gender"]) if row["gender"] else None,
        birthday=date.fromisoformat(birthday) if birthday else None,
        address=address,
        consents=_json(row["consents"]),
        attributes=_json(row["attributes"]),
    )


async def _decode_rows(
    session: AsyncSession, rows: Sequence[Any], keyring: KeyRing
) -> list[StoredRecord]:
    conn = await driver(session)
    flags: dict[int, dict[str, tuple[bool, datetime | None]]] = {}
    for r in await conn.fetch(_IDENTS, [row["id"] for row in rows]):
        flags.setdefault(r["source_record_id"], {})[r["hash"]] = (r["verified"], r["verified_at"])
    return [
        StoredRecord(
            row["id"],
            row["source"],
            row["source_key"],
            row["member_id"],
            row["engine_root"],
            row["member_pinned"],
            decode(row, flags.get(row["id"], {}), keyring),
        )
        for row in rows
    ]


# Decoded records kept by one import's resolution (``hub.flows.resolution.Engine``), by id:
# (content hash, observed_at, record). Each batch re-resolves every record sharing a key with it,
# and at 200,000 rows seven in ten records loaded were loaded before, unchanged; decrypting and
# decoding them again was a tenth of the import. The content hash covers everything ``decode``
# reads but the observation time and the (fixed) source and key, so a record with the same two
# is the same ``SourceRecord``. Bounded: emptied when full.
RecordCache = dict[int, tuple[str, datetime, SourceRecord]]
RECORD_CACHE_LIMIT = 50_000

_LIVE = "WHERE id = ANY($1::bigint[]) AND erased_at IS NULL"
_HEADS = (
    "SELECT id, source, source_key, content_hash, observed_at, member_id, engine_root, "
    "member_pinned FROM source_record " + _LIVE
)


async def load_records(
    *, session: AsyncSession, keyring: KeyRing, ids: Iterable[int], cache: RecordCache | None = None
) -> dict[int, StoredRecord]:
    """The live (not erased) records among ``ids``, decrypted. ``cache``: records decoded by
    earlier calls, reused while their stored content and observation time are unchanged (the
    membership columns are always read fresh)."""
    conn = await driver(session)
    wanted = sorted(set(ids))
    out: dict[int, StoredRecord] = {}
    for i in range(0, len(wanted), CHUNK):
        chunk = wanted[i : i + CHUNK]
        if cache is None:
            rows = await conn.fetch(_RECORDS + _LIVE, chunk)
            out.update((s.id, s) for s in await _decode_rows(session, rows, keyring))
            continue
        misses = []
        for h in await conn.fetch(_HEADS, chunk):
            hit = cache.get(h["id"])
            if hit is not None and hit[0] == h["content_hash"] and hit[1] == h["observed_at"]:
                out[h["id"]] = StoredRecord(
                    h["id"],
                    h["source"],
                    h["source_key"],
                    h["member_id"],
                    h["engine_root"],
                    h["member_pinned"],
                    hit[2],
                )
            else:
                misses.append(h["id"])
        if not misses:
            continue
        rows = await conn.fetch(_RECORDS_HASHED + _LIVE, misses)
        for row, s in zip(rows, await _decode_rows(session, rows, keyring), strict=True):
            out[s.id] = s
            if s.record is not None:
                if len(cache) >= RECORD_CACHE_LIMIT:
                    cache.clear()
                cache[s.id] = (row["content_hash"], row["observed_at"], s.record)
    return out


async def record_page(
    *, session: AsyncSession, keyring: KeyRing, after_id: int, limit: int = CHUNK
) -> list[StoredRecord]:
    """Live records with ``id > after_id`` in id order: how a batch run streams the table."""
    conn = await driver(session)
    rows = await conn.fetch(
        _RECORDS + "WHERE id > $1 AND erased_at IS NULL ORDER BY id LIMIT $2", after_id, limit
    )
    return await _decode_rows(session, rows, keyring)


# -- lookup keys ---------------------------------------------------------------------------------


def block_key(keyring: KeyRing, raw: str) -> str:
    return "b:" + keyring.hash("block", raw)


def holder_key(digest: str) -> str:
    return "h:" + digest


def search_values(raw: str) -> set[str]:
    """The normalised forms an agent's query could take (phone, document, email, as typed)."""
    value = raw.strip()
    forms = {value, value.lower(), value.upper()}
    for parse in (
        normalize.phone_e164,
        normalize.email,
        lambda v: normalize.document_number("ID_CARD", v),
    ):
        with contextlib.suppress(ValueError):
            forms.add(parse(value))
    return {f for f in forms if f}


def search_keys(keyring: KeyRing, value: str) -> list[str]:
    return ["s:" + h for h in keyring.hashes("search", value)]


def name_keys(keyring: KeyRing, name: str) -> list[str]:
    compact = normalize.name(name).replace(" ", "").upper()
    return ["n:" + h for h in keyring.hashes("name_search", compact)] if compact else []


def lookup_keys(keyring: KeyRing, record: SourceRecord) -> set[str]:
    """The search keys of a record: each identifier value (any kind) and each written name."""
    keys: set[str] = set()
    for ident in record.identifiers:
        keys.add("s:" + keyring.hash("search", ident.value))
    for name in (record.name, record.name_latin):
        if name and "*" not in name:
            keys.update(name_keys(keyring, name)[:1])
    return keys


async def replace_keys(
    *, session: AsyncSession, keys: Mapping[int, AbstractSet[str]]
) -> dict[int, set[str]]:
    """Store each record's keys (replacing what it had); returns the keys it had before.

    Only the difference is written: a re-observed record mostly keeps its keys, and a new one
    has none yet. Callers hold the identity lock (``lock_identity``), the only writer of
    ``source_block``, so what the read finds is what the table holds and plain inserts
    cannot collide."""
    conn = await driver(session)
    ids = sorted(keys)
    old: dict[int, set[str]] = {i: set() for i in ids}
    for r in await conn.fetch(
        "SELECT source_record_id, key_hash FROM source_block "
        "WHERE source_record_id = ANY($1::bigint[])",
        ids,
    ):
        old[r["source_record_id"]].add(r["key_hash"])
    gone = [(k, i) for i in ids for k in old[i] - keys[i]]
    added = [(k, i) for i in ids for k in keys[i] - old[i]]
    for sql, pairs in (
        (
            "DELETE FROM source_block b USING unnest($1::text[], $2::bigint[]) AS g(k, r) "
            "WHERE b.key_hash = g.k AND b.source_record_id = g.r",
            gone,
        ),
        (
            "INSERT INTO source_block (key_hash, source_record_id) "
            "SELECT * FROM unnest($1::text[], $2::bigint[])",
            added,
        ),
    ):
        for i in range(0, len(pairs), CHUNK * 5):
            part = pairs[i : i + CHUNK * 5]
            await conn.execute(sql, [p[0] for p in part], [p[1] for p in part])
    return old


async def drop_keys(*, session: AsyncSession, ids: Iterable[int]) -> dict[int, set[str]]:
    return await replace_keys(session=session, keys={i: set() for i in ids})


async def key_counts(*, session: AsyncSession, keys: Iterable[str]) -> dict[str, int]:
    conn = await driver(session)
    wanted = sorted(set(keys))
    out = dict.fromkeys(wanted, 0)
    for i in range(0, len(wanted), CHUNK):
        for r in await conn.fetch(
            "SELECT key_hash, count(*) AS n FROM source_block WHERE key_hash = ANY($1::text[]) "
            "GROUP BY key_hash",
            wanted[i : i + CHUNK],
        ):
            out[r["key_hash"]] = r["n"]
    return out


async def key_holders(*, session: AsyncSession, keys: Iterable[str]) -> set[int]:
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT DISTINCT source_record_id FROM source_block WHERE key_hash = ANY($1::text[])",
        sorted(set(keys)),
    )
    return {r["source_record_id"] for r in rows}


async def closure(*, session: AsyncSession, ids: Iterable[int]) -> set[int]:
    """``ids`` grown to whole members, whole engine clusters and clusters a refused merge ties
    to them: the records whose partition a change among ``ids`` can affect."""
    conn = await driver(session)
    seen = set(ids)
    frontier = sorted(seen)
    while frontier:
        grown = await conn.fetch(
            "WITH f AS (SELECT member_id, engine_root FROM source_record "
            "           WHERE id = ANY($1::bigint[])) "
            "SELECT id FROM source_record WHERE erased_at IS NULL AND "
            "(member_id IN (SELECT member_id FROM f) OR engine_root IN (SELECT engine_root FROM f)) "
            "UNION SELECT record_b FROM review_item "
            "WHERE record_a = ANY($1::bigint[]) AND reason = ANY($2::text[]) "
            "UNION SELECT record_a FROM review_item "
            "WHERE record_b = ANY($1::bigint[]) AND reason = ANY($2::text[])",
            frontier,
            list(REFUSALS),
        )
        frontier = sorted({r["id"] for r in grown} - seen)
        seen.update(frontier)
        if len(seen) > MAX_CLOSURE:
            raise LimitExceeded(f"an identity component exceeded {MAX_CLOSURE} records")
    return seen


# -- the partition -------------------------------------------------------------------------------


async def allocate_member_ids(*, session: AsyncSession, count: int) -> list[int]:
    if count <= 0:
        return []
    conn = await driver(session)
    rows = await conn.fetch(
        "INSERT INTO member (status) SELECT 'active' FROM generate_series(1, $1) RETURNING id",
        count,
    )
    return sorted(r["id"] for r in rows)


async def set_assignment(
    *, session: AsyncSession, rows: Sequence[tuple[int, int, int | None, bool]]
) -> None:
    """(record id, member id, engine root, pinned) for each record whose placement changed."""
    conn = await driver(session)
    for i in range(0, len(rows), CHUNK):
        part = rows[i : i + CHUNK]
        await conn.execute(
            "UPDATE source_record s SET member_id = u.m, engine_root = u.r, member_pinned = u.p "
            "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::boolean[]) AS u(id, m, r, p) "
            "WHERE s.id = u.id",
            *map(list, zip(*part, strict=True)),
        )


@dataclass(frozen=True, slots=True)
class LinkRow:
    record: int
    member: int
    linked_to: int | None
    rule: str
    score: float | None
    explain: Mapping[str, Any]
    created_by: str


async def current_links(
    *, session: AsyncSession, ids: Iterable[int]
) -> dict[int, tuple[int, int | None, str]]:
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT source_record_id, member_id, linked_to, rule FROM identity_link "
        "WHERE source_record_id = ANY($1::bigint[])",
        sorted(set(ids)),
    )
    return {r["source_record_id"]: (r["member_id"], r["linked_to"], r["rule"]) for r in rows}


async def write_links(*, session: AsyncSession, links: Sequence[LinkRow]) -> None:
    conn = await driver(session)
    for i in range(0, len(links), CHUNK):
        part = links[i : i + CHUNK]
        await conn.execute(
            "INSERT INTO identity_link (source_record_id, member_id, linked_to, rule, score, "
            "explain, created_by) SELECT r, m, l, ru, s, e::jsonb, c FROM unnest($1::bigint[], "
            "$2::bigint[], $3::bigint[], $4::text[], $5::float8[], $6::text[], $7::text[]) "
            "AS u(r, m, l, ru, s, e, c) ON CONFLICT (source_record_id) DO UPDATE SET "
            "member_id = EXCLUDED.member_id, linked_to = EXCLUDED.linked_to, rule = EXCLUDED.rule, "
            "score = EXCLUDED.score, explain = EXCLUDED.explain, created_at = now(), "
            "created_by = EXCLUDED.created_by",
            [x.record for x in part],
            [x.member for x in part],
            [x.linked_to for x in part],
            [x.rule for x in part],
            [x.score for x in part],
            [_json_text(x.explain) for x in part],
            [x.created_by for x in part],
        )


async def relink_members(*, session: AsyncSession, ids: Iterable[int]) -> None:
    """Keep ``identity_link.member_id`` equal to the record's member after a partition change."""
    conn = await driver(session)
    await conn.execute(
        "UPDATE identity_link l SET member_id = s.member_id FROM source_record s "
        "WHERE s.id = l.source_record_id AND l.source_record_id = ANY($1::bigint[]) "
        "AND s.member_id IS NOT NULL AND l.member_id <> s.member_id",
        sorted(set(ids)),
    )


@dataclass(frozen=True, slots=True)
class ReviewRow:
    a: int
    b: int
    score: float
    reason: str
    rule: str
    detail: str
    explain: Mapping[str, Any]


async def replace_reviews(
    *, session: AsyncSession, scope: Iterable[int], items: Sequence[ReviewRow]
) -> None:
    """Open items between records of ``scope`` become ``items``; decided ones stay.

    Written as a difference: an open item that ``items`` holds unchanged is left as it is (its id
    and ``created_at`` too, so an agent's queue does not renumber under an import), a changed
    one is updated in place, one no longer proposed is deleted. Each batch of an import
    re-resolves every record sharing a key with it, so most items in its scope come back
    unchanged; deleted and written anew each time, they were a third of the server's work in an
    import with hooks. Callers hold the identity lock (``lock_identity``), so the open items
    read here are the ones the writes below meet."""
    conn = await driver(session)
    ids = sorted(set(scope))
    incoming = {(x.a, x.b) for x in items}
    within = set(ids)
    gone = [
        item
        for item, a, b in await conn.fetch(_OPEN_REVIEWS, ids)
        if b in within and (a, b) not in incoming
    ]
    if gone:
        await conn.execute(_DELETE_REVIEWS, gone)
    if not items:
        return
    await conn.execute(
        _WRITE_REVIEWS,
        [x.a for x in items],
        [x.b for x in items],
        [x.score for x in items],
        [x.reason for x in items],
        [x.rule for x in items],
        [x.detail for x in items],
        [_json_text(x.explain) for x in items],
    )


# The open items of each record of the scope, probed through the (record_a, record_b) key one
# record at a time; the other end is checked by the caller. ``OFFSET 0`` keeps the subquery from
# being flattened into a join and the status test out of it. Measured on a table of 171,069
# open items without statistics (the machine's server runs no autovacuum): filtering by two
# arrays read every open item per batch (80 ms); with the status inside, each probe was ANDed
# with the whole open-item index (30 s); the other end as ``= ANY`` of the array was fine until
# the generic plan, which searched the array linearly per row (57 s). This: ~0.1 s.
_OPEN_REVIEWS = """
SELECT r.id, r.record_a, r.record_b
FROM unnest($1::bigint[]) AS s (id)
CROSS JOIN LATERAL (
  SELECT id, record_a, record_b, status FROM review_item WHERE record_a = s.id OFFSET 0
) r
WHERE r.status = 'open'
"""
_DELETE_REVIEWS = "DELETE FROM review_item WHERE id = ANY ($1::bigint[]) AND status = 'open'"
# An open item equal in every column to the incoming one is not written at all: one probe of
# the key per item (a scalar subquery, never turned into a join that could scan the table),
# where ``ON CONFLICT … WHERE`` alone would still lock and so write the row.
_WRITE_REVIEWS = """
INSERT INTO review_item (record_a, record_b, score, reason, rule, detail, explain)
SELECT i.a, i.b, i.score, i.reason, i.rule, i.detail, i.explain
FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::text[], $5::text[], $6::text[],
            $7::text[]::jsonb[]) AS i (a, b, score, reason, rule, detail, explain)
WHERE (
  SELECT r.score = i.score AND r.reason = i.reason AND r.rule = i.rule AND r.detail = i.detail
         AND r.explain = i.explain
  FROM review_item r
  WHERE r.record_a = i.a AND r.record_b = i.b AND r.status = 'open'
) IS NOT TRUE
ON CONFLICT (record_a, record_b) DO UPDATE SET
  score = EXCLUDED.score, reason = EXCLUDED.reason, rule = EXCLUDED.rule,
  detail = EXCLUDED.detail, explain = EXCLUDED.explain
WHERE review_item.status = 'open'
"""


async def retire_members(*, session: AsyncSession, retired: Mapping[int, int]) -> None:
    """Absorbed member -> survivor: the absorbed row stays (ledger history points at it)."""
    if not retired:
        return
    conn = await driver(session)
    await conn.execute(
        "UPDATE member m SET status = 'merged', merged_into = u.s, golden_enc = NULL, "
        "golden_masked = '{}'::jsonb, updated_at = now(), version = m.version + 1 "
        "FROM unnest($1::bigint[], $2::bigint[]) AS u(a, s) WHERE m.id = u.a",
        list(retired),
        list(retired.values()),
    )


def golden_plain(golden: GoldenRecord, sources: Mapping[str, int]) -> dict[str, Any]:
    a = golden.address
    return {
        "name": golden.name,
        "name_latin": golden.name_latin,
        "gender": golden.gender.value if golden.gender else None,
        "birthday": golden.birthday.isoformat() if golden.birthday else None,
        "address": None
        if a is None
        else {"province": a.province, "city": a.city, "district": a.district, "detail": a.detail},
        "identifiers": dict(golden.identifiers),
        "sources": dict(sources),
    }


_ID_MASKS = {
    IdentifierKind.PHONE.value: mask_phone,
    IdentifierKind.EMAIL.value: mask_email,
    IdentifierKind.ID_DOCUMENT.value: mask_id_number,
}


def mask_value(kind: str, value: str) -> str:
    masker = _ID_MASKS.get(kind)
    if masker is not None:
        return masker(value)
    return value[:2] + "*" * max(len(value) - 4, 2) + value[-2:] if len(value) > 6 else "****"


def golden_masked(plain: Mapping[str, Any]) -> dict[str, Any]:
    """What an agent sees by default: coarse or masked values only."""
    a = plain.get("address") or {}
    birthday = plain.get("birthday")
    return {
        "name": mask_name(plain["name"]) if plain.get("name") else None,
        "name_latin": mask_name(plain["name_latin"]) if plain.get("name_latin") else None,
        "gender": plain.get("gender"),
        "birth_year": int(birthday[:4]) if birthday else None,
        "address": mask_address(a.get("province"), a.get("city"), a.get("detail")) or None,
        "identifiers": {k: mask_value(k, v) for k, v in (plain.get("identifiers") or {}).items()},
        "sources": plain.get("sources") or {},
    }


async def write_golden(
    *, session: AsyncSession, keyring: KeyRing, golden: Mapping[int, dict[str, Any]]
) -> None:
    """Member id -> plain golden record: stored encrypted, plus its masked view."""
    if not golden:
        return
    conn = await driver(session)
    ids = sorted(golden)
    await conn.execute(
        "UPDATE member m SET golden_enc = u.e, golden_masked = u.g::jsonb, status = 'active', "
        "merged_into = NULL, updated_at = now(), version = m.version + 1 "
        "FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, e, g) WHERE m.id = u.id",
        ids,
        [
            keyring.encrypt(json.dumps(golden[m], ensure_ascii=False), aad=golden_aad(m))
            for m in ids
        ],
        [json.dumps(golden_masked(golden[m]), ensure_ascii=False) for m in ids],
    )


@dataclass(frozen=True, slots=True)
class EventRow:
    kind: str  # attach | merge | move | unmerge | erase
    record: int | None
    from_member: int | None
    to_member: int | None
    rule: str | None
    reason: str | None
    actor: str
    details: Mapping[str, Any]


async def next_operation(*, session: AsyncSession) -> int:
    conn = await driver(session)
    return int(await conn.fetchval("SELECT nextval('identity_operation_seq')"))


async def write_events(
    *, session: AsyncSession, operation: int, events: Sequence[EventRow]
) -> int | None:
    """Append the events of one operation (in order); returns the first event id."""
    if not events:
        return None
    conn = await driver(session)
    first: int | None = None
    for i in range(0, len(events), CHUNK):
        part = events[i : i + CHUNK]
        rows = await conn.fetch(
            "INSERT INTO identity_event (kind, source_record_id, from_member, to_member, rule, "
            "reason, actor, batch, details) SELECT k, r, f, t, ru, re, a, $9, d::jsonb "
            "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], "
            "$6::text[], $7::text[], $8::text[]) WITH ORDINALITY AS u(k, r, f, t, ru, re, a, d, n) "
            "ORDER BY n RETURNING id",
            [e.kind for e in part],
            [e.record for e in part],
            [e.from_member for e in part],
            [e.to_member for e in part],
            [e.rule for e in part],
            [e.reason for e in part],
            [e.actor for e in part],
            [json.dumps(e.details) for e in part],
            operation,
        )
        if first is None and rows:
            first = min(r["id"] for r in rows)
    return first


async def lock_identity(*, session: AsyncSession) -> None:
    """One writer at a time changes the partition: a component read, resolved and written by
    one transaction must not change under it. Taken by every ingest batch and agent operation."""
    conn = await driver(session)
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hub.identity'))")


# -- agent search --------------------------------------------------------------------------------

MAX_QUERY = 128


async def search_members(
    *, session: AsyncSession, keyring: KeyRing, query: str, limit: int
) -> list[int]:
    """Members matching a phone, email, document, nick, card, unionid, name (by keyed hash of
    the normalised value) or an order / folio number (through the activity's person key)."""
    query = query.strip()
    if not query or len(query) > MAX_QUERY:
        return []
    keys = [k for v in sorted(search_values(query)) for k in search_keys(keyring, v)]
    keys += name_keys(keyring, query)
    rows = await session.execute(
        text(
            "SELECT member_id FROM ("
            "  SELECT sr.member_id, sr.id FROM source_block b "
            "  JOIN source_record sr ON sr.id = b.source_record_id "
            "  WHERE b.key_hash = ANY(:keys) AND sr.erased_at IS NULL "
            "  UNION ALL SELECT sr.member_id, sr.id FROM activity a "
            "  JOIN source_record sr ON sr.source = a.source AND sr.source_key = a.source_key "
            "  WHERE a.external_id = :q AND sr.erased_at IS NULL"
            ") hits WHERE member_id IS NOT NULL GROUP BY member_id ORDER BY min(id) LIMIT :n"
        ),
        {"keys": keys, "q": query, "n": limit},
    )
    return [int(r[0]) for r in rows]
