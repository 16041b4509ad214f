"""Writing one batch: COPY into session-local staging tables, then set-based upserts.

``stage`` turns prepared rows into COPY text (pure, run where the rows are prepared);
``write_batch`` streams it into temporary tables and upserts from there.

A batch is one transaction. Upserts only touch rows whose content hash changed, so importing
the same data again writes nothing; an import killed between batches and run again ends in the
same state as one clean run. A row that changes leaves its previous state in its history
(``activity_event``, ``source_observation``), written by trigger (migration 0021); a new row
writes no history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from asyncpg.exceptions import DeadlockDetectedError, UniqueViolationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.pii import KeyRing
from hub.flows.ingest.rows import (
    ActivityRow,
    PurchaseCells,
    RecordRow,
    Unsealed,
    purchase_copy,
    sealed,
)

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_record (
  seq int, source text, source_key text, business_line text, observed_at timestamptz,
  content_hash text, pii_enc text, gender text, consents jsonb, attributes jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_identifier (
  source text, source_key text, kind text, scope text, hash text, verified boolean,
  verified_at timestamptz, masked text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_activity (
  source text, external_id text, kind text, business_line text, source_key text,
  amount_fen bigint, quantity integer, occurred_at timestamptz, status text,
  original_external_id text, details jsonb, content_hash text, import_run_id bigint
) ON COMMIT DELETE ROWS;
SET LOCAL jit = off;
"""
# jit: the record upsert's per-row lookup makes the planner's estimate for a large table cross
# ``jit_above_cost``, and compiling it took ~100 ms per 10,000-row batch (EXPLAIN ANALYZE,
# bench/import_vs_copy.py at 300,000 rows), more than the lookups themselves.

# With ``async_commit`` (file imports only) a batch's commit does not wait for its WAL to reach
# disk. An importer killed at any point still finds every batch it saw committed; a database
# server that crashes may lose the last moments of commits, which a re-run writes again (imports
# are idempotent). The import's closing synchronous commit (``finish_run``) flushes them all
# before any report is shown. The setting ends with the transaction.
_ASYNC_COMMIT = "SET LOCAL synchronous_commit = off;"

_UPSERT_RECORDS = """
WITH up AS (
  INSERT INTO source_record AS t
    (source, source_key, business_line, observed_at, content_hash, pii_enc, gender, consents,
     attributes, import_run_id)
  SELECT source, source_key, business_line, observed_at, content_hash, pii_enc, gender, consents,
         attributes, $1
  FROM stage_record s
  -- What the table already holds would be a no-op below, but only after locking the row: a
  -- buyer seen on each of their orders is skipped here instead. (A correlated lookup, one index
  -- probe per staged row: as an anti-join the planner would scan the whole table.)
  WHERE s.content_hash IS DISTINCT FROM (
    SELECT c.content_hash FROM source_record c
    WHERE c.source = s.source AND c.source_key = s.source_key
    LIMIT 1  -- the key is unique; the limit makes it a plain index scan, not a bitmap scan
  )
  -- In code point order, as the records inserted whole are (``batch.prepare_batch``): two
  -- imports writing some of the same keys wait for each other in one order, never in a cycle.
  ORDER BY source COLLATE "C", source_key COLLATE "C"
  ON CONFLICT (source, source_key) DO UPDATE SET
    business_line = EXCLUDED.business_line, observed_at = EXCLUDED.observed_at,
    content_hash = EXCLUDED.content_hash, pii_enc = EXCLUDED.pii_enc, gender = EXCLUDED.gender,
    consents = EXCLUDED.consents, attributes = EXCLUDED.attributes,
    import_run_id = EXCLUDED.import_run_id
  WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash
    AND (EXCLUDED.observed_at, EXCLUDED.content_hash) > (t.observed_at, t.content_hash)
  RETURNING t.id, t.source, t.source_key, (t.xmax = 0) AS inserted
), del AS (
  -- The updated records' ids as one array, looked up in the primary key: as a join with
  -- ``up`` the planner sorted and merged the whole table for a handful of updated records.
  DELETE FROM source_identifier si
  WHERE si.source_record_id = ANY (ARRAY(SELECT id FROM up WHERE NOT up.inserted))
), ident AS (
  -- A new record has no identifiers yet: its staged ones go in here, matched to the ids just
  -- returned (a hash join of the batch's rows; looking the ids up in source_record again was a
  -- scan of the whole table per batch). An updated record's are replaced after this statement.
  INSERT INTO source_identifier
    (source_record_id, kind, scope, hash, verified, verified_at, masked)
  SELECT DISTINCT ON (up.id, s.kind, s.scope, s.hash)
         up.id, s.kind, s.scope, s.hash, s.verified, s.verified_at, s.masked
  FROM up JOIN stage_identifier s ON s.source = up.source AND s.source_key = up.source_key
  WHERE up.inserted
  ORDER BY up.id, s.kind, s.scope, s.hash, s.verified DESC
)
-- An updated record's previous content goes into ``source_observation`` by trigger (0021).
SELECT id, source, source_key, inserted FROM up
"""

# Identifiers of updated records are replaced wholesale: the delete above runs in the same
# statement snapshot, so this second statement sees it. The records come as arrays of what the
# upsert returned (id, source, source_key), so nothing but the staged rows is scanned.
_INSERT_IDENTIFIERS = """
INSERT INTO source_identifier (source_record_id, kind, scope, hash, verified, verified_at, masked)
SELECT DISTINCT ON (u.id, s.kind, s.scope, s.hash)
       u.id, s.kind, s.scope, s.hash, s.verified, s.verified_at, s.masked
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u (id, source, source_key)
JOIN stage_identifier s ON s.source = u.source AND s.source_key = u.source_key
ORDER BY u.id, s.kind, s.scope, s.hash, s.verified DESC
"""

# A POS return that does not name its original till says "store:*:serial"; find the sale.
_RESOLVE_ORIGINALS = """
UPDATE stage_activity s SET original_external_id = found.external_id
FROM (
  -- The staged row is named by its place in the table (the statement changes nothing else).
  SELECT DISTINCT ON (w.ctid) w.ctid AS row, c.external_id
  FROM stage_activity w
  JOIN (SELECT source, external_id FROM activity
        UNION ALL SELECT source, external_id FROM stage_activity) c
    ON c.source = w.source
   AND c.external_id LIKE replace(w.original_external_id, ':*:', ':%:')
  WHERE w.original_external_id LIKE '%:*:%'
  ORDER BY w.ctid, c.external_id
) found
WHERE s.ctid = found.row
"""

# The order every writer inserts a batch's activities in: ``prepare_batch`` sorts them by it (in
# code point order, which is the byte order of "C" on UTF-8), the COPY straight into ``activity``
# keeps it, and the statements below sort by it. Two imports writing some of the same keys wait
# for each other's uncommitted rows in one order, so never in a cycle (a deadlock).
ACTIVITY_ORDER = 'source COLLATE "C", external_id COLLATE "C"'

# The activity columns a batch writes, in the order of ``stage_activity`` and of the COPY text.
_ACTIVITY_COLUMNS = (
    "source, external_id, kind, business_line, source_key, amount_fen, quantity, occurred_at, "
    "status, original_external_id, details, content_hash, import_run_id"
)

_UPSERT_ACTIVITIES = f"""
WITH up AS (
  INSERT INTO activity AS t ({_ACTIVITY_COLUMNS})
  SELECT {_ACTIVITY_COLUMNS}
  FROM stage_activity ORDER BY {ACTIVITY_ORDER}
  ON CONFLICT (source, external_id) DO UPDATE SET
    kind = EXCLUDED.kind, business_line = EXCLUDED.business_line,
    source_key = EXCLUDED.source_key, amount_fen = EXCLUDED.amount_fen,
    quantity = EXCLUDED.quantity, occurred_at = EXCLUDED.occurred_at, status = EXCLUDED.status,
    original_external_id = EXCLUDED.original_external_id, details = EXCLUDED.details,
    content_hash = EXCLUDED.content_hash, updated_at = now(),
    import_run_id = EXCLUDED.import_run_id
  WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash
  RETURNING t.id, t.source, t.external_id, (t.xmax = 0) AS inserted
)
-- An updated activity's previous state goes into ``activity_event`` by trigger (0021).
SELECT id, source, external_id, inserted FROM up
"""

# Activities the table does not hold yet, as plain inserts: ``ON CONFLICT`` inserts each row
# speculatively (a token, then a second WAL record to confirm it), ~10 % of an activity's
# insert. Run first, in a savepoint: a concurrent import inserting one of the same keys makes it
# fail with a unique violation, and the batch then goes through ``_UPSERT_ACTIVITIES`` alone.
# Rows the table already held (a re-import, overlapping files) are left to ``_UPSERT_ACTIVITIES``
# as before; it runs only when some staged row was not inserted here.
_INSERT_ACTIVITIES = f"""
WITH up AS (
  INSERT INTO activity AS t ({_ACTIVITY_COLUMNS})
  SELECT {_ACTIVITY_COLUMNS}
  FROM stage_activity s{{where}}
  ORDER BY {ACTIVITY_ORDER}
  RETURNING t.id, t.source, t.external_id
)
-- One row of arrays: decoded in the driver, thousands of rows would each be a Python object.
SELECT array_agg(id) AS ids, array_agg(source) AS sources, array_agg(external_id) AS external_ids
FROM up
"""
_INSERT_NEW_ACTIVITIES = _INSERT_ACTIVITIES.format(
    where="""
  -- A correlated probe per staged row (a scalar subquery is never turned into a join): as
  -- ``NOT EXISTS`` it is an anti-join, which the planner ran as a hash or merge join over the
  -- whole table until autovacuum had analysed and vacuumed it, so each batch read all of
  -- ``activity`` (at 1,000,000 rows, 62 ms per batch growing to 284 before the plan flipped).
  WHERE (
    SELECT true FROM activity c WHERE c.external_id = s.external_id AND c.source = s.source
    LIMIT 1
  ) IS NULL""",
)
# Every staged activity taken as new, without the probe (the unique index checks each key
# anyway): for a file import, whose batches mostly hold keys the table has never seen. A batch
# meeting a held key fails in its savepoint and goes through ``_INSERT_NEW_ACTIVITIES``; the
# import then stops trying (``write_batch``'s ``optimistic``). Measured at 1,000,000 rows,
# alternating: the server's CPU per row 19.8 / 24.7 µs against 21.5 / 27.6 with the probe.
_INSERT_ALL_ACTIVITIES = _INSERT_ACTIVITIES.format(where="")

# In the order of the COPY text (``RecordRow.copy`` follows ``seq`` and ``observed_at``).
RECORD_COLUMNS = (
    "seq",
    "observed_at",
    "source",
    "source_key",
    "business_line",
    "content_hash",
    "pii_enc",
    "gender",
    "consents",
    "attributes",
)
IDENTIFIER_COLUMNS = (
    "source",
    "source_key",
    "kind",
    "scope",
    "hash",
    "verified",
    "verified_at",
    "masked",
)
ACTIVITY_COLUMNS = (
    "source",
    "external_id",
    "kind",
    "business_line",
    "source_key",
    "amount_fen",
    "quantity",
    "occurred_at",
    "status",
    "original_external_id",
    "details",
    "content_hash",
    "import_run_id",  # not in the prepared text: ``write_batch`` adds it to each line
)


@dataclass(frozen=True)
class StagedBatch:
    """One de-duplicated batch as COPY text for the staging tables.

    Built where the rows are prepared (the worker process), so the importing process only
    streams bytes to the server and reads back the outcome by key.
    """

    records: bytes
    identifiers: bytes
    # ``ACTIVITY_COLUMNS`` but the last: the import run is added where the batch is written.
    activities: bytes
    record_keys: list[tuple[str, str]]
    activity_keys: list[tuple[str, str]]
    resolve_originals: bool  # a POS return names its sale only as "store:*:serial"
    record_hashes: list[str] = field(default_factory=list)  # content hash per record key
    # Records staged to be inserted whole (``write_batch``'s ``direct_records``), after the
    # ``records`` rows in ``record_keys`` and ``record_hashes``, one per record: its
    # ``stage_record`` line after ``seq``, its ``stage_identifier`` lines (one per distinct
    # identifier), and the length of the source and key columns that begin each of those lines.
    # The line is ``Unsealed`` until ``rendered`` when its PII is left to the writer.
    direct: list[tuple[bytes | Unsealed, bytes, int]] = field(default_factory=list)
    # With PII left to the writer to seal (``RecordRow.unsealed``): ``records``' lines, each
    # bytes or ``Unsealed``, and ``records`` empty until ``rendered`` fills it in.
    record_parts: list[bytes | Unsealed] | None = None
    # With purchases left to the writer (``batch.prepare_batch``'s ``defer_purchases``): each
    # activity's COPY line, or the purchase to render it from, in ``activity_keys`` order, and
    # ``activities`` empty until ``rendered`` fills it in.
    activity_parts: list[bytes | PurchaseCells] | None = None

    @property
    def unrendered(self) -> bool:
        """Whether some of it is left to the writer (``rendered``)."""
        return (
            self.activity_parts is not None
            or self.record_parts is not None
            or any(type(tail) is tuple for tail, _, _ in self.direct)
        )


def stage(
    records: Sequence[RecordRow],
    activities: Sequence[ActivityRow | PurchaseCells],
    *,
    activity_keys: list[tuple[str, str]],
    direct: Sequence[RecordRow] = (),
) -> StagedBatch:
    """COPY text for one batch (at most one row per key on each side); ``activity_keys``: the
    activities' keys, in their order. Purchases among ``activities`` are staged as
    ``activity_parts``, for ``rendered``; ``direct`` records as ``StagedBatch.direct``."""
    # A row is an ActivityRow; deferred cells are a plain tuple.
    parts: list[bytes | PurchaseCells] = [
        a.copy if isinstance(a, ActivityRow) else a for a in activities
    ]
    deferred = any(type(p) is tuple for p in parts)
    record_lines = [
        _line(b"%d\t%s\t" % (seq, r.observed_at.isoformat().encode()), r)
        for seq, r in enumerate(records)
    ]
    unsealed = any(type(line) is tuple for line in record_lines)
    ident_lines = [r.identifiers_copy for r in records if r.identifiers_copy]
    return StagedBatch(
        records=b"" if unsealed else _copy_text(cast(list[bytes], record_lines)),
        record_parts=record_lines if unsealed else None,
        identifiers=_copy_text(ident_lines),
        activities=b"" if deferred else _copy_text(cast(list[bytes], parts)),
        record_keys=[(r.source, r.source_key) for r in (*records, *direct)],
        activity_keys=activity_keys,
        record_hashes=[r.content_hash for r in records] + [r.content_hash for r in direct],
        direct=[_direct(r) for r in direct],
        resolve_originals=any(
            isinstance(a, ActivityRow)
            and a.original_external_id is not None
            and ":*:" in a.original_external_id
            for a in activities
        ),
        activity_parts=parts if deferred else None,
    )


def _line(before: bytes, row: RecordRow) -> bytes | Unsealed:
    """``before`` and the row's COPY text, or what makes them once its PII is sealed."""
    if row.unsealed is None:
        return before + row.copy
    at, plaintext, aad = row.unsealed
    return (before + row.copy[:at], plaintext, aad, row.copy[at:])


def rendered(staged: StagedBatch, keyring: KeyRing) -> StagedBatch:
    """``staged`` with what was left to the writer made: deferred purchases rendered and PII
    sealed, the COPY text ``stage`` would have made had the worker done it."""
    changes: dict[str, Any] = {}
    parts = staged.activity_parts
    if parts is not None:
        lines = [p if isinstance(p, bytes) else purchase_copy(p, keyring) for p in parts]
        changes.update(activities=_copy_text(lines), activity_parts=None)
    if staged.record_parts is not None:
        records = [p if isinstance(p, bytes) else sealed(p, keyring) for p in staged.record_parts]
        changes.update(records=_copy_text(records), record_parts=None)
    if any(type(tail) is tuple for tail, _, _ in staged.direct):
        changes["direct"] = [
            (tail if isinstance(tail, bytes) else sealed(tail, keyring), lines, prefix)
            for tail, lines, prefix in staged.direct
        ]
    return replace(staged, **changes) if changes else staged


def _direct(row: RecordRow) -> tuple[bytes | Unsealed, bytes, int]:
    """A record's ``StagedBatch.direct`` entry. Its identifiers once each, as the upsert takes
    them (``DISTINCT ON`` the key of ``source_identifier``, a verified one first)."""
    tail = _line(b"%s\t" % row.observed_at.isoformat().encode(), row)
    copy = row.copy
    # The source and key columns: the identifier lines begin with the same two.
    prefix = copy.index(b"\t", copy.index(b"\t") + 1) + 1
    if not row.identifiers_copy:
        return tail, b"", prefix
    idents = row.identifiers
    if len(idents) == 2:  # the usual case (a buyer's nick and masked phone), compared as is
        once = idents[0][:3] != idents[1][:3]
    else:
        once = len({i[:3] for i in idents}) == len(idents)
    if once:
        return tail, row.identifiers_copy, prefix
    lines = row.identifiers_copy.split(b"\n")
    kept: dict[tuple[str, str, str], int] = {}
    for i, (kind, scope, digest, verified, *_) in enumerate(row.identifiers):
        held = kept.get((kind, scope, digest))
        if held is None or (verified and not row.identifiers[held][3]):
            kept[(kind, scope, digest)] = i
    return tail, b"\n".join(lines[i] for i in sorted(kept.values())), prefix


def _copy_text(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n" if lines else b""


@dataclass
class Written:
    """What the database did with one batch: ids by outcome."""

    new_records: dict[tuple[str, str], int] = field(default_factory=dict)
    updated_records: dict[tuple[str, str], int] = field(default_factory=dict)
    new_activities: dict[tuple[str, str], int] = field(default_factory=dict)
    updated_activities: dict[tuple[str, str], int] = field(default_factory=dict)
    # Taking every staged activity as new met a key the table held (``optimistic``).
    held_activity_met: bool = False
    # Every staged activity went in as new by COPY, their ids not read back (``direct``):
    # ``new_activities`` is then empty.
    activities_copied: bool = False
    # Inserting the batch's ``StagedBatch.direct`` records whole met a key the table held (or
    # a concurrent import's): they went the staged way.
    held_record_met: bool = False


# Ids for records inserted whole, from the table's own sequence (migration 0022).
_RESERVE_RECORD_IDS = """
SELECT array_agg(nextval(q.seq))
FROM generate_series(1, $1), (SELECT pg_get_serial_sequence('source_record', 'id')::regclass AS seq) q
"""
DIRECT_RECORD_COLUMNS = ("id", *RECORD_COLUMNS[1:], "import_run_id")
DIRECT_IDENTIFIER_COLUMNS = ("source_record_id", *IDENTIFIER_COLUMNS[2:])


async def _insert_direct(
    apg: Any, staged: StagedBatch, import_run_id: int | None, written: Written
) -> bool:
    """``staged.direct`` inserted whole, in a savepoint: a COPY into ``source_record`` with ids
    taken from its sequence and one into ``source_identifier``. False when the table held one
    of the keys (or a concurrent import was writing one): nothing of them is then written.
    A new record writes no history, as through the upsert."""
    direct = staged.direct
    keys = staged.record_keys[len(staged.record_keys) - len(direct) :]
    try:
        async with apg.transaction():  # a savepoint
            ids = await apg.fetchval(_RESERVE_RECORD_IDS, len(direct))
            records: list[bytes] = []
            identifiers: list[bytes] = []
            for record_id, (tail, lines, prefix) in zip(ids, direct, strict=True):
                head = b"%d\t" % record_id
                records.append(head + cast(bytes, tail))  # rendered
                if lines:
                    identifiers.extend(head + line[prefix:] for line in lines.split(b"\n"))
            await _copy(
                apg,
                "source_record",
                _with_run(_copy_text(records), import_run_id),
                DIRECT_RECORD_COLUMNS,
            )
            if identifiers:
                await _copy(
                    apg, "source_identifier", _copy_text(identifiers), DIRECT_IDENTIFIER_COLUMNS
                )
    except (UniqueViolationError, DeadlockDetectedError):
        written.held_record_met = True
        return False
    written.new_records.update(zip(keys, ids, strict=True))
    return True


def _with_direct(staged: StagedBatch) -> tuple[bytes, bytes]:
    """The batch's staged record and identifier COPY text with its ``direct`` records added."""
    first = len(staged.record_keys) - len(staged.direct)
    records = staged.records + _copy_text(
        [
            b"%d\t%s" % (first + i, cast(bytes, tail))  # rendered
            for i, (tail, _, _) in enumerate(staged.direct)
        ]
    )
    identifiers = staged.identifiers + _copy_text([lines for _, lines, _ in staged.direct if lines])
    return records, identifiers


# Staged records the table does not hold as staged after the upsert: they lost to a newer row.
_LOST_RECORDS = """
SELECT u.source, u.source_key
FROM unnest($1::text[], $2::text[], $3::text[]) AS u (source, source_key, content_hash)
LEFT JOIN source_record r ON r.source = u.source AND r.source_key = u.source_key
WHERE r.content_hash IS DISTINCT FROM u.content_hash
"""


async def lost_records(
    session: AsyncSession, staged: StagedBatch, written: Written, limit: int
) -> frozenset[tuple[str, str]] | None:
    """The batch's staged records whose content the table does not hold (after ``write_batch``,
    in its transaction); None if more than ``limit``. Only records neither inserted nor updated
    are looked up: in a steady import that is the few repeated within a batch or two."""
    new, updated = written.new_records, written.updated_records
    unsure = [
        (key, digest)
        for key, digest in zip(staged.record_keys, staged.record_hashes, strict=True)
        if key not in new and key not in updated
    ]
    if not unsure:
        return frozenset()
    apg = await driver_connection(session)
    rows = await apg.fetch(
        _LOST_RECORDS,
        [k[0] for k, _ in unsure],
        [k[1] for k, _ in unsure],
        [d for _, d in unsure],
    )
    if len(rows) > limit:
        return None
    return frozenset((r["source"], r["source_key"]) for r in rows)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction (for COPY and prepared SQL)."""
    conn = await session.connection()
    # SQLAlchemy's asyncpg adapter opens the transaction lazily, on its first statement; one
    # statement through it first, or the driver would run in autocommit outside the unit of work.
    await conn.execute(text("SELECT 1"))
    raw = await conn.get_raw_connection()
    apg = raw.driver_connection
    if apg is None or not apg.is_in_transaction():
        raise RuntimeError("batch writes must run inside the unit of work's transaction")
    return apg


async def _copy(apg: Any, table: str, data: bytes, columns: Sequence[str]) -> None:
    # A memoryview: asyncpg would take plain bytes for a file name.
    await apg.copy_to_table(table, source=memoryview(data), columns=columns)


def _with_run(lines: bytes, import_run_id: int | None) -> bytes:
    """COPY text with the import run as each line's last column (one pass
    over the bytes: a line holds no raw newline, COPY text escapes it)."""
    run = b"\\N" if import_run_id is None else str(int(import_run_id)).encode()
    return lines.replace(b"\n", b"\t" + run + b"\n")


async def write_batch(
    *,
    session: AsyncSession,
    staged: StagedBatch,
    import_run_id: int | None,
    async_commit: bool = False,
    optimistic: bool = False,
    direct: bool = False,
    direct_records: bool = False,
) -> Written:
    """Upsert one staged batch inside the session's transaction.

    ``optimistic``: first insert every staged activity as new, without looking for held keys
    (``Written.held_activity_met`` says when that failed and the batch went the usual way).
    ``direct`` (with ``optimistic``, for a caller that needs no activity ids): that first
    insert is a COPY straight into ``activity``, not through the staging table; on success
    ``Written.activities_copied`` is set and the ids are not read back.

    ``direct_records``: the batch's ``StagedBatch.direct`` records are first inserted whole
    (``_insert_direct``); without it, or when that meets a held key, they are upserted with
    the rest (``Written.held_record_met`` says when)."""
    if staged.unrendered:
        raise ValueError("a batch with work left to the writer must be rendered first")
    apg = await driver_connection(session)
    await apg.execute(_STAGING + _ASYNC_COMMIT if async_commit else _STAGING)
    written = Written()
    records, identifiers = staged.records, staged.identifiers
    if staged.direct and not (
        direct_records and await _insert_direct(apg, staged, import_run_id, written)
    ):
        records, identifiers = _with_direct(staged)
    if records:
        await _copy(apg, "stage_record", records, RECORD_COLUMNS)
        if identifiers:
            await _copy(apg, "stage_identifier", identifiers, IDENTIFIER_COLUMNS)
        for row in await apg.fetch(_UPSERT_RECORDS, import_run_id):
            target = written.new_records if row["inserted"] else written.updated_records
            target[(row["source"], row["source_key"])] = row["id"]
        if written.updated_records and identifiers:
            updated = written.updated_records
            await apg.execute(
                _INSERT_IDENTIFIERS,
                list(updated.values()),
                [k[0] for k in updated],
                [k[1] for k in updated],
            )
    if not staged.activities:
        return written
    activities = _with_run(staged.activities, import_run_id)
    # A return naming its sale as "store:*:serial" is resolved in the staging table first.
    if optimistic and direct and not staged.resolve_originals:
        try:
            async with apg.transaction():  # a savepoint
                await _copy(apg, "activity", activities, ACTIVITY_COLUMNS)
            written.activities_copied = True
            return written
        except UniqueViolationError:
            # A held key: this batch goes the usual way, probing first.
            written.held_activity_met = True
            optimistic = False
    await _copy(apg, "stage_activity", activities, ACTIVITY_COLUMNS)
    if staged.resolve_originals:
        await apg.execute(_RESOLVE_ORIGINALS)
    new = written.new_activities
    inserts = (_INSERT_ALL_ACTIVITIES,) if optimistic else ()
    for insert in (*inserts, _INSERT_NEW_ACTIVITIES):
        try:
            async with apg.transaction():  # a savepoint
                got = await apg.fetchrow(insert)
                if got["ids"] is not None:
                    keys = zip(got["sources"], got["external_ids"], strict=True)
                    new.update(zip(keys, got["ids"], strict=True))
            break
        except UniqueViolationError:
            new.clear()
            if insert is _INSERT_ALL_ACTIVITIES:
                written.held_activity_met = True  # held keys: look for them this time
                continue
            break  # a concurrent import took some key first: upsert them all
    if len(new) < len(staged.activity_keys):
        for row in await apg.fetch(_UPSERT_ACTIVITIES):
            target = new if row["inserted"] else written.updated_activities
            target[(row["source"], row["external_id"])] = row["id"]
    return written
