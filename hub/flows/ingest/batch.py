"""One batch of parsed items → staged rows, and which item each row's outcome is credited to.

``prepare_batch`` is pure and CPU-bound (hashing, encryption, COPY text); the pipeline runs it in
a worker process, so what it returns is kept small: COPY bytes, keys and per-file tallies rather
than row objects.
"""

from __future__ import annotations

import dataclasses
import operator
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from hub.core.pii import KeyRing
from hub.core.records import (
    Activity,
    Item,
    Purchase,
    RowError,
    Seen,
    SourceRecord,
    reobserved,
)
from hub.flows.ingest.rows import (
    ActivityRow,
    HashMemo,
    PurchaseCells,
    RecordRow,
    activity_row,
    purchase_cells,
    purchase_row,
    record_row,
)
from hub.flows.ingest.store import StagedBatch, stage

# Everything a SourceRecord holds but its observation time: two records of one key that agree on
# these have the same row apart from ``observed_at`` (a buyer seen on each of their orders).
_RECORD_CONTENT = operator.attrgetter(
    *(f.name for f in dataclasses.fields(SourceRecord) if f.name != "observed_at")
)


@dataclass
class PreparedBatch:
    staged: StagedBatch
    # Items read per file. Per written row, the file of the first item that carried the content
    # written: that item gets the database's outcome; every other item changed nothing.
    read: Counter[str]
    record_files: list[str]
    activity_files: list[str]
    errors: list[RowError]
    parsed_records: dict[tuple[str, str], SourceRecord] = field(default_factory=dict)
    parsed_activities: dict[tuple[str, str], Activity] = field(default_factory=dict)
    # Which batch of its import this is (``Preparer.confirm`` is told about it by number).
    number: int = 0


# Rows built for records, by key, with the content they were built from and the record itself
# (a fast-lane buyer is the very object the connector read first: identity says same content).
Built = dict[tuple[str, str], tuple[tuple[object, ...], RecordRow, SourceRecord]]
BUILT_LIMIT = 20_000  # about 1.5 kB each; emptied when full, so memory stays bounded
SEEN_KEYS_LIMIT = 500_000  # record keys with a fast-lane buyer staged (~100 bytes each)
STAGED_KEYS_LIMIT = 600_000  # record keys staged by one import, for direct inserts (~120 bytes)
# A batch's records whose content the database did not take ("lost" to a newer row it held);
# None: too many to send back cheaply, take them all as lost.
Lost = frozenset[tuple[str, str]] | None
MAX_LOST = 1_000


class Preparer:
    """``prepare_batch`` for each batch of one import, with what the batches may share: the
    identifier digests and the record rows already built (a buyer on each of their orders).
    Made per import, it lives and dies with it.

    It also runs the fast lane's half of skipping buyers (``hub.core.records.Seen``): after a
    batch lands, the pipeline says which of its records the database did not take
    (``confirm``); a fast-lane buyer whose record was staged and taken, and whose key has had
    nothing else staged since, is marked ``skip``, and the connector stops reading that buyer
    into records. Without hooks only: hooks are handed every record read.

    ``defer_purchases``: fast-lane purchases' activity rows are left for the writer to render
    (``prepare_batch``). ``direct_records``: records of keys this import has not staged before
    are staged for the writer to insert whole (``StagedBatch.direct``), as long as the import
    has staged fewer than ``STAGED_KEYS_LIMIT`` keys."""

    def __init__(
        self,
        keyring: KeyRing,
        *,
        keep_parsed: bool = True,
        defer_purchases: bool = False,
        direct_records: bool = False,
    ) -> None:
        self.keyring = keyring
        self.keep_parsed = keep_parsed
        self.defer_purchases = defer_purchases
        # Every record key this import has staged; None when not kept (or past the limit).
        self.staged_keys: set[tuple[str, str]] | None = set() if direct_records else None
        self.memo: HashMemo = {}
        self.built: Built = {}
        self.number = 0
        # record key -> the fast-lane buyer whose record was staged last for it
        self.staged_by_key: dict[tuple[str, str], Seen] = {}
        # batch number -> (key, buyer) of the fast-lane records it staged, until confirmed
        self.pending: dict[int, list[tuple[tuple[str, str], Seen]]] = {}

    def __call__(self, chunk: list[tuple[str, Item]]) -> PreparedBatch:
        if len(self.built) > BUILT_LIMIT:
            self.built.clear()
        if self.staged_keys is not None and len(self.staged_keys) > STAGED_KEYS_LIMIT:
            self.staged_keys = None  # from here every record goes the staged way
        self.number += 1
        staged_seen: dict[tuple[str, str], Seen | None] = {}
        prepared = prepare_batch(
            chunk,
            self.keyring,
            keep_parsed=self.keep_parsed,
            memo=self.memo,
            built=self.built,
            staged_seen=staged_seen,
            defer_purchases=self.defer_purchases,
            staged_keys=self.staged_keys,
        )
        prepared.number = self.number
        if not self.keep_parsed:
            self._staged(self.number, staged_seen)
        return prepared

    def _staged(self, number: int, staged: dict[tuple[str, str], Seen | None]) -> None:
        """Records staged in batch ``number`` (with the fast-lane buyer behind each, if any):
        whatever buyer was staged for the key before is no longer what the database holds."""
        by_key = self.staged_by_key
        if len(by_key) > SEEN_KEYS_LIMIT:
            for held in by_key.values():
                held.skip = False
            by_key.clear()
        mine: list[tuple[tuple[str, str], Seen]] = []
        for key, seen in staged.items():
            before = by_key.get(key)
            if before is not None and before is not seen:
                before.skip = False
            if seen is None:
                by_key.pop(key, None)
                continue
            by_key[key] = seen
            seen.skip = False
            seen.staged_batch = number
            mine.append((key, seen))
        if mine:
            self.pending[number] = mine

    def confirm(self, number: int, lost: Lost) -> None:
        """Batch ``number`` is committed; ``lost``: its records the database did not take."""
        for key, seen in self.pending.pop(number, ()):
            if (
                seen.staged_batch == number
                and self.staged_by_key.get(key) is seen
                and lost is not None
                and key not in lost
            ):
                seen.skip = True


def prepare_batch(
    chunk: list[tuple[str, Item]],
    keyring: KeyRing,
    *,
    keep_parsed: bool = True,
    memo: HashMemo | None = None,
    built: Built | None = None,
    staged_seen: dict[tuple[str, str], Seen | None] | None = None,
    defer_purchases: bool = False,
    staged_keys: set[tuple[str, str]] | None = None,
) -> PreparedBatch:
    """Rows for a chunk, at most one per key: the latest observation of a record, the last
    occurrence of an activity. ``keep_parsed`` keeps the parsed items for the hooks.

    A fast-lane ``Purchase`` is its two records (buyer, activity): it is read and counted as
    both, and gives the rows they would give, without building them unless ``keep_parsed``. A
    skipped buyer (``Seen.skip``) stands for the record the database holds: it takes part in
    "the latest observation wins" like any other, and when it wins nothing is staged for its
    key (what would have been staged is what the table holds, and would change nothing).
    ``staged_seen``: filled with each staged record's key and its fast-lane buyer (or None).

    ``defer_purchases`` (without ``keep_parsed``): a fast-lane purchase's activity row is staged
    as its ``PurchaseCells``, for ``store.rendered`` to turn into the same COPY text where the
    batch is written. Not in a chunk spanning two files, whose rows are credited by content
    digest. Records are then built with their PII left for the writer to seal
    (``RecordRow.unsealed``), in any chunk.

    ``staged_keys``: the record keys staged so far by this import, updated here (None: no
    record is inserted whole). A record whose key is not among them is most likely not in the
    table, and is staged as ``StagedBatch.direct`` for the writer to insert whole (falling back
    to the upsert when the table holds the key after all)."""
    # key -> the latest candidate: (observed_at, content_hash, row or None if skipped, buyer)
    records: dict[tuple[str, str], tuple[datetime, str, RecordRow | None, Seen | None]] = {}
    activities: dict[tuple[str, str], ActivityRow | PurchaseCells] = {}
    parsed_records: dict[tuple[str, str], SourceRecord] = {}
    parsed_activities: dict[tuple[str, str], Activity] = {}
    read: Counter[str] = Counter()
    credit: dict[tuple[str, tuple[str, str], str], str] = {}
    # A chunk of one file (any chunk but those spanning two files) credits every row to it:
    # nothing to look up per row.
    files = {filename for filename, _ in chunk}
    only_file = files.pop() if len(files) == 1 else None
    defer = defer_purchases and only_file is not None and not keep_parsed
    # With purchases left to the writer, the records' PII is sealed there too.
    seal_later = defer_purchases and not keep_parsed
    errors: list[RowError] = []
    # Hashing and encryption are most of the cost of a row; a record repeated (in the batch, or
    # in an earlier one given ``built``) with the same content reuses its row: the same
    # ciphertext for the same plaintext and row.
    if built is None:
        built = {}

    def candidate(
        key: tuple[str, str],
        observed_at: datetime,
        content_hash: str,
        row: RecordRow | None,
        seen: Seen | None,
        filename: str,
    ) -> None:
        # The latest observation wins (ties: the larger content hash), whatever the order
        # of files and rows, so re-imports and overlapping files never flip a record back.
        held = records.get(key)
        if held is None or (observed_at, content_hash) >= (held[0], held[1]):
            records[key] = (observed_at, content_hash, row, seen)
        if only_file is None:
            credit.setdefault(("r", key, content_hash), filename)

    def add_record(
        item: SourceRecord, observed_at: datetime, seen: Seen | None, filename: str
    ) -> None:
        # Without hooks a fast-lane buyer is read into a record about once: its later orders
        # are skipped once its batch has landed (``Seen.skip``), so its row is not remembered
        # (at 400,000 rows, 1,706 of 234,567 buyers read would have been found remembered).
        remember = seen is None or keep_parsed
        earlier = built.get((item.source, item.source_key)) if remember else None
        if earlier is not None and (earlier[2] is item or earlier[0] == _RECORD_CONTENT(item)):
            row = earlier[1]._replace(observed_at=observed_at)
        else:
            row = record_row(item, keyring, memo, seal=not seal_later)
            if row.observed_at != observed_at:
                row = row._replace(observed_at=observed_at)
            if remember:
                built[(item.source, item.source_key)] = (_RECORD_CONTENT(item), row, item)
        key = (row.source, row.source_key)
        if seen is not None:
            seen.row_key = key
            seen.content_hash = row.content_hash
        candidate(key, observed_at, row.content_hash, row, seen, filename)
        if keep_parsed:
            parsed_records[key] = (
                item if item.observed_at == observed_at else reobserved(item, observed_at)
            )

    def add_activity(arow: ActivityRow, filename: str) -> None:
        key = (arow.source, arow.external_id)
        activities[key] = arow
        if only_file is None:
            credit.setdefault(("a", key, arow.content_hash), filename)

    for filename, item in chunk:
        if type(item) is Purchase:  # the fast lane's item, most of a large export
            buyer, seen = item.buyer, item.seen
            if buyer is not None:
                add_record(buyer, item.observed_at, seen, filename)
            elif seen is not None:
                if seen.row_key is None or seen.content_hash is None or keep_parsed:
                    raise ValueError("a skipped buyer must have been staged by this import")
                candidate(seen.row_key, item.observed_at, seen.content_hash, None, seen, filename)
            # the purchase, and its buyer (read again, or skipped) when it has one
            read[filename] += 1 if buyer is None and seen is None else 2
            if defer:
                activities[(item.source, item.external_id)] = purchase_cells(item)
                continue
            arow = purchase_row(item, keyring)
            add_activity(arow, filename)
            if keep_parsed:
                parsed_activities[(arow.source, arow.external_id)] = item.activity()
            continue
        match item:
            case RowError():
                errors.append(item)
            case SourceRecord():
                read[filename] += 1
                add_record(item, item.observed_at, None, filename)
            case Activity():
                read[filename] += 1
                arow = activity_row(item, keyring)
                add_activity(arow, filename)
                parsed_activities[arow.key] = item
            case _:
                raise TypeError(f"not an ingest item: {type(item).__name__}")
    record_rows: list[RecordRow] = []
    record_files: list[str] = []
    direct: list[tuple[tuple[str, str], RecordRow, str]] = []
    for key, (_, content_hash, row, seen) in records.items():
        if row is not None:
            filename = only_file if only_file is not None else credit[("r", key, content_hash)]
            if staged_keys is not None and key not in staged_keys:
                direct.append((key, row, filename))
                staged_keys.add(key)
            else:
                record_rows.append(row)
                record_files.append(filename)
            if staged_seen is not None:
                staged_seen[key] = seen
    # In one order for every writer, like the activities (the upsert sorts by the same).
    direct.sort(key=operator.itemgetter(0))
    direct_rows = [row for _, row, _ in direct]
    record_files.extend(filename for _, _, filename in direct)
    # In one order for every writer (``store.ACTIVITY_ORDER``): two imports writing some of the
    # same keys then wait for each other in the same order, never in a cycle.
    activity_keys = sorted(activities)
    activity_rows = [activities[k] for k in activity_keys]
    return PreparedBatch(
        staged=stage(record_rows, activity_rows, activity_keys=activity_keys, direct=direct_rows),
        read=read,
        record_files=record_files,
        activity_files=(
            [only_file] * len(activity_rows)
            if only_file is not None
            else [
                # Nothing is deferred in a chunk spanning files: every row is an ActivityRow.
                credit[("a", k, cast(ActivityRow, a).content_hash)]
                for k, a in zip(activity_keys, activity_rows, strict=True)
            ]
        ),
        errors=errors,
        # Nothing reads them without hooks, and from a worker they would cost a pickling.
        parsed_records=parsed_records if keep_parsed else {},
        parsed_activities=parsed_activities if keep_parsed else {},
    )
