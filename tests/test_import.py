"""Imports end to end: generated files in every real layout → connectors → the database."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from hub.core.db import Database
from hub.core.migrate import upgrade
from hub.core.pii import KeyRing
from hub.flows.ingest.worker import _GC_THRESHOLDS
from hub.generator import generate
from hub.importer import run_import
from tests.conftest import TEST_KEYS, _admin, _with_database

KEY_ENV = {
    "HUB_HASH_KEYS": json.dumps(TEST_KEYS["hash_keys"]),
    "HUB_HASH_KEY_ID": "h1",
    "HUB_ENCRYPTION_KEYS": json.dumps(TEST_KEYS["enc_keys"]),
    "HUB_ENCRYPTION_KEY_ID": "k1",
}

# What "the same state" means: every domain row by its natural key and content (ciphertexts
# differ by nonce, run ids by run, so they are left out).
STATE_SQL = """
SELECT 'r', source || '/' || source_key || '/' || content_hash FROM source_record
UNION ALL SELECT 'i', r.source || '/' || r.source_key || '/' || i.kind || '/' || i.hash
  FROM source_identifier i JOIN source_record r ON r.id = i.source_record_id
UNION ALL SELECT 'o', r.source || '/' || r.source_key || '/' || o.content_hash
  FROM source_observation o JOIN source_record r ON r.id = o.source_record_id
UNION ALL SELECT 'a', source || '/' || external_id || '/' || content_hash FROM activity
UNION ALL SELECT 'e', a.source || '/' || a.external_id || '/' || e.content_hash
  FROM activity_event e JOIN activity a ON a.id = e.activity_id
ORDER BY 1, 2
"""


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    generate(150, 11, out)
    return out


async def _rows(url: str, sql: str) -> list[tuple[str, str]]:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.read() as session:
            return [tuple(r) for r in (await session.execute(text(sql))).all()]  # type: ignore[misc]
    finally:
        await db.dispose()


async def _state(url: str) -> list[tuple[str, str]]:
    return await _rows(url, STATE_SQL)


async def test_auto_import_lands_every_generated_file_and_a_rerun_changes_nothing(
    db: Database, keyring: KeyRing, generated: Path
) -> None:
    first = await run_import(db=db, keyring=keyring, connector="auto", paths=[generated], actor="t")
    d = first.as_dict()
    assert d["rejected"] == 0, d["rejected_rows"][:3]
    assert set(d["refused_files"]) == {"truth.csv"}
    assert d["new"] > 500
    assert set(d["connectors"].values()) == {
        "taobao",
        "taobao_members",
        "douyin",
        "douyin_members",
        "pos",
        "member_app",
        "hotel",
    }
    again = (
        await run_import(db=db, keyring=keyring, connector="auto", paths=[generated], actor="t")
    ).as_dict()
    assert (again["new"], again["updated"]) == (0, 0)
    assert again["unchanged"] == again["read"] == d["read"]


async def test_every_truth_key_becomes_a_source_record(
    db: Database, keyring: KeyRing, generated: Path
) -> None:
    import csv

    from hub.generator.layout import CONNECTOR_SOURCE

    await run_import(db=db, keyring=keyring, connector="auto", paths=[generated], actor="t")
    async with db.read() as session:
        stored = set(
            (
                await session.execute(text("SELECT source || '/' || source_key FROM source_record"))
            ).scalars()
        )
    with (generated / "truth.csv").open(encoding="utf-8") as fh:
        truth = {
            f"{CONNECTOR_SOURCE.get(r['source'], r['source'])}/{r['source_key']}"
            for r in csv.DictReader(fh)
        }
    assert truth - stored == set()


async def test_a_file_given_to_the_wrong_connector_is_refused_with_the_expected_headers(
    db: Database, keyring: KeyRing, generated: Path
) -> None:
    report = await run_import(
        db=db,
        keyring=keyring,
        connector="taobao",
        paths=[generated / "douyin_orders.csv", generated / "taobao_members.csv"],
        actor="t",
    )
    assert "douyin_orders.csv is not a taobao file" in report.refused_files["douyin_orders.csv"]
    assert "It looks like a douyin file" in report.refused_files["douyin_orders.csv"]
    assert report.total("new") == 0


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", *args],
        env={**os.environ, **KEY_ENV, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_import_writes_the_json_report(
    database_url: str, generated: Path, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    proc = _cli(
        ["import", "auto", str(generated), "--report", str(report_path)],
        {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path)},
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report = json.loads(report_path.read_text())
    for key in ("read", "new", "unchanged", "updated", "rejected", "files", "rejected_rows"):
        assert key in report
    assert "ExportOrderList" in err  # auto says which connector it chose for each file
    asyncio.run(_truncate(database_url))


def test_cli_import_exits_1_when_a_file_it_was_named_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    wrong = tmp_path / "members.csv"
    wrong.write_text("open_id,union_id,mobile\nx,y,z\n")
    proc = _cli(
        ["import", "taobao", str(wrong)],
        {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path)},
    )
    _, err = proc.communicate(timeout=120)
    said = " ".join(err.split())
    assert proc.returncode == 1, err
    assert "members.csv is not a taobao file" in said
    assert "not imported: members.csv (named, but refused)" in said
    asyncio.run(_truncate(database_url))


async def _truncate(url: str) -> None:
    from tests.conftest import _truncate_all

    db = Database(url, pool_size=1, max_overflow=0)
    try:
        await _truncate_all(db)
    finally:
        await db.dispose()


@pytest.fixture
def two_databases(server_url: str) -> Iterator[tuple[str, str]]:
    names = [f"hub_kill_{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for n in names:
        asyncio.run(_admin(server_url, f'CREATE DATABASE "{n}"'))
    urls = [_with_database(server_url, n) for n in names]
    for u in urls:
        upgrade(u)
    yield urls[0], urls[1]
    for n in names:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)'))


async def _activities(url: str) -> int:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.read() as session:
            return int(await session.scalar(text("SELECT count(*) FROM activity")) or 0)
    finally:
        await db.dispose()


def test_an_import_killed_midway_and_rerun_ends_as_one_clean_run(
    two_databases: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    killed_url, clean_url = two_databases
    data = tmp_path_factory.mktemp("kill")
    generate(700, 5, data)
    args = ["import", "auto", str(data), "--batch-size", "200"]
    env_k: dict[str, Any] = {"HUB_DATABASE_URL": killed_url, "HUB_DATA_DIR": str(data / ".k")}
    proc = _cli(args, env_k)
    deadline = time.monotonic() + 60
    while (
        asyncio.run(_activities(killed_url)) < 400
        and time.monotonic() < deadline
        and proc.poll() is None
    ):
        time.sleep(0.05)
    assert proc.poll() is None, "the import finished before it could be killed; use more data"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    partial = asyncio.run(_state(killed_url))
    rerun = _cli(args, env_k)
    _, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err
    clean = _cli(args, {"HUB_DATABASE_URL": clean_url, "HUB_DATA_DIR": str(data / ".c")})
    _, err = clean.communicate(timeout=180)
    assert clean.returncode == 0, err
    after = asyncio.run(_state(killed_url))
    assert len(partial) < len(after)  # the kill really landed mid-import
    assert after == asyncio.run(_state(clean_url))


class _CollectorSpy:
    """Hooks that note the cyclic collector's thresholds while batches land."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, int, int]] = set()

    async def batch_landed(self, *, session: Any, batch: Any) -> None:
        self.seen.add(gc.get_threshold())


@pytest.mark.parametrize("parallel", [True, False])
async def test_only_a_cli_import_tunes_the_collector_and_sets_it_back(
    db: Database, keyring: KeyRing, generated: Path, parallel: bool
) -> None:
    before = gc.get_threshold()
    spy = _CollectorSpy()
    await run_import(
        db=db,
        keyring=keyring,
        connector="auto",
        paths=[generated],
        actor="t",
        hooks=spy,
        batch_size=50,
        parallel=parallel,
    )
    # ``parallel`` is the CLI's import; inside a server the process's thresholds are left alone.
    assert spy.seen == ({_GC_THRESHOLDS} if parallel else {before})
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


# What resolution and accrual made of an import, by natural keys (ids differ between databases):
# each accrual and reversal with its points, each member as the records it holds, each member's
# balances.
LEDGER_SQL = """
SELECT 'accrual', a.source || '/' || a.external_id || '/' || c.points || '/' || c.growth
  FROM loyalty_accrual c JOIN activity a ON a.id = c.activity_id
UNION ALL SELECT 'reversal', r.key ~ '^refund:' || '/' || a.source || '/' || a.external_id
       || '/' || r.points
  FROM loyalty_reversal r JOIN activity a ON a.id = coalesce(r.refund_activity_id, r.activity_id)
UNION ALL SELECT 'member', string_agg(source || '/' || source_key, ',' ORDER BY source, source_key)
  FROM source_record WHERE member_id IS NOT NULL GROUP BY member_id
UNION ALL SELECT 'balance', (SELECT min(source || '/' || source_key) FROM source_record s
                              WHERE s.member_id = b.member_id) || '/' || b.kind || '/' || b.balance
  FROM loyalty_account b WHERE b.member_id IS NOT NULL AND b.balance <> 0
UNION ALL SELECT 'unattached', source || '/' || source_key FROM source_record WHERE member_id IS NULL
ORDER BY 1, 2
"""


async def _ledger(url: str) -> list[tuple[str, str]]:
    return await _rows(url, LEDGER_SQL)


def _run_cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env={**os.environ, **KEY_ENV, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    return " ".join((done.stdout + done.stderr).split())  # ``hub import`` prints to stderr


def test_a_bulk_import_then_resolve_then_accrue_ends_as_an_import_that_did_both(
    two_databases: tuple[str, str], generated: Path, tmp_path: Path
) -> None:
    bulk_url, hooked_url = two_databases
    bulk = {"HUB_DATABASE_URL": bulk_url, "HUB_DATA_DIR": str(tmp_path / "b")}
    hooked = {"HUB_DATABASE_URL": hooked_url, "HUB_DATA_DIR": str(tmp_path / "h")}
    report_path = tmp_path / "bulk.json"
    said = _run_cli(
        ["import", "auto", str(generated), "--bulk", "--report", str(report_path)], bulk
    )
    assert "run `hub identity resolve`, then `hub ledger accrue`" in said
    report = json.loads(report_path.read_text())
    assert report["deferred"] == ["hub identity resolve", "hub ledger accrue"]
    assert report["new"] > 500
    assert report["rejected"] == 0
    landed = asyncio.run(_ledger(bulk_url))
    assert landed
    assert {kind for kind, _ in landed} == {"unattached"}  # nothing resolved or accrued

    # Accrual before resolution finds no member to earn anything, and says what to run.
    said = _run_cli(["ledger", "accrue"], bulk)
    assert "accrue accrued=0 points=0" in said
    assert "run `hub identity resolve`, then this again" in said
    _run_cli(["identity", "resolve"], bulk)
    said = _run_cli(["ledger", "accrue"], bulk)
    accrued = int(said.split("accrue accrued=")[1].split()[0])
    assert accrued > 300
    # Run again, it finds nothing more owed.
    assert "accrue accrued=0 points=0 pending_points=0 growth=0 reversed=0" in _run_cli(
        ["ledger", "accrue"], bulk
    )

    _run_cli(["import", "auto", str(generated)], hooked)
    # An import that resolved and accrued as it landed leaves nothing owed.
    assert "accrue accrued=0 points=0" in _run_cli(["ledger", "accrue"], hooked)
    both = asyncio.run(_ledger(hooked_url))
    assert sum(kind == "accrual" for kind, _ in both) == accrued
    assert asyncio.run(_ledger(bulk_url)) == both
    assert "problem" not in _run_cli(["ledger", "check"], bulk)
