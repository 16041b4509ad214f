"""Pooled connections: handed out without a ping while busy, replaced when they died idle."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, text

from hub.core.db import Database


async def _backend_pid(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(text("SELECT pg_backend_pid()")))


async def test_a_connection_that_died_while_idle_is_replaced_not_handed_out(
    database_url: str,
) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, idle_check_s=0.05)
    killer = Database(database_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(db)
        async with killer.unit_of_work() as session:
            await session.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
        await asyncio.sleep(0.2)  # idle past the window: checked before reuse
        second = await _backend_pid(db)  # would raise if the dead connection were handed out
        assert second != first
    finally:
        await db.dispose()
        await killer.dispose()


async def test_a_busy_pool_hands_connections_out_without_pinging(database_url: str) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, idle_check_s=60)
    statements: list[str] = []
    event.listen(
        db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2])
    )
    pings: list[int] = []
    try:
        await _backend_pid(db)
        raw = db.engine.sync_engine.pool
        event.listen(raw, "checkout", lambda *a: pings.append(1))
        for _ in range(5):
            await _backend_pid(db)
        assert len(pings) == 5  # five checkouts...
        assert statements.count("SELECT pg_backend_pid()") == 6  # ...and only our statements
        assert not db.engine.sync_engine.pool._pre_ping  # type: ignore[attr-defined]
    finally:
        await db.dispose()
