from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from hub.core.db import Database
from hub.core.migrate import downgrade, head_revision, upgrade
from tests.conftest import _admin, _with_database


@pytest.fixture
def empty_database(server_url: str) -> Iterator[str]:
    name = f"hub_mig_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _tables(url: str) -> set[str]:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.read() as session:
            rows = await session.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return set(rows.scalars())
    finally:
        await db.dispose()


def test_migrations_go_up_and_down_on_an_empty_database(empty_database: str) -> None:
    upgrade(empty_database)
    tables = asyncio.run(_tables(empty_database))
    assert {"audit_log", "idempotency_key", "alembic_version"} <= tables
    downgrade(empty_database, "base")
    assert asyncio.run(_tables(empty_database)) == {"alembic_version"}
    upgrade(empty_database)  # and up again: downgrades leave nothing behind that blocks it

    async def at_head() -> None:
        db = Database(empty_database, pool_size=1, max_overflow=0)
        try:
            await db.require_migrated(head_revision())
        finally:
            await db.dispose()

    asyncio.run(at_head())
