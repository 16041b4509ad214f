from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

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
from hub.flows.ingest import (
    IngestReport,
    LandedBatch,
    finish_run,
    ingest,
    pipeline,
    start_run,
    store,
)
from hub.flows.ingest.batch import prepare_batch
from hub.flows.ingest.rows import activity_row, pii_aad, record_row
from hub.flows.ingest.store import _direct, write_batch

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def person(key: str, phone: str = "+8613800000001", name: str = "测试甲") -> SourceRecord:
    return SourceRecord(
        source="pos",
        source_key=key,
        business_line="store",
        observed_at=T0,
        name=name,
        identifiers=(
            Identifier(IdentifierKind.CARD_NO, key, scope="brand"),
            Identifier(IdentifierKind.PHONE, phone, verified=True),
        ),
    )


def sale(
    ext: str,
    key: str | None = "88000000001",
    status: ActivityStatus = ActivityStatus.CONFIRMED,
    amount: int = 12900,
) -> Activity:
    return Activity(
        source="pos",
        external_id=ext,
        kind=ActivityKind.PURCHASE,
        business_line="store",
        occurred_at=T0,
        status=status,
        source_key=key,
        amount_fen=amount,
    )


def feed(items: list[Parsed], filename: str = "f.csv") -> Iterator[tuple[str, Parsed]]:
    return ((filename, item) for item in items)


async def _run(
    db: Database, keyring: KeyRing, items: list[Parsed], **kw: object
) -> dict[str, object]:
    report = IngestReport(connector="pos")
    report.import_run_id = await start_run(db=db, actor="test", connector="pos")
    await ingest(db=db, keyring=keyring, items=feed(items), report=report, **kw)  # type: ignore[arg-type]
    await finish_run(db=db, report=report)
    return report.as_dict()


async def _write_each(db: Database, batches: list[Any], run: int, **kw: Any) -> list[store.Written]:
    """Each prepared batch written in its own transaction, in order."""
    written = []
    for batch in batches:
        async with db.unit_of_work() as session:
            written.append(
                await write_batch(session=session, staged=batch.staged, import_run_id=run, **kw)
            )
    return written


async def _count(db: Database, table: str) -> int:
    async with db.read() as session:
        return int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


async def test_records_and_activities_land_once_and_a_rerun_changes_nothing(
    db: Database, keyring: KeyRing
) -> None:
    items: list[Parsed] = [
        person("88000000001"),
        sale("S001:02:000000101"),
        sale("S001:02:000000102"),
    ]
    first = await _run(db, keyring, items)
    assert (first["read"], first["new"], first["unchanged"], first["updated"]) == (3, 3, 0, 0)
    second = await _run(db, keyring, items)
    assert (second["read"], second["new"], second["unchanged"], second["updated"]) == (3, 0, 3, 0)
    assert await _count(db, "source_record") == 1
    assert await _count(db, "activity") == 2
    # History holds the states a row has left: nothing has changed yet.
    assert await _count(db, "activity_event") == 0
    assert await _count(db, "source_observation") == 0


async def test_a_status_change_is_a_new_event_on_the_same_activity(
    db: Database, keyring: KeyRing
) -> None:
    first = await _run(db, keyring, [sale("T1", status=ActivityStatus.PENDING)])
    report = await _run(db, keyring, [sale("T1", status=ActivityStatus.CONFIRMED)])
    assert report["updated"] == 1
    await _run(db, keyring, [sale("T1", status=ActivityStatus.CANCELLED)])
    async with db.read() as session:
        # The states the activity left, each with the run that wrote it, then the one it holds.
        left = (
            await session.execute(
                text(
                    "SELECT e.status, e.import_run_id FROM activity_event e "
                    "JOIN activity a ON a.id = e.activity_id "
                    "WHERE a.external_id = 'T1' ORDER BY e.id"
                )
            )
        ).all()
        current = (
            await session.execute(
                text("SELECT status, import_run_id FROM activity WHERE external_id = 'T1'")
            )
        ).one()
    runs = [first["import_run_id"], report["import_run_id"]]
    assert [tuple(r) for r in left] == [("pending", runs[0]), ("confirmed", runs[1])]
    assert current[0] == "cancelled"
    assert current[1] > runs[1]


async def test_overlapping_imports_only_add_what_is_new(db: Database, keyring: KeyRing) -> None:
    await _run(db, keyring, [sale("A"), sale("B")])
    report = await _run(db, keyring, [sale("B"), sale("C")])
    assert (report["new"], report["unchanged"]) == (1, 1)
    assert await _count(db, "activity") == 3


async def test_changed_person_keeps_observation_history_and_new_identifiers(
    db: Database, keyring: KeyRing
) -> None:
    from dataclasses import replace

    await _run(db, keyring, [person("88000000001", phone="+8613800000001")])
    # A later observation: at the same time, which content wins is the (arbitrary) hash order.
    changed = replace(
        person("88000000001", phone="+8613800000002"), observed_at=T0.replace(hour=11)
    )
    report = await _run(db, keyring, [changed])
    assert report["updated"] == 1
    async with db.read() as session:
        # The content the record left, observed at its time; the record holds the new one.
        left = (
            await session.execute(text("SELECT observed_at, content_hash FROM source_observation"))
        ).all()
        held = (
            await session.execute(text("SELECT observed_at, content_hash FROM source_record"))
        ).one()
    assert [r[0] for r in left] == [T0]
    assert held[0] == T0.replace(hour=11)
    assert left[0][1] != held[1]
    async with db.read() as session:
        hashes = set(
            (
                await session.execute(
                    text("SELECT hash FROM source_identifier WHERE kind = 'phone'")
                )
            ).scalars()
        )
    assert hashes == {keyring.hash("phone", "+8613800000002")}


async def test_raw_identifiers_are_stored_only_hashed_and_encrypted(
    db: Database, keyring: KeyRing
) -> None:
    await _run(db, keyring, [person("88000000001", phone="+8613812345678", name="测试乙")])
    async with db.read() as session:
        dump = str(
            (
                await session.execute(
                    text(
                        "SELECT r.*, i.* FROM source_record r JOIN source_identifier i ON i.source_record_id = r.id"
                    )
                )
            ).all()
        )
        enc = await session.scalar(text("SELECT pii_enc FROM source_record"))
        masked = set(
            (await session.execute(text("SELECT masked FROM source_identifier"))).scalars()
        )
    assert "13812345678" not in dump
    assert "测试乙" not in dump
    assert "138****5678" in masked
    assert "测试乙" in keyring.decrypt(enc, aad=pii_aad("pos", "88000000001"))


async def test_bad_rows_are_reported_and_the_rest_lands(db: Database, keyring: KeyRing) -> None:
    bad = RowError(file="f.csv", line=3, column="trd_time", reason="not a date", code="BAD_DATE")
    report = await _run(db, keyring, [sale("A"), bad, sale("B")])
    assert (report["read"], report["new"], report["rejected"]) == (3, 2, 1)
    assert report["rejected_by_reason"] == {"BAD_DATE": 1}
    assert report["rejected_rows"][0]["line"] == 3  # type: ignore[index]
    assert await _count(db, "import_row_error") == 1


async def test_a_wrong_format_stops_with_what_came_before_committed(
    db: Database, keyring: KeyRing
) -> None:
    def items() -> Iterator[tuple[str, Parsed]]:
        yield ("a.csv", sale("A"))
        raise ImportFormatError("b.csv does not look like a pos file")

    report = IngestReport(connector="pos")
    await ingest(db=db, keyring=keyring, items=items(), report=report, batch_size=1)
    assert report.failed == "b.csv does not look like a pos file"
    assert await _count(db, "activity") == 1


async def test_duplicates_inside_one_batch_are_counted_not_double_written(
    db: Database, keyring: KeyRing
) -> None:
    report = await _run(db, keyring, [person("K1"), person("K1"), person("K1", name="测试丙")])
    assert (report["new"], report["unchanged"], report["updated"]) == (1, 2, 0)
    assert await _count(db, "source_record") == 1


async def test_the_latest_observation_wins_whatever_the_order(
    db: Database, keyring: KeyRing
) -> None:
    from dataclasses import replace

    older = person("K1", phone="+8613800000001")
    newer = replace(person("K1", phone="+8613800000002"), observed_at=T0.replace(year=2027))
    await _run(db, keyring, [newer, older])  # file order reversed
    again = await _run(db, keyring, [older, newer])
    assert (again["new"], again["updated"]) == (0, 0)
    await _run(db, keyring, [older])  # an older file later changes nothing
    async with db.read() as session:
        hashes = set(
            (
                await session.execute(
                    text("SELECT hash FROM source_identifier WHERE kind = 'phone'")
                )
            ).scalars()
        )
    assert hashes == {keyring.hash("phone", "+8613800000002")}


async def test_the_seam_is_called_inside_each_batch_transaction(
    db: Database, keyring: KeyRing
) -> None:
    calls: list[tuple[int, int, bool]] = []

    class Spy:
        async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None:
            visible = await session.scalar(text("SELECT count(*) FROM activity"))
            calls.append(
                (len(batch.written.new_activities), int(visible or 0), session.in_transaction())
            )

    await _run(db, keyring, [sale("A"), sale("B"), sale("C")], hooks=Spy(), batch_size=2)
    assert calls == [(2, 2, True), (1, 3, True)]


@pytest.mark.parametrize("async_commit", [False, True])
async def test_batches_commit_durably_unless_the_caller_flushes_at_the_end(
    db: Database, keyring: KeyRing, async_commit: bool
) -> None:
    """GraphQL pushes acknowledge each call, so their batches wait for the WAL; a file import
    (``run_import``) may skip the wait because its closing ``finish_run`` commit flushes it."""
    seen: list[str] = []

    class Spy:
        async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None:
            seen.append(str(await session.scalar(text("SHOW synchronous_commit"))))

    await _run(db, keyring, [sale("A")], hooks=Spy(), async_commit=async_commit)
    assert seen == ["off" if async_commit else "on"]


async def test_a_failing_hook_rolls_its_batch_back(db: Database, keyring: KeyRing) -> None:
    class Broken:
        async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None:
            raise RuntimeError("identity down")

    with pytest.raises(RuntimeError):
        await _run(db, keyring, [sale("A")], hooks=Broken())
    assert await _count(db, "activity") == 0


async def test_a_phone_keyed_source_key_is_never_stored_in_clear(
    db: Database, keyring: KeyRing
) -> None:
    walk_in = SourceRecord(
        source="pos",
        source_key="mobile:+8613812345678",
        business_line="store",
        observed_at=T0,
        identifiers=(Identifier(IdentifierKind.PHONE, "+8613812345678"),),
    )
    await _run(db, keyring, [walk_in, sale("S9:01:7", key="mobile:+8613812345678")])
    async with db.read() as session:
        keys = set(
            (
                await session.execute(
                    text(
                        "SELECT source_key FROM source_record UNION ALL SELECT source_key FROM activity"
                    )
                )
            ).scalars()
        )
    assert len(keys) == 1
    (stored,) = keys
    assert "13812345678" not in stored
    assert stored.startswith("mobile#h1:")


@pytest.mark.parametrize("optimistic", [False, True])
async def test_a_return_without_its_till_finds_the_original_sale(
    db: Database, keyring: KeyRing, optimistic: bool
) -> None:
    """Also for a file import, whose batches otherwise go into ``activity`` by COPY: the
    return is resolved in the staging table first."""
    await _run(db, keyring, [sale("S001:02:000000101")], optimistic=optimistic)
    ret = Activity(
        source="pos",
        external_id="S001:03:000000205",
        kind=ActivityKind.REFUND,
        business_line="store",
        occurred_at=T0,
        status=ActivityStatus.CONFIRMED,
        source_key="88000000001",
        amount_fen=2900,
        original_external_id="S001:*:000000101",
    )
    await _run(db, keyring, [ret], optimistic=optimistic)
    async with db.read() as session:
        original = await session.scalar(
            text(
                "SELECT original_external_id FROM activity WHERE external_id = 'S001:03:000000205'"
            )
        )
    assert original == "S001:02:000000101"


async def test_activities_taken_as_new_fall_back_when_a_batch_meets_held_keys(
    db: Database, keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file import inserts activities without looking for held ones first (``optimistic``);
    a batch that meets one goes the usual way, with the same outcome as without, and the
    import's later batches look first."""
    tried: list[bool] = []
    copied: list[bool] = []

    async def recording(**kw: Any) -> Any:
        tried.append(kw["optimistic"])
        assert kw["direct"]  # no hooks: nothing needs the new activities' ids
        written = await write_batch(**kw)
        copied.append(written.activities_copied)
        return written

    monkeypatch.setattr(pipeline, "write_batch", recording)
    await _run(db, keyring, [sale("H1"), sale("H2", status=ActivityStatus.PENDING)])
    assert tried == [False]  # not asked for
    tried.clear()
    copied.clear()
    items = [sale("N1"), sale("N2"), sale("N3"), sale("H1"), sale("H2"), sale("N4")]
    report = await _run(db, keyring, items, batch_size=2, optimistic=True)
    assert (report["new"], report["unchanged"], report["updated"]) == (4, 1, 1)
    assert tried == [True, True, False]  # the second batch met H1
    assert copied == [True, False, False]
    tried.clear()
    again = await _run(db, keyring, items, batch_size=2, optimistic=True)
    assert (again["new"], again["unchanged"], again["updated"]) == (0, 6, 0)
    assert tried == [True, False, False]
    assert await _count(db, "activity") == 6
    assert await _count(db, "activity_event") == 1  # H2's pending state, left for confirmed
    async with db.read() as session:
        runs = (
            await session.execute(
                text(
                    "SELECT a.external_id, r.connector FROM activity a "
                    "JOIN import_run r ON r.id = a.import_run_id ORDER BY a.external_id"
                )
            )
        ).all()
    # Copied or inserted, each activity names the run that last wrote it.
    assert [r[0] for r in runs] == ["H1", "H2", "N1", "N2", "N3", "N4"]


@pytest.mark.parametrize("direct", [False, True], ids=["insert", "copy"])
async def test_a_batch_meeting_a_held_key_says_so(
    db: Database, keyring: KeyRing, direct: bool
) -> None:
    """``direct``: the batch is first copied into ``activity`` whole; a copied batch's ids
    are not read back."""
    held = prepare_batch([("a.csv", sale("K1"))], keyring)
    mixed = prepare_batch([("b.csv", sale("K0")), ("b.csv", sale("K1", amount=1))], keyring)
    fresh = prepare_batch([("c.csv", sale("K2"))], keyring)
    run = await start_run(db=db, actor="test", connector="pos")
    written = await _write_each(db, [held, mixed, fresh], run, optimistic=True, direct=direct)
    assert [w.held_activity_met for w in written] == [False, True, False]
    assert [w.activities_copied for w in written] == [direct, False, direct]
    assert [set(w.new_activities) for w in written] == [
        set() if direct else {("pos", "K1")},
        {("pos", "K0")},
        set() if direct else {("pos", "K2")},
    ]
    assert set(written[1].updated_activities) == {("pos", "K1")}
    async with db.read() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT external_id, amount_fen, import_run_id, content_hash FROM activity "
                    "ORDER BY external_id"
                )
            )
        ).all()
    # However they went in, the rows are the staged ones, each naming the run that wrote it.
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("K0", 12900, run),
        ("K1", 1, run),
        ("K2", 12900, run),
    ]
    staged = {"K0": sale("K0"), "K1": sale("K1", amount=1), "K2": sale("K2")}
    assert {r[0]: r[3] for r in rows} == {
        k: activity_row(a, keyring).content_hash for k, a in staged.items()
    }


def test_a_batch_stages_its_activities_in_the_one_order_every_writer_uses(
    keyring: KeyRing,
) -> None:
    """Code point order of (source, external_id), what ``store.ACTIVITY_ORDER`` sorts by: a
    batch copied straight into ``activity`` takes its keys in the order the staged statements
    do, so two imports sharing keys never wait for each other in a cycle."""
    names = ["Z9", "a1", "B2", "é3", "A10", "A2"]
    batch = prepare_batch([("f.csv", sale(n)) for n in names], keyring)
    keys = batch.staged.activity_keys
    assert keys == [("pos", n) for n in sorted(names)]
    assert [k[1] for k in keys] == ["A10", "A2", "B2", "Z9", "a1", "é3"]
    lines = batch.staged.activities.decode().splitlines()
    assert [line.split("\t")[1] for line in lines] == [k[1] for k in keys]
    assert batch.activity_files == ["f.csv"] * len(names)


async def test_the_statements_sort_activities_as_batches_are_staged(db: Database) -> None:
    names = ["Z9", "a1", "B2", "é3", "A10", "A2", "ä", "zz"]
    async with db.read() as session:
        got = list(
            (
                await session.execute(
                    text(
                        "SELECT external_id FROM unnest(CAST(:n AS text[])) AS t (external_id) "
                        f"CROSS JOIN (SELECT 'pos' AS source) s ORDER BY {store.ACTIVITY_ORDER}"
                    ),
                    {"n": names},
                )
            ).scalars()
        )
    assert got == sorted(names)


def _twice_phoned(key: str) -> SourceRecord:
    """A record naming one phone twice, verified the second time: stored once, verified."""
    return SourceRecord(
        source="pos",
        source_key=key,
        business_line="store",
        observed_at=T0,
        identifiers=(
            Identifier(IdentifierKind.PHONE, "+8613800000009"),
            Identifier(IdentifierKind.CARD_NO, key, scope="brand"),
            Identifier(IdentifierKind.PHONE, "+8613800000009", verified=True),
        ),
    )


async def _tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    async with db.read() as session:

        async def rows(sql: str) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in (await session.execute(text(sql))).all())

        return {
            "records": await rows(
                "SELECT source, source_key, business_line, observed_at, content_hash, pii_enc "
                "IS NOT NULL, gender, consents::text, attributes::text, import_run_id IS NOT NULL "
                "FROM source_record"
            ),
            "identifiers": await rows(
                "SELECT r.source_key, i.kind, i.scope, i.hash, i.verified, i.masked "
                "FROM source_identifier i JOIN source_record r ON r.id = i.source_record_id"
            ),
            "observations": await rows(
                "SELECT r.source_key, o.content_hash FROM source_observation o "
                "JOIN source_record r ON r.id = o.source_record_id"
            ),
        }


@pytest.mark.parametrize("second_verified", [False, True])
def test_a_record_copied_whole_names_each_identifier_once(
    keyring: KeyRing, second_verified: bool
) -> None:
    """``_direct``: a record's identifier lines as ``source_identifier`` takes them, one per
    (kind, scope, hash), a verified one kept over an unverified; and where they begin after
    the source and key columns."""
    phone = Identifier(IdentifierKind.PHONE, "+8613800000009")
    again = Identifier(IdentifierKind.PHONE, "+8613800000009", verified=second_verified)
    card = Identifier(IdentifierKind.CARD_NO, "K\t1", scope="brand")  # escaped in COPY text

    def direct(*identifiers: Identifier) -> tuple[list[list[bytes]], int]:
        record = SourceRecord(
            source="pos",
            source_key="K\t1",
            business_line="store",
            observed_at=T0,
            identifiers=identifiers,
        )
        row = record_row(record, keyring, seal=False)
        _, lines, prefix = _direct(row)
        assert row.copy[:prefix] == b"pos\tK\\t1\t"
        return [line.split(b"\t") for line in lines.split(b"\n")], prefix

    both, prefix = direct(phone, card)
    assert [(c[2], c[5]) for c in both] == [(b"phone", b"f"), (b"card_no", b"f")]
    for twice in (direct(phone, again)[0], direct(again, phone)[0], direct(phone, card, again)[0]):
        phones = [c for c in twice if c[2] == b"phone"]
        assert len(phones) == 1
        assert phones[0][5] == (b"t" if second_verified else b"f")


@pytest.mark.parametrize("direct_records", [False, True], ids=["upsert", "copy"])
async def test_records_new_to_an_import_are_copied_whole_until_one_is_held(
    db: Database, keyring: KeyRing, direct_records: bool
) -> None:
    """Records whose keys an import has not staged before are staged to be inserted whole
    (``staged_keys``); ``direct_records`` copies them into the tables with ids from the
    sequence. A batch holding a key the table has falls back to the upsert, and either way the
    tables end the same."""
    staged_keys: set[tuple[str, str]] = set()
    prepare = functools.partial(
        prepare_batch, keyring=keyring, keep_parsed=False, staged_keys=staged_keys
    )
    first = prepare([("a.csv", person("C1"))])
    again = prepare([("a.csv", person("C1", name="改名"))])
    # A new import (an empty key set) whose batch holds C1, which the table has.
    mixed = prepare_batch(
        [("b.csv", person("C0")), ("b.csv", person("C1", name="又改名")), ("b.csv", sale("S1"))],
        keyring,
        staged_keys=set(),
        keep_parsed=False,
    )
    fresh = prepare_batch(
        [("c.csv", person("C2")), ("c.csv", _twice_phoned("C3"))],
        keyring,
        staged_keys=set(),
        keep_parsed=False,
    )
    assert [len(b.staged.direct) for b in (first, again, mixed, fresh)] == [1, 0, 2, 2]
    run = await start_run(db=db, actor="test", connector="pos")
    batches = [first, again, mixed, fresh]
    written = await _write_each(db, batches, run, direct_records=direct_records)
    assert [w.held_record_met for w in written] == [False, False, direct_records, False]
    assert [set(w.new_records) for w in written] == [
        {("pos", "C1")},
        set(),
        {("pos", "C0")},
        {("pos", "C2"), ("pos", "C3")},
    ]
    assert [set(w.updated_records) for w in written] == [
        set(),
        {("pos", "C1")},
        {("pos", "C1")},
        set(),
    ]
    tables = await _tables(db)
    assert [r[1] for r in tables["records"]] == ["C0", "C1", "C2", "C3"]
    assert all(r[-1] for r in tables["records"])  # each names the run that wrote it
    assert len(tables["observations"]) == 2  # C1's two earlier states
    phones = [i for i in tables["identifiers"] if i[0] == "C3" and i[1] == "phone"]
    assert len(phones) == 1
    assert phones[0][4] is True  # the verified one
    async with db.read() as session:
        ids = (await session.execute(text("SELECT id FROM source_record ORDER BY id"))).scalars()
        # Copied or upserted, the ids come from the one sequence.
        assert len(set(ids)) == 4
    async with db.unit_of_work() as session:
        # A record written after by the usual INSERT takes the next id of the same sequence.
        await session.execute(
            text(
                "INSERT INTO source_record (source, source_key, business_line, observed_at, "
                "content_hash) VALUES ('pos', 'C9', 'store', now(), 'h')"
            )
        )


@pytest.fixture
def inserted(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each attempt to insert a batch's new records whole came to (True: inserted)."""
    outcomes: list[bool] = []
    real = store._insert_direct

    async def recording(*args: Any) -> bool:
        outcomes.append(await real(*args))
        return outcomes[-1]

    monkeypatch.setattr(store, "_insert_direct", recording)
    return outcomes


async def test_a_file_import_with_hooks_copies_new_records_whole_and_hands_over_their_ids(
    db: Database, keyring: KeyRing, inserted: list[bool]
) -> None:
    """A file import (``optimistic``) stages records new to it to be inserted whole, hooks or
    not; the hooks see the new records' ids as the table holds them. Run again, the first batch
    meets held keys and the import goes the upsert way from then on, changing nothing."""
    seen: dict[tuple[str, str], int] = {}

    class Hooks:
        async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None:
            assert set(batch.written.new_records) <= set(batch.records)
            seen.update(batch.written.new_records)

    items: list[Parsed] = [person(f"D{i}") for i in range(5)]
    report = await _run(db, keyring, items, hooks=Hooks(), batch_size=2, optimistic=True)
    assert report["new"] == 5
    assert inserted == [True, True, True]
    async with db.read() as session:
        rows = await session.execute(text("SELECT source, source_key, id FROM source_record"))
        held = {(r[0], r[1]): r[2] for r in rows}
    assert seen == held
    assert await _count(db, "source_identifier") == 10
    inserted.clear()
    again = await _run(db, keyring, items, hooks=Hooks(), batch_size=2, optimistic=True)
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, 5)
    assert inserted == [False]  # then no more tries
    assert await _count(db, "source_identifier") == 10


async def test_two_file_imports_of_overlapping_records_at_once_end_as_one(
    db: Database, keyring: KeyRing, inserted: list[bool]
) -> None:
    """Two file imports at once, sharing some new records: each tries to insert its new records
    whole; the one that meets the other's keys (held, or being written) falls back to the
    upsert. Neither fails, nothing is written twice, and the shared records count once as new."""
    first: list[Parsed] = [person(f"P{i:02d}") for i in range(12)]
    second: list[Parsed] = [person(f"P{i:02d}") for i in range(6, 18)]
    reports = await asyncio.gather(
        _run(db, keyring, first, batch_size=3, optimistic=True),
        _run(db, keyring, second, batch_size=3, optimistic=True),
    )
    assert sum(int(r["new"]) for r in reports) == 18  # type: ignore[call-overload]
    assert sum(int(r["updated"]) for r in reports) == 0  # type: ignore[call-overload]
    assert await _count(db, "source_record") == 18
    assert await _count(db, "source_identifier") == 36
    assert await _count(db, "source_observation") == 0
    assert True in inserted
    assert False in inserted  # one of them met the other's keys
