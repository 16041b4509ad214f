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

from hub.core.pii import KeyRing
from hub.core.records import Activity, Item, Purchase, RowError, SourceRecord, reobserved
from hub.flows.ingest.rows import (
    ActivityRow,
    HashMemo,
    RecordRow,
    activity_row,
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


# Rows built for records, by key, with the content they were built from and the record itself
# (a fast-lane buyer is the very object the connector read first: identity says same content).
Built = dict[tuple[str, str], tuple[tuple[object, ...], RecordRow, SourceRecord]]
BUILT_LIMIT = 50_000  # about 1.5 kB each; emptied when full, so memory stays bounded


class Preparer:
    """``prepare_batch`` for each batch of one import, with what the batches may share: the
    identifier digests and the record rows already built (a buyer on each of their orders).
    Made per import, it lives and dies with it."""

    def __init__(self, keyring: KeyRing, *, keep_parsed: bool = True) -> None:
        self.keyring = keyring
        self.keep_parsed = keep_parsed
        self.memo: HashMemo = {}
        self.built: Built = {}

    def __call__(self, chunk: list[tuple[str, Item]]) -> PreparedBatch:
        if len(self.built) > BUILT_LIMIT:
            self.built.clear()
        return prepare_batch(
            chunk, self.keyring, keep_parsed=self.keep_parsed, memo=self.memo, built=self.built
        )


_KINDS = (Purchase, RowError, SourceRecord, Activity)


def prepare_batch(
    chunk: list[tuple[str, Item]],
    keyring: KeyRing,
    *,
    keep_parsed: bool = True,
    memo: HashMemo | None = None,
    built: Built | None = None,
) -> PreparedBatch:
    """Rows for a chunk, at most one per key: the latest observation of a record, the last
    occurrence of an activity. ``keep_parsed`` keeps the parsed items for the hooks.

    A fast-lane ``Purchase`` is its two records (buyer, activity): it is read and counted as
    both, and gives the rows they would give, without building them unless ``keep_parsed``."""
    records: dict[tuple[str, str], RecordRow] = {}
    activities: dict[tuple[str, str], ActivityRow] = {}
    parsed_records: dict[tuple[str, str], SourceRecord] = {}
    parsed_activities: dict[tuple[str, str], Activity] = {}
    read: Counter[str] = Counter()
    credit: dict[tuple[str, tuple[str, str], str], str] = {}
    errors: list[RowError] = []
    # Hashing and encryption are most of the cost of a row; a record repeated (in the batch, or
    # in an earlier one given ``built``) with the same content reuses its row: the same
    # ciphertext for the same plaintext and row.
    if built is None:
        built = {}

    def add_record(item: SourceRecord, observed_at: datetime, filename: str) -> None:
        earlier = built.get((item.source, item.source_key))
        if earlier is not None and (earlier[2] is item or earlier[0] == _RECORD_CONTENT(item)):
            row = earlier[1]._replace(observed_at=observed_at)
        else:
            row = record_row(item, keyring, memo)
            if row.observed_at != observed_at:
                row = row._replace(observed_at=observed_at)
            built[(item.source, item.source_key)] = (_RECORD_CONTENT(item), row, item)
        key = row.key
        # The latest observation wins (ties: the larger content hash), whatever the order
        # of files and rows, so re-imports and overlapping files never flip a record back.
        held = records.get(key)
        if held is None or (row.observed_at, row.content_hash) >= (
            held.observed_at,
            held.content_hash,
        ):
            records[key] = row
        credit.setdefault(("r", key, row.content_hash), filename)
        if keep_parsed:
            parsed_records[key] = (
                item if item.observed_at == observed_at else reobserved(item, observed_at)
            )

    def add_activity(arow: ActivityRow, filename: str) -> None:
        activities[arow.key] = arow
        credit.setdefault(("a", arow.key, arow.content_hash), filename)

    for filename, item in chunk:
        kind: type = type(item)
        if kind not in _KINDS:
            kind = next((k for k in _KINDS if isinstance(item, k)), kind)
        if kind is Purchase:
            purchase: Purchase = item  # type: ignore[assignment]
            buyer = purchase.buyer
            if buyer is not None:
                read[filename] += 1
                add_record(buyer, purchase.observed_at, filename)
            read[filename] += 1
            arow = purchase_row(purchase, keyring)
            add_activity(arow, filename)
            if keep_parsed:
                parsed_activities[arow.key] = purchase.activity()
        elif kind is RowError:
            errors.append(item)  # type: ignore[arg-type]
        elif kind is SourceRecord:
            read[filename] += 1
            record: SourceRecord = item  # type: ignore[assignment]
            add_record(record, record.observed_at, filename)
        elif kind is Activity:
            read[filename] += 1
            activity: Activity = item  # type: ignore[assignment]
            arow = activity_row(activity, keyring)
            add_activity(arow, filename)
            parsed_activities[arow.key] = activity
        else:
            raise TypeError(f"not an ingest item: {kind.__name__}")
    record_rows = list(records.values())
    activity_rows = list(activities.values())
    return PreparedBatch(
        staged=stage(record_rows, activity_rows),
        read=read,
        record_files=[credit[("r", r.key, r.content_hash)] for r in record_rows],
        activity_files=[credit[("a", a.key, a.content_hash)] for a in activity_rows],
        errors=errors,
        # Nothing reads them without hooks, and from a worker they would cost a pickling.
        parsed_records=parsed_records if keep_parsed else {},
        parsed_activities=parsed_activities if keep_parsed else {},
    )
