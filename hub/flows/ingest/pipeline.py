"""The ingest pipeline: parsed items → batches → database, with counts, errors and hooks.

``ingest(db=..., items=..., ...)`` takes any iterator of canonical items (what a connector
yields), cuts it into batches of at most ``batch_size``, turns each batch into rows (in a worker
process while the previous batch is being written, see ``worker``) and commits one transaction
per batch. After each batch lands, the ``IngestHooks`` seam is called inside the same
transaction: identity resolution and loyalty accrual plug in there, so a batch is all-or-nothing
across them.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.records import Activity, Item, SourceRecord
from hub.core.telemetry import tracer
from hub.flows.ingest.batch import MAX_LOST, Lost, PreparedBatch, Preparer
from hub.flows.ingest.report import FileCounts, IngestReport
from hub.flows.ingest.store import Written, lost_records, rendered, write_batch
from hub.flows.ingest.worker import prepared_batches

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


def _outcomes(
    keys: list[tuple[str, str]],
    credited: list[str],
    new: dict[tuple[str, str], int],
    updated: dict[tuple[str, str], int],
) -> Counter[tuple[str, bool]]:
    """(file, is new) -> rows the database inserted or updated, of the rows staged as ``keys``,
    each credited to its file. Tallied per file: a batch is thousands of keys and mostly one
    file."""
    if not new and not updated:
        return Counter()
    return Counter(
        (filename, key in new)
        for key, filename in zip(keys, credited, strict=True)
        if key in new or key in updated
    )


def _count(report: IngestReport, prepared: PreparedBatch, written: Written) -> None:
    """Each item read gets one outcome: unchanged, unless it is the item credited with a row the
    database inserted or updated (a repeat, or an older observation that lost, changed nothing)."""
    files: dict[str, FileCounts] = {}
    for filename, n in prepared.read.items():
        counts = files[filename] = report.file(filename)
        counts.read += n
        counts.unchanged += n
    tallies = [
        _outcomes(
            prepared.staged.record_keys,
            prepared.record_files,
            written.new_records,
            written.updated_records,
        )
    ]
    if written.activities_copied:
        # All new, by COPY (``write_batch``'s ``direct``): no ids to look the keys up in.
        tallies.append(Counter((filename, True) for filename in prepared.activity_files))
    else:
        tallies.append(
            _outcomes(
                prepared.staged.activity_keys,
                prepared.activity_files,
                written.new_activities,
                written.updated_activities,
            )
        )
    for outcomes in tallies:
        for (filename, is_new), n in outcomes.items():
            files[filename].unchanged -= n
            if is_new:
                files[filename].new += n
            else:
                files[filename].updated += n
    for error in prepared.errors:
        report.reject(error)


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
    items: Iterable[tuple[str, Item]],
    report: IngestReport,
    hooks: IngestHooks | None = None,
    batch_size: int = DEFAULT_BATCH,
    parallel: bool = False,
    progress: Callable[[int, int], None] | None = None,
    async_commit: bool = False,
    optimistic: bool = False,
) -> IngestReport:
    """Land ``(filename, item)`` pairs batch by batch; ``progress(rows, errors)`` after each.

    ``optimistic``: activities are inserted as new without first looking for held keys, until a
    batch meets one (``store.write_batch``); for a file import, whose rows are mostly new.

    ``async_commit``: batches commit without waiting for their WAL to reach disk. Only for a
    caller that ends with a synchronous commit before it reports anything (``run_import``'s
    ``finish_run``): that commit flushes every batch before it. Never for a caller that
    acknowledges each call (GraphQL pushes).

    A ``HubError`` raised by the item iterator (e.g. a wrong-format file) stops the import with
    everything before it committed and is recorded in ``report.failed``.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    hooks = hooks or NoHooks()
    # Without hooks nothing needs the records read, so each landed batch is acknowledged (which
    # of its records the table did not take) and the fast lane may skip buyers it holds.
    acknowledge = isinstance(hooks, NoHooks)
    # The worker is then the import's bound, and this process mostly waits on the database:
    # fast-lane purchases' activity rows are rendered here instead (``PurchaseCells``). With
    # hooks this process is the bound, and the worker renders them.
    prepare = Preparer(
        keyring,
        keep_parsed=not acknowledge,
        defer_purchases=acknowledge and parallel,
        # A file's records are mostly new to the table too: those new to the import are
        # staged to be inserted whole, tried while no batch has met a held key.
        direct_records=optimistic,
    )
    # Batch n + 1 is parsed and prepared (in a worker process) while batch n is written.
    batches = prepared_batches(
        iter(items),
        prepare=prepare,
        batch_size=batch_size,
        report=report,
        parallel=parallel,
        confirm=prepare.confirm if acknowledge else None,
    )
    # Records new to this import are inserted whole until a batch meets one the table holds.
    optimistic_records = optimistic
    async with contextlib.aclosing(batches):
        ack: tuple[int, Lost] | None = None
        while True:
            try:
                prepared = await batches.asend(ack)
            except StopAsyncIteration:
                break
            prepared.staged = rendered(prepared.staged, keyring)
            lost, written = await _land(
                db=db,
                hooks=hooks,
                report=report,
                prepared=prepared,
                async_commit=async_commit,
                acknowledge=acknowledge,
                optimistic=optimistic,
                direct_records=optimistic_records,
            )
            optimistic_records = optimistic_records and not written.held_record_met
            # A file meeting held keys (a re-import, overlapping files) is likely to go on
            # meeting them: its later batches look first.
            optimistic = optimistic and not written.held_activity_met
            ack = (prepared.number, lost) if acknowledge else None
            if progress is not None:
                progress(report.total("read"), report.total("rejected"))
    return report


async def _land(
    *,
    db: Database,
    hooks: IngestHooks,
    report: IngestReport,
    prepared: PreparedBatch,
    async_commit: bool,
    acknowledge: bool = False,
    optimistic: bool = False,
    direct_records: bool = False,
) -> tuple[Lost, Written]:
    """Write one batch in its transaction; with ``acknowledge``, say which of its records the
    table did not take (see ``Preparer.confirm``)."""
    lost: Lost = frozenset()
    with tracer.start_as_current_span("ingest.batch") as span:
        span.set_attribute("hub.batch.records", len(prepared.staged.record_keys))
        span.set_attribute("hub.batch.activities", len(prepared.staged.activity_keys))
        async with db.unit_of_work() as session:
            written = await write_batch(
                session=session,
                staged=prepared.staged,
                import_run_id=report.import_run_id,
                async_commit=async_commit,
                optimistic=optimistic,
                # Nothing reads the new activities' ids without hooks.
                direct=acknowledge,
                direct_records=direct_records,
            )
            await hooks.batch_landed(
                session=session,
                batch=LandedBatch(written, prepared.parsed_records, prepared.parsed_activities),
            )
            if acknowledge:
                lost = await lost_records(session, prepared.staged, written, MAX_LOST)
    _count(report, prepared, written)
    return lost, written
