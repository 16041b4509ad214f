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


async def _sql(url: str, *statements: str) -> list[list[tuple[object, ...]]]:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.unit_of_work() as session:
            return [[tuple(r) for r in (await session.execute(text(s))).all()] for s in statements]
    finally:
        await db.dispose()


def test_history_written_on_change_goes_back_to_every_state_on_downgrade(
    empty_database: str,
) -> None:
    """0021: a row's history holds the states it left; downgraded, every state is in it again,
    as the code before 0021 reads it."""
    upgrade(empty_database)
    insert = (
        "INSERT INTO activity (source, external_id, kind, business_line, amount_fen, quantity, "
        "occurred_at, status, content_hash) VALUES ('pos', '{ext}', 'purchase', 'store', 100, 1, "
        "now(), 'pending', 'h1') RETURNING 1"
    )
    asyncio.run(
        _sql(
            empty_database,
            insert.format(ext="changed"),
            insert.format(ext="unchanged"),
            "UPDATE activity SET status = 'confirmed', content_hash = 'h2' "
            "WHERE external_id = 'changed' RETURNING 1",
        )
    )
    events = "SELECT a.external_id, e.status FROM activity_event e JOIN activity a ON a.id = e.activity_id ORDER BY 1, 2"
    assert asyncio.run(_sql(empty_database, events)) == [[("changed", "pending")]]
    downgrade(empty_database, "0020")
    assert asyncio.run(_sql(empty_database, events)) == [
        [("changed", "confirmed"), ("changed", "pending"), ("unchanged", "pending")]
    ]
    upgrade(empty_database)


async def _plans(url: str, statements: list[str], *args: object) -> list[str]:
    """Each statement's plan (not run) on analysed tables, sequential scans priced out: what
    index can serve it."""
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.unit_of_work() as session:
            conn = await session.connection()
            await conn.execute(text("ANALYZE"))
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            return [
                "\n".join(r[0] for r in await raw.fetch(f"EXPLAIN {s}", *args)) for s in statements
            ]
    finally:
        await db.dispose()


def test_activities_are_found_by_person_through_an_index_after_0023(empty_database: str) -> None:
    """0023: ``activity_person`` is a hash index on ``source_key`` (cheaper to write than the
    B-tree on ``(source, source_key)``) and still serves the two readers of a person's
    activities; ``source_identifier_hash``, which no query read, is gone. Down and up again,
    the B-tree comes back and goes."""
    from hub.flows.erasure import REKEY_ACTIVITIES
    from hub.loyalty.accrual import ACTIVITIES_OF

    def indexes() -> dict[str, str]:
        rows = asyncio.run(
            _sql(
                empty_database,
                "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN "
                "('activity_person', 'source_identifier_hash')",
            )
        )[0]
        return {str(name): str(definition) for name, definition in rows}

    upgrade(empty_database)
    assert list(indexes()) == ["activity_person"]
    assert "USING hash (source_key)" in indexes()["activity_person"]
    # 2,000 orders of 500 buyers, analysed: the plans are chosen on real statistics.
    asyncio.run(
        _sql(
            empty_database,
            "INSERT INTO activity (source, external_id, kind, business_line, source_key, "
            "amount_fen, quantity, occurred_at, status, content_hash) "
            "SELECT 'taobao', 'o' || i, 'purchase', 'taobao', 'buyer' || (i % 500), 100, 1, "
            "now(), 'confirmed', 'h' || i FROM generate_series(1, 2000) i RETURNING 1",
        )
    )
    for plan in asyncio.run(_plans(empty_database, [ACTIVITIES_OF, REKEY_ACTIVITIES], [1, 2])):
        assert "on activity_person" in plan, plan
        assert "Seq Scan on activity" not in plan, plan
    downgrade(empty_database, "0022")
    assert "btree (source, source_key)" in indexes()["activity_person"]
    assert "source_identifier_hash" in indexes()
    upgrade(empty_database)
    assert list(indexes()) == ["activity_person"]
