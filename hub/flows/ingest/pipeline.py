"""The ingest pipeline: parsed items → batches → database, with counts, errors and hooks.

``ingest(db=..., items=..., ...)`` takes any iterator of canonical items (what a connector
yields), cuts it into batches of at most ``batch_size``, turns each batch into rows in a worker
thread while the previous batch is being written, and commits one transaction per batch. After
each batch lands, the ``IngestHooks`` seam is called inside the same transaction: identity
resolution and loyalty accrual plug in there, so a batch is all-or-nothing across them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import Database
from hub.core.errors import HubError
from hub.core.pii import KeyRing
from hub.core.records import Activity, Parsed, RowError, SourceRecord
from hub.core.telemetry import tracer
from hub.flows.ingest.report import IngestReport
from hub.flows.ingest.rows import ActivityRow, RecordRow, activity_row, record_row
from hub.flows.ingest.store import Written, write_batch

DEFAULT_BATCH = 5_000
MAX_BATCH = 50_000


@dataclass
class LandedBatch:
    """What one batch changed, handed to the hooks (with the parsed records, in memory)."""

    written: Written
    records: dict[tuple[str, str], SourceRecord] = field(default_factory=dict)
    activities: dict[tuple[str, str], Activity] = field(default_factory=dict)


class IngestHooks(Protocol):
    async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None: ...


class NoHooks:
    """The seam before identity and loyalty plug in: called, does nothing."""

    async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None:
        return None


@dataclass
class _Prepared:
    records: list[RecordRow]
    activities: list[ActivityRow]
    parsed_records: dict[tuple[str, str], SourceRecord]
    parsed_activities: dict[tuple[str, str], Activity]
    # per item in file order: (file, key side, key, content hash), for counting outcomes
    items: list[tuple[str, str, tuple[str, str], str]]
    errors: list[RowError]


def _prepare(chunk: list[tuple[str, Parsed]], keyring: KeyRing) -> _Prepared:
    records: dict[tuple[str, str], RecordRow] = {}
    activities: dict[tuple[str, str], ActivityRow] = {}
    parsed_records: dict[tuple[str, str], SourceRecord] = {}
    parsed_activities: dict[tuple[str, str], Activity] = {}
    items: list[tuple[str, str, tuple[str, str], str]] = []
    errors: list[RowError] = []
    for filename, item in chunk:
        if isinstance(item, RowError):
            errors.append(item)
        elif isinstance(item, SourceRecord):
            row = record_row(item, keyring)
            # The latest observation wins (ties: the larger content hash), whatever the order
            # of files and rows, so re-imports and overlapping files never flip a record back.
            held = records.get(row.key)
            if held is None or (row.observed_at, row.content_hash) >= (
                held.observed_at,
                held.content_hash,
            ):
                records[row.key] = row
            parsed_records[row.key] = item
            items.append((filename, "r", row.key, row.content_hash))
        elif isinstance(item, Activity):
            arow = activity_row(item, keyring)
            activities[arow.key] = arow
            parsed_activities[arow.key] = item
            items.append((filename, "a", arow.key, arow.content_hash))
    return _Prepared(
        list(records.values()),
        list(activities.values()),
        parsed_records,
        parsed_activities,
        items,
        errors,
    )


def _count(report: IngestReport, prepared: _Prepared, written: Written) -> None:
    """Each item read gets one outcome. Per key, the database outcome belongs to the first
    item carrying the content that was written; every other item for that key changed nothing
    (a repeat, or an older observation that lost) and counts as unchanged."""
    winners = {("r", r.key): r.content_hash for r in prepared.records}
    winners.update({("a", a.key): a.content_hash for a in prepared.activities})
    settled: set[tuple[str, tuple[str, str]]] = set()
    for filename, side, key, content in prepared.items:
        counts = report.file(filename)
        counts.read += 1
        ident = (side, key)
        if ident in settled or winners.get(ident) != content:
            counts.unchanged += 1
            continue
        settled.add(ident)
        new = written.new_records if side == "r" else written.new_activities
        updated = written.updated_records if side == "r" else written.updated_activities
        if key in new:
            counts.new += 1
        elif key in updated:
            counts.updated += 1
        else:
            counts.unchanged += 1
    for error in prepared.errors:
        report.reject(error)


def _chunks(items: Iterator[tuple[str, Parsed]], size: int) -> Iterator[list[tuple[str, Parsed]]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


async def start_run(*, db: Database, actor: str, connector: str) -> int:
    async with db.unit_of_work() as session:
        run_id = await session.scalar(
            text("INSERT INTO import_run (actor, connector) VALUES (:a, :c) RETURNING id"),
            {"a": actor, "c": connector},
        )
    assert run_id is not None
    return int(run_id)


async def finish_run(*, db: Database, report: IngestReport) -> None:
    summary = {
        k: v for k, v in report.as_dict().items() if k not in ("rejected_rows", "warning_rows")
    }
    async with db.unit_of_work() as session:
        await session.execute(
            text(
                "UPDATE import_run SET finished_at = now(), status = :s, report = CAST(:r AS jsonb) "
                "WHERE id = :id"
            ),
            {
                "s": "failed" if report.failed else "finished",
                "r": json.dumps(summary),
                "id": report.import_run_id,
            },
        )
        if report.errors and report.import_run_id is not None:
            await session.execute(
                text(
                    "INSERT INTO import_row_error (import_run_id, file, line, column_name, code, "
                    "reason, raw_masked) VALUES (:run, :f, :l, :c, :code, :reason, :raw)"
                ),
                [
                    {
                        "run": report.import_run_id,
                        "f": e.file,
                        "l": e.line,
                        "c": e.column,
                        "code": e.code,
                        "reason": e.reason,
                        "raw": e.raw,
                    }
                    for e in [*report.errors, *report.warnings][:10_000]
                ],
            )


async def ingest(
    *,
    db: Database,
    keyring: KeyRing,
    items: Iterable[tuple[str, Parsed]],
    report: IngestReport,
    hooks: IngestHooks | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Land ``(filename, item)`` pairs batch by batch; ``progress(rows, errors)`` after each.

    A ``HubError`` raised by the item iterator (e.g. a wrong-format file) stops the import with
    everything before it committed and is recorded in ``report.failed``.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    hooks = hooks or NoHooks()
    chunks = _chunks(iter(items), batch_size)

    def next_prepared() -> _Prepared | None:
        chunk = next(chunks, None)
        return None if chunk is None else _prepare(chunk, keyring)

    pending: asyncio.Future[_Prepared | None] = asyncio.ensure_future(
        asyncio.to_thread(next_prepared)
    )
    while True:
        try:
            prepared = await pending
        except HubError as exc:
            report.failed = exc.message
            break
        if prepared is None:
            break
        # Parse and prepare the next batch while this one is written.
        pending = asyncio.ensure_future(asyncio.to_thread(next_prepared))
        with tracer.start_as_current_span("ingest.batch") as span:
            span.set_attribute("hub.batch.records", len(prepared.records))
            span.set_attribute("hub.batch.activities", len(prepared.activities))
            async with db.unit_of_work() as session:
                written = await write_batch(
                    session=session,
                    records=prepared.records,
                    activities=prepared.activities,
                    import_run_id=report.import_run_id,
                )
                await hooks.batch_landed(
                    session=session,
                    batch=LandedBatch(written, prepared.parsed_records, prepared.parsed_activities),
                )
        _count(report, prepared, written)
        if progress is not None:
            progress(report.total("read"), report.total("rejected"))
    return report
