"""Shared fixtures: a real PostgreSQL for every test that needs one.

The server is ``HUB_TEST_DATABASE_URL`` when set, otherwise an embedded one (pgserver) under
``.hub/test-pg``. Each pytest run creates its own database (so parallel runs never collide),
migrates it to head once, and empties the tables after every test that used it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from hub.core.db import Database, admin_execute, embedded_url, with_database
from hub.core.migrate import upgrade
from hub.core.pii import KeyRing
from hub.core.settings import Env, Settings

ROOT = Path(__file__).resolve().parent.parent
TEST_KEYS = {
    "hash_keys": {"h1": base64.urlsafe_b64encode(b"h" * 32).decode()},
    "hash_key_id": "h1",
    "enc_keys": {"k1": base64.urlsafe_b64encode(b"k" * 32).decode()},
    "enc_key_id": "k1",
}
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"


# Kept under these names: many tests import them from here.
_with_database = with_database


async def _admin(url: str, sql: str) -> None:
    await admin_execute(url, sql)


@pytest.fixture(scope="session")
def server_url() -> str:
    return os.environ.get("HUB_TEST_DATABASE_URL") or embedded_url(ROOT / ".hub" / "test-pg")


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A database of its own on the test server, migrated to head, dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        url = _with_database(server_url, name)
        upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    with scratch_database(server_url, "hub_test") as url:
        yield url


@pytest.fixture(scope="session")
def keyring() -> KeyRing:
    return KeyRing.from_mapping(TEST_KEYS)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env=Env.TEST,
        database_url=database_url,
        data_dir=tmp_path / "data",
        jwt_secret=JWT_SECRET,  # type: ignore[arg-type]
        hash_keys=TEST_KEYS["hash_keys"],
        hash_key_id="h1",
        encryption_keys=TEST_KEYS["enc_keys"],
        encryption_key_id="k1",
        log_json=True,
    )


async def _truncate_all(db: Database) -> None:
    """Empty every table (the next test starts from nothing). Loyalty accounts refuse a
    TRUNCATE (migration 0026): its trigger is off for this transaction only."""
    async with db.unit_of_work() as session:
        tables = (
            (
                await session.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            )
            .scalars()
            .all()
        )
        if tables:
            guard = "TRIGGER loyalty_account_no_truncate"
            await session.execute(text(f"ALTER TABLE loyalty_account DISABLE {guard}"))
            await session.execute(
                text(
                    "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
                )
            )
            await session.execute(text(f"ALTER TABLE loyalty_account ENABLE {guard}"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=5, max_overflow=5)
    try:
        yield database
    finally:
        await _truncate_all(database)
        await database.dispose()


@pytest.fixture(scope="session")
def span_exporter() -> Any:
    """Every span the process emits, in memory (telemetry is process-wide, set up once)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from hub.core.telemetry import setup_telemetry

    exporter = InMemorySpanExporter()
    setup_telemetry(span_exporter=exporter)
    return exporter
