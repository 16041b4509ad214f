from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from hub.core.db import Database
from hub.identity_cli import identity_app
from tests.conftest import TEST_KEYS
from tests.identity_store.conftest import Land, partition, person, phone

runner = CliRunner()


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "HUB_ENV": "test",
        "COLUMNS": "200",
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_DATABASE_URL": database_url,
        "HUB_HASH_KEYS": json.dumps(TEST_KEYS["hash_keys"]),
        "HUB_HASH_KEY_ID": "h1",
        "HUB_ENCRYPTION_KEYS": json.dumps(TEST_KEYS["enc_keys"]),
        "HUB_ENCRYPTION_KEY_ID": "k1",
    }


def test_evaluate_prints_the_quality_line(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(
        "source,source_id,name,phone,date_of_birth\n"
        "a,1,Jia Ceshi,13800001111,1990-01-02\n"
        "b,2,Jia Ceshi,13800001111,1990-01-02\n"
        "a,3,Yi Yangli,13800002222,1985-03-04\n",
        encoding="utf-8",
    )
    (tmp_path / "t.csv").write_text("source_id_a,source_id_b\n1,2\n", encoding="utf-8")
    result = runner.invoke(
        identity_app,
        ["evaluate", "--records", str(tmp_path / "r.csv"), "--truth", str(tmp_path / "t.csv")],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("precision=")
    assert "recall=" in result.stdout


async def test_resolve_and_review_list_run_against_the_database(
    db: Database, land: Land, database_url: str, tmp_path: Path
) -> None:
    await land(
        [
            person("app", "u1", phone("+8613800003333"), ("id_document", "PASSPORT:E1")),
            person("hotel", "h1", phone("+8613800003333"), ("id_document", "PASSPORT:E2")),
        ]
    )
    before = await partition(db)
    env = _env(database_url, tmp_path)
    resolved = await asyncio.to_thread(runner.invoke, identity_app, ["resolve"], env=env)
    assert resolved.exit_code == 0, resolved.output
    assert "records=2 attached=0 merged=0 moved=0" in resolved.stdout
    assert await partition(db) == before
    listed = await asyncio.to_thread(runner.invoke, identity_app, ["review", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "conflicting_strong_keys" in listed.stdout
    assert "1 open item(s)" in listed.stdout
    assert "3333" not in listed.stdout
