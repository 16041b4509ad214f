"""The ingest pipeline across several batches, where a worker process prepares them."""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import Database
from hub.core.errors import ImportFormatError
from hub.core.pii import KeyRing
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Identifier,
    IdentifierKind,
    Parsed,
    RowError,
    SourceRecord,
)
from hub.flows.ingest import IngestReport, LandedBatch, bulk_collector, ingest
from hub.flows.ingest.worker import _GC_THRESHOLDS, WorkerDiedError

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def person(key: str, name: str = "测试甲") -> SourceRecord:
    return SourceRecord(
        source="pos",
        source_key=key,
        business_line="store",
        observed_at=T0,
        name=name,
        identifiers=(Identifier(IdentifierKind.CARD_NO, key, scope="brand"),),
    )


def sale(ext: str, key: str = "88000000001") -> Activity:
    return Activity(
        source="pos",
        external_id=ext,
        kind=ActivityKind.PURCHASE,
        business_line="store",
        occurred_at=T0,
        status=ActivityStatus.CONFIRMED,
        source_key=key,
        amount_fen=100,
    )


async def _count(db: Database, table: str) -> int:
    async with db.read() as session:
        return int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


async def _ingest(db: Database, keyring: KeyRing, items: Iterator[tuple[str, Parsed]]) -> dict:
    report = IngestReport(connector="pos")
    await ingest(db=db, keyring=keyring, items=items, report=report, batch_size=2, parallel=True)
    return report.as_dict()


def _items() -> Iterator[tuple[str, Parsed]]:
    yield "a.csv", person("K1")
    yield "a.csv", sale("S1", "K1")
    yield "a.csv", person("K1")  # a repeat in the next batch
    yield "a.csv", RowError(file="a.csv", line=5, reason="not a date", code="BAD_DATE")
    yield "b.csv", sale("S2", "K1")
    yield "b.csv", person("K2")
    yield "b.csv", sale("S1", "K1")  # the same sale again, from another file


async def test_batches_prepared_by_the_worker_count_like_one_batch(
    db: Database, keyring: KeyRing
) -> None:
    first = await _ingest(db, keyring, _items())
    assert (first["read"], first["new"], first["unchanged"], first["rejected"]) == (7, 4, 2, 1)
    assert first["files"]["b.csv"]["new"] == 2  # type: ignore[index]
    again = await _ingest(db, keyring, _items())
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, 6)
    assert await _count(db, "source_record") == 2
    assert await _count(db, "activity") == 2
    assert multiprocessing.active_children() == []


async def test_an_unexpected_error_in_the_worker_is_raised_as_itself(
    db: Database, keyring: KeyRing
) -> None:
    def items() -> Iterator[tuple[str, Parsed]]:
        yield "a.csv", sale("S1")
        yield "a.csv", sale("S2")
        yield "a.csv", sale("S3")
        raise LookupError("the source went away")

    with pytest.raises(LookupError, match="went away"):
        await _ingest(db, keyring, items())
    assert await _count(db, "activity") == 2  # the first batch had landed
    assert multiprocessing.active_children() == []


async def test_what_the_iterator_notes_on_the_report_comes_back_from_the_worker(
    db: Database, keyring: KeyRing
) -> None:
    report = IngestReport(connector="pos")

    def items() -> Iterator[tuple[str, Parsed]]:
        for name in ("a.csv", "b.csv", "c.csv"):
            report.chosen[name] = "pos"
            if name == "b.csv":
                report.refuse(name, "b.csv does not look like a pos file")
                continue
            yield name, sale(f"{name}:1")
            yield name, sale(f"{name}:2")
        raise ImportFormatError("d.csv is not a file at all")

    await ingest(db=db, keyring=keyring, items=items(), report=report, batch_size=2, parallel=True)
    assert report.chosen == {"a.csv": "pos", "b.csv": "pos", "c.csv": "pos"}
    assert report.refused_files == {"b.csv": "b.csv does not look like a pos file"}
    assert report.failed == "d.csv is not a file at all"
    assert report.total("new") == 4


async def test_a_failing_hook_stops_the_worker(db: Database, keyring: KeyRing) -> None:
    class Failing:
        async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None:
            assert batch.activities  # with hooks, the parsed items come along
            raise RuntimeError("hook failed")

    def items() -> Iterator[tuple[str, Parsed]]:
        for i in range(50):
            yield "a.csv", sale(f"S{i}")

    report = IngestReport(connector="pos")
    with pytest.raises(RuntimeError, match="hook failed"):
        await ingest(
            db=db,
            keyring=keyring,
            items=items(),
            report=report,
            hooks=Failing(),
            batch_size=2,
            parallel=True,
        )
    assert multiprocessing.active_children() == []
    assert _inbox_threads() == []
    assert await _count(db, "activity") == 0


def _inbox_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hub-import-inbox"]


async def test_a_worker_that_dies_is_reported_and_leaves_nothing_running(
    db: Database, keyring: KeyRing
) -> None:
    """Killed (here it exits mid-stream; the OOM killer would do the same), the worker's end
    reaches the importer as ``WorkerDiedError`` through the thread that reads its batches,
    and that thread ends with it; the batches before it stay committed."""
    importer = os.getpid()

    def items() -> Iterator[tuple[str, Parsed]]:
        for i in range(20):
            if i == 6 and os.getpid() != importer:  # in the worker: the first batch forks it
                os._exit(3)
            yield "a.csv", sale(f"D{i}")

    report = IngestReport(connector="pos")
    with pytest.raises(WorkerDiedError):
        await ingest(
            db=db, keyring=keyring, items=items(), report=report, batch_size=2, parallel=True
        )
    assert multiprocessing.active_children() == []
    assert _inbox_threads() == []
    assert await _count(db, "activity") == 6  # the three batches it sent before it died


async def test_without_parallel_no_process_is_started(db: Database, keyring: KeyRing) -> None:
    started: list[object] = []
    original = multiprocessing.get_context

    def spy(method: str | None = None) -> object:
        started.append(method)
        return original(method)

    import hub.flows.ingest.worker as worker

    worker.multiprocessing.get_context = spy  # type: ignore[assignment]
    try:
        report = IngestReport(connector="pos")
        await ingest(
            db=db,
            keyring=keyring,
            items=(("a.csv", sale(f"P{i}")) for i in range(9)),
            report=report,
            batch_size=2,
        )
    finally:
        worker.multiprocessing.get_context = original  # type: ignore[assignment]
    assert started == []
    assert report.total("new") == 9


def test_bulk_collector_is_set_back_even_when_the_import_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), bulk_collector():
        assert gc.get_threshold() == _GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what the process held before is never scanned
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
