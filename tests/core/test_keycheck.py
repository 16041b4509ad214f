"""A keyring other than the one the data was written under is refused before any work."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from hub.core.db import Database
from hub.core.errors import NotMigrated
from hub.core.keycheck import KeyringMismatch, check_ready, check_values, verify_keyring
from hub.core.pii import KeyRing
from hub.core.settings import Settings
from tests.conftest import TEST_KEYS, _admin, _with_database, scratch_database


def _ring(hash_keys: dict[str, bytes], enc_keys: dict[str, bytes]) -> KeyRing:
    return KeyRing(hash_keys, sorted(hash_keys)[-1], enc_keys, sorted(enc_keys)[-1])


A = _ring({"h1": b"a" * 32}, {"k1": b"b" * 32})


@pytest.fixture(scope="module")
def fresh_url(server_url: str) -> Iterator[str]:
    with scratch_database(server_url, "hub_keys") as url:
        yield url


@pytest.fixture
async def fresh(fresh_url: str) -> Iterator[Database]:  # type: ignore[misc]
    db = Database(fresh_url, pool_size=1, max_overflow=0)
    try:
        async with db.unit_of_work() as session:
            await session.execute(text("TRUNCATE keyring_check"))
        yield db
    finally:
        await db.dispose()


async def _recorded(db: Database) -> dict[tuple[str, str], bytes]:
    async with db.read() as session:
        rows = await session.execute(text("SELECT kind, key_id, check_value FROM keyring_check"))
        return {(k, i): bytes(v) for k, i, v in rows}


def test_check_values_tell_keys_apart_and_reveal_nothing() -> None:
    values = check_values(A)
    assert set(values) == {("hash", "h1"), ("encryption", "k1")}
    assert all(len(v) == 16 for v in values.values())
    assert check_values(_ring({"h1": b"a" * 32}, {"k1": b"b" * 32})) == values
    other = check_values(_ring({"h1": b"c" * 32}, {"k1": b"b" * 32}))
    assert other[("hash", "h1")] != values[("hash", "h1")]
    assert other[("encryption", "k1")] == values[("encryption", "k1")]


async def test_first_use_records_the_keys_and_the_same_ring_passes_again(fresh: Database) -> None:
    await verify_keyring(fresh, A, source="test")
    assert await _recorded(fresh) == check_values(A)
    await verify_keyring(fresh, A, source="test")
    assert await _recorded(fresh) == check_values(A)


async def test_another_key_under_a_known_id_is_refused_and_named(fresh: Database) -> None:
    await verify_keyring(fresh, A, source="test")
    wrong = _ring({"h1": b"x" * 32}, {"k1": b"b" * 32})
    with pytest.raises(KeyringMismatch) as caught:
        await verify_keyring(fresh, wrong, source="/somewhere/keys.json")
    message = caught.value.message
    assert "hash key 'h1'" in message
    assert "encryption key" not in message  # k1 is the same key
    assert "/somewhere/keys.json" in message
    assert caught.value.code == "KEYRING_MISMATCH"
    assert await _recorded(fresh) == check_values(A)  # nothing recorded for the wrong ring


async def test_a_rotation_adds_its_new_key_ids(fresh: Database) -> None:
    await verify_keyring(fresh, A, source="test")
    rotated = _ring({"h1": b"a" * 32, "h2": b"d" * 32}, {"k1": b"b" * 32, "k2": b"e" * 32})
    await verify_keyring(fresh, rotated, source="test")
    assert await _recorded(fresh) == check_values(rotated)
    await verify_keyring(fresh, A, source="test")  # the older ring is still a subset


def test_import_from_another_folder_with_a_generated_keyring_is_refused(
    fresh_url: str, tmp_path: Path
) -> None:
    """`hub import` run where no keys are configured makes a keyring in ./.hub: against a
    database written under other keys it stops before reading a row, and says why."""
    asyncio.run(_admin(fresh_url, "TRUNCATE keyring_check"))
    drop = tmp_path / "drop"  # a folder: its unrecognised file is reported, not an exit 1
    drop.mkdir()
    (drop / "members.csv").write_text("a,b\n1,2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATABASE_URL"] = fresh_url
    configured = {
        **env,
        "HUB_HASH_KEYS": json.dumps({"h1": TEST_KEYS["hash_keys"]["h1"]}),
        "HUB_ENCRYPTION_KEYS": json.dumps({"k1": TEST_KEYS["enc_keys"]["k1"]}),
    }
    hub = [sys.executable, "-m", "hub.cli", "import", "auto", str(drop)]
    first = subprocess.run(hub, env=configured, cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    second = subprocess.run(hub, env=env, cwd=elsewhere, capture_output=True, text=True)
    out = (second.stdout + second.stderr).replace("\n", " ")
    assert second.returncode == 1, out
    assert "written under other keys" in out
    assert "keys.json" in out
    generated = json.loads((elsewhere / ".hub" / "keys.json").read_text())
    assert generated["hash_keys"]["h1"] not in out  # names the key, never shows it


async def test_check_ready_refuses_an_unmigrated_database_then_a_foreign_keyring(
    server_url: str, fresh: Database, settings: Settings
) -> None:
    """What `hub serve`, `hub import` and `hub identity resolve` check first, in one place."""
    name = f"hub_keys_bare_{os.getpid()}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    bare = Database(_with_database(server_url, name), pool_size=1, max_overflow=0)
    try:
        with pytest.raises(NotMigrated):
            await check_ready(bare, settings)
    finally:
        await bare.dispose()
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    keyring = await check_ready(fresh, settings)
    assert await _recorded(fresh) == check_values(keyring)
    other = settings.model_copy(update={"hash_keys": {"h1": "b" * 43 + "="}})
    with pytest.raises(KeyringMismatch):
        await check_ready(fresh, other)
