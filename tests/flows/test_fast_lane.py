"""The import fast lane (Taobao ``Purchase`` items, buyers skipped once the table holds them)
writes exactly what the record-by-record lane writes, reports the same bad rows, and re-imports
as nothing new.

Both lanes import the same file with the same batch boundaries (a record lane batch holds a row's
two records, so its batch size is twice the fast lane's); their tables are then compared row by
row (ciphertexts compared as their plaintext, ids and run ids left out).
"""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text

from connectors import taobao
from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.records import Item, Purchase
from hub.flows.ingest import IngestReport, finish_run, ingest, start_run
from hub.flows.ingest.batch import Preparer
from hub.flows.ingest.rows import pii_aad
from hub.flows.ingest.store import rendered, write_batch
from hub.flows.ingest.worker import _chunks
from hub.generator.layout import TAOBAO_ORDERS_HEADER
from hub.importer import run_import
from tests.conftest import _truncate_all

# buyer -> (nick, mobile, receiver, address); "t**0" is a masked nick: keyed by receiver fields.
BUYERS = {
    "a": ("买家甲", "138****0001", "张*", "浙江省 杭州市 西湖区 ****** (000000)"),
    "b": ("买家乙", "138****0002", "李*", "上海 上海市 浦东新区 ****** (000000)"),
    "c": ("买家丙", "13800000003", "王*", "广东省 深圳市 南山区 ****** (000000)"),
    "d": ("t**0", "139****0004", "赵*", "浙江省 杭州市 西湖区 ****** (000000)"),
    "e": ("买家戊", "", "", ""),
    "b2": ("买家乙", "138****0002", "李*", "广东省 深圳市 南山区 ****** (000000)"),  # moved
}


def row(
    order: int,
    buyer: str,
    day: int,
    *,
    paid: str = "12.00",
    shipping: str = "0.00",
    status: str = "交易成功",
    hour: int = 10,
) -> list[str]:
    nick, mobile, receiver, address = BUYERS[buyer]
    cells = [""] * len(TAOBAO_ORDERS_HEADER)
    cells[0] = f'="{3_000_000_000_000_000_000 + order}"'
    cells[1] = nick
    cells[3] = paid
    cells[4] = shipping
    cells[6] = paid
    cells[8] = paid
    cells[10] = status
    cells[12] = receiver
    cells[13] = address
    cells[16] = mobile
    cells[17] = f"2025-03-{day:02d} {hour:02d}:12:05"
    cells[18] = f"2025-03-{day:02d} {hour:02d}:12:30"
    cells[20] = "2"
    return cells


def export(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TAOBAO_ORDERS_HEADER)
    writer.writerows(rows)
    return out.getvalue().encode("gbk")


def steady_rows() -> list[list[str]]:
    """Buyers on many orders across batches, one moving house and back, times out of order."""
    plan = "abcdeabcdbadcbeab2abdcab2cadbbcadbeabcadbcdab"
    return [
        row(i, buyer, 1 + (i * 7) % 27, paid=f"{10 + i}.50", shipping="8.00" if i % 3 else "0")
        for i, buyer in enumerate([*plan[:17], "b2", *plan[18:24], "b2", *plan[25:]])
    ]


SKIPPED: list[int] = []  # buyers the last fast-lane import skipped


async def _import(
    db: Database, keyring: KeyRing, data: bytes, *, fast: bool, rows_per_batch: int
) -> dict[str, Any]:
    report = IngestReport(connector="taobao")
    report.import_run_id = await start_run(db=db, actor="test", connector="taobao")
    kinds: list[str] = []

    def items() -> Iterator[tuple[str, Item]]:
        # Lazily, as the import reads them: buyers are skipped only once batches have landed.
        for item in taobao.parse(io.BytesIO(data), filename="ExportOrderList1.csv", fast=fast):
            if isinstance(item, Purchase):
                kinds.append("skipped" if item.buyer is None and item.seen else "purchase")
            yield "ExportOrderList1.csv", item

    await ingest(
        db=db,
        keyring=keyring,
        items=items(),
        report=report,
        batch_size=rows_per_batch if fast else 2 * rows_per_batch,
    )
    await finish_run(db=db, report=report)
    assert ("purchase" in kinds) == fast
    if fast:
        SKIPPED[:] = [kinds.count("skipped")]
    return report.as_dict()


async def _state(db: Database, keyring: KeyRing) -> dict[str, list[tuple[Any, ...]]]:
    async with db.read() as session:

        async def rows(sql: str) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in (await session.execute(text(sql))).all())

        records = [
            (*r[:-1], keyring.decrypt(r[-1], aad=pii_aad(r[0], r[1])) if r[-1] else None)
            for r in await rows(
                "SELECT source, source_key, business_line, observed_at, content_hash, gender, "
                "consents::text, attributes::text, pii_enc FROM source_record"
            )
        ]
        return {
            "records": records,
            "identifiers": await rows(
                "SELECT r.source, r.source_key, i.kind, i.scope, i.hash, i.verified, i.masked "
                "FROM source_identifier i JOIN source_record r ON r.id = i.source_record_id"
            ),
            "observations": await rows(
                "SELECT r.source, r.source_key, o.observed_at, o.content_hash "
                "FROM source_observation o JOIN source_record r ON r.id = o.source_record_id"
            ),
            "activities": await rows(
                "SELECT source, external_id, kind, business_line, source_key, amount_fen, "
                "quantity, occurred_at, status, original_external_id, details::text, "
                "content_hash FROM activity"
            ),
            "events": await rows(
                "SELECT a.source, a.external_id, e.status, e.amount_fen, e.content_hash "
                "FROM activity_event e JOIN activity a ON a.id = e.activity_id"
            ),
        }


def _without_run(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "import_run_id"}


async def _both_lanes(
    db: Database, keyring: KeyRing, files: list[bytes], rows_per_batch: int
) -> tuple[list[Any], list[Any]]:
    """(state, reports) after importing ``files`` in order through each lane; the last file
    through the lane under test, the ones before it through the record lane."""
    results = []
    for fast in (False, True):
        await _truncate_all(db)
        reports = []
        for i, data in enumerate(files):
            lane = fast and i == len(files) - 1
            reports.append(
                await _import(db, keyring, data, fast=lane, rows_per_batch=rows_per_batch)
            )
        results.append((await _state(db, keyring), [_without_run(r) for r in reports]))
    return results[0], results[1]


async def test_the_fast_lane_writes_what_the_record_lane_writes(
    db: Database, keyring: KeyRing
) -> None:
    data = export(steady_rows())
    for rows_per_batch in (1, 3, 50):
        (slow_state, slow_reports), (fast_state, fast_reports) = await _both_lanes(
            db, keyring, [data], rows_per_batch
        )
        assert fast_state == slow_state, rows_per_batch
        assert fast_reports == slow_reports, rows_per_batch
        if rows_per_batch < 50:
            assert SKIPPED[0] > 0, rows_per_batch  # buyers were skipped once held
    assert len(fast_state["records"]) == 5  # a, b (b2 is b moved), c, d (by receiver), e
    assert len(fast_state["activities"]) == len(steady_rows())
    assert fast_reports[0]["read"] == 2 * len(steady_rows())


async def test_a_skipped_buyer_whose_record_lost_to_a_newer_one_is_read_again(
    db: Database, keyring: KeyRing
) -> None:
    """The table holds b's newer address (day 10). The file has b's old address on day 1 (it
    loses) and again on days 20 and 25 (they win): the fast lane must not take b's day-1 record
    for what the table holds and skip the later ones."""
    before = export([row(900, "b2", 10), row(901, "a", 10)])
    fillers = [row(100 + i, "ac"[i % 2], 2 + i % 5) for i in range(8)]
    file = export([row(1, "b", 1), *fillers, row(2, "b", 20), *fillers[:4], row(3, "b", 25)])
    (slow_state, slow_reports), (fast_state, fast_reports) = await _both_lanes(
        db, keyring, [before, file], rows_per_batch=2
    )
    assert fast_state == slow_state
    assert fast_reports == slow_reports
    assert SKIPPED[0] > 0
    b_records = [r for r in fast_state["records"] if r[1] == "买家乙"]
    assert len(b_records) == 1
    assert b_records[0][3].day == 20  # the old address won again (day 25 changed nothing)
    assert "上海" in b_records[0][-1]


async def test_a_buyer_changed_elsewhere_is_not_skipped(db: Database, keyring: KeyRing) -> None:
    """b is staged (old address), then b2 (b's new address, a newer row) wins, then b's old
    address on a still newer row must be written again, not skipped as held."""
    fillers = [row(100 + i, "ac"[i % 2], 2) for i in range(8)]
    file = export(
        [row(1, "b", 1), *fillers, row(2, "b2", 5), *fillers[:6], row(3, "b", 9), *fillers[:6]]
    )
    (slow_state, _), (fast_state, _) = await _both_lanes(db, keyring, [file], rows_per_batch=2)
    assert fast_state == slow_state
    assert SKIPPED[0] > 0
    b = [r for r in fast_state["records"] if r[1] == "买家乙"]
    assert "上海" in b[0][-1]
    assert b[0][3].day == 9


async def test_bad_rows_are_reported_by_line_and_the_rest_lands_in_the_fast_lane(
    db: Database, keyring: KeyRing
) -> None:
    rows = steady_rows()[:12]
    rows[2][3] = rows[2][8] = "12.3.4"  # not an amount
    rows[5][0] = ""  # no order number
    rows[7][10] = "神秘状态"  # unknown status
    rows[9][10] = "等待买家付款"  # unpaid: the buyer only
    rows[10][16] = "12345"  # a phone that is not one: kept, with a warning
    (slow_state, slow_reports), (fast_state, fast_reports) = await _both_lanes(
        db, keyring, [export(rows)], rows_per_batch=2
    )
    assert fast_state == slow_state
    assert fast_reports == slow_reports
    rejected = fast_reports[0]["rejected_rows"]
    assert [(e["line"], e["column"]) for e in rejected] == [
        (4, "买家实际支付金额"),
        (7, "订单编号"),
        (9, "订单状态"),
    ]
    assert len(fast_state["activities"]) == 12 - 3 - 1


async def test_a_fast_lane_reimport_writes_nothing_new(db: Database, keyring: KeyRing) -> None:
    data = export(steady_rows())
    await _import(db, keyring, data, fast=True, rows_per_batch=3)
    first = await _state(db, keyring)
    again = await _import(db, keyring, data, fast=True, rows_per_batch=3)
    assert SKIPPED[0] > 0
    assert await _state(db, keyring) == first
    assert again["new"] == 0
    assert again["updated"] == 0
    assert again["unchanged"] == again["read"] == 2 * len(steady_rows())


async def test_hub_import_with_its_worker_matches_the_record_lane(
    db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    """``run_import`` (fast lane, forked worker, acknowledgements over the pipe) on a file of
    many batches ends in the record lane's state."""
    buyers = ["a", "b", "c", "d", "e", "b2"]
    rows = [row(i, buyers[i * 5 % 6] if i % 11 else "b2", 1 + i % 28) for i in range(240)]
    data = export(rows)
    path = tmp_path / "ExportOrderList2.csv"
    path.write_bytes(data)
    await _import(db, keyring, data, fast=False, rows_per_batch=10)
    expected = await _state(db, keyring)
    await _truncate_all(db)
    report = await run_import(
        db=db,
        keyring=keyring,
        connector="taobao",
        paths=[path],
        actor="test",
        batch_size=10,
        parallel=True,
    )
    assert not report.failed
    got = await _state(db, keyring)
    assert got == expected
    assert report.total("read") == 2 * len(rows)


@pytest.mark.parametrize("keep_parsed", [False, True])  # without hooks, and with them
def test_preparing_batches_makes_no_reference_cycles(keyring: KeyRing, keep_parsed: bool) -> None:
    """The import worker freezes what survives each batch (``gc.freeze``: never scanned by the
    collector again) on the ground that reading and preparing make no reference cycles; one
    made there would be kept for the rest of the import. Bad rows and skipped buyers included."""
    bad = row(900, "a", 3, paid="12.345")  # an amount error: the row goes to the record lane
    unknown = row(901, "b", 4, status="神秘状态")
    data = export([*steady_rows(), bad, unknown, *steady_rows()])
    gc.collect()
    gc.disable()
    try:
        prepare = Preparer(keyring, keep_parsed=keep_parsed)
        parsed = taobao.parse(io.BytesIO(data), filename="ExportOrderList1.csv", fast=True)
        items = (("ExportOrderList1.csv", item) for item in parsed)
        batches = [prepare(chunk) for chunk in _chunks(items, 7)]
        for batch in batches:
            prepare.confirm(batch.number, frozenset())
        assert sum(len(b.errors) for b in batches) == 2
        del prepare, parsed, items, batches
        assert gc.collect() == 0
    finally:
        gc.enable()


def _sealed_lines(text: bytes, pii_column: int, keyring: KeyRing) -> list[list[Any]]:
    """COPY lines as columns, the sealed PII column decrypted (a fresh nonce per sealing)."""
    out: list[list[Any]] = []
    for line in text.decode().splitlines():
        cells: list[Any] = line.split("\t")
        source, key, token = cells[pii_column - 4], cells[pii_column - 3], cells[pii_column]
        if token != "\\N":
            cells[pii_column] = keyring.decrypt(token, aad=pii_aad(source, key))
        out.append(cells)
    return out


@pytest.mark.parametrize("direct", [False, True], ids=["staged", "direct"])
def test_purchases_left_to_the_writer_render_as_the_worker_would_stage_them(
    keyring: KeyRing, direct: bool
) -> None:
    """Without hooks the worker stages fast-lane purchases as their cells, and records with
    their PII unsealed, and the importing process renders them (``store.rendered``): byte for
    byte the COPY text the worker stages otherwise, in the same order, but for the sealed PII,
    which decrypts to the same. With record-lane activities (a buyer with a note, an unpaid
    order) and bad rows among them."""
    noted = row(902, "a", 5)
    noted[16] = "12345"  # not a phone: the row goes through the record lane with a note
    data = export(
        [
            *steady_rows(),
            noted,
            row(903, "c", 6, status="等待买家付款"),
            row(904, "b", 4, paid="12.345"),
            *steady_rows()[:9],
        ]
    )

    def batches(defer: bool) -> list[Any]:
        prepare = Preparer(keyring, keep_parsed=False, defer_purchases=defer, direct_records=direct)
        parsed = taobao.parse(io.BytesIO(data), filename="ExportOrderList1.csv", fast=True)
        out = []
        for chunk in _chunks((("ExportOrderList1.csv", item) for item in parsed), 7):
            batch = prepare(chunk)
            prepare.confirm(batch.number, frozenset())
            out.append(batch)
        return out

    eager, deferred = batches(False), batches(True)
    assert all(b.staged.activity_parts is None for b in eager)
    parts = [p for b in deferred for p in b.staged.activity_parts or ()]
    assert any(type(p) is tuple for p in parts)  # purchases, left to the writer
    assert any(isinstance(p, bytes) for p in parts)  # the noted buyer's order, rendered eagerly
    for before, after in zip(eager, deferred, strict=True):
        if after.staged.activity_parts is not None:
            assert after.staged.activities == b""
        written = rendered(after.staged, keyring)
        assert written.activity_parts is None
        assert written.activities == before.staged.activities
        assert written.activity_keys == before.staged.activity_keys
        assert written.resolve_originals == before.staged.resolve_originals
        assert after.activity_files == before.activity_files
        assert after.read == before.read
        assert [e.line for e in after.errors] == [e.line for e in before.errors]
        assert written.record_parts is None
        assert written.record_keys == before.staged.record_keys
        assert written.identifiers == before.staged.identifiers
        # seq, observed_at, source, source_key, business_line, content_hash, pii_enc, ...
        assert _sealed_lines(written.records, 6, keyring) == _sealed_lines(
            before.staged.records, 6, keyring
        )
        assert [d[1:] for d in written.direct] == [d[1:] for d in before.staged.direct]
        tails = [
            (cast(bytes, d[0]), cast(bytes, e[0]))
            for d, e in zip(written.direct, before.staged.direct, strict=True)
        ]
        # observed_at, source, source_key, business_line, content_hash, pii_enc, ...
        assert [_sealed_lines(a, 5, keyring) for a, _ in tails] == [
            _sealed_lines(b, 5, keyring) for _, b in tails
        ]
    staged = [b.staged for b in deferred]
    assert any(s.record_parts for s in staged) or any(
        type(d[0]) is tuple for s in staged for d in s.direct
    )
    assert any(s.direct for s in staged) == direct


async def test_a_batch_with_purchases_not_rendered_is_refused(
    db: Database, keyring: KeyRing
) -> None:
    prepare = Preparer(keyring, keep_parsed=False, defer_purchases=True)
    parsed = taobao.parse(io.BytesIO(export(steady_rows()[:3])), filename="o.csv", fast=True)
    batch = prepare([("o.csv", item) for item in parsed])
    assert batch.staged.activity_parts is not None
    async with db.unit_of_work() as session:
        with pytest.raises(ValueError, match="rendered"):
            await write_batch(session=session, staged=batch.staged, import_run_id=None)
        await write_batch(
            session=session, staged=rendered(batch.staged, keyring), import_run_id=None
        )
    async with db.read() as session:
        assert await session.scalar(text("SELECT count(*) FROM activity")) == 3
