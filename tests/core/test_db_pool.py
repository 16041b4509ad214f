"""Pooled connections: handed out without a ping while busy, replaced when they died idle."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

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


async def test_a_recently_used_connection_is_not_pinged_and_a_dead_one_is_recovered(
    database_url: str,
) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, idle_check_s=60)
    killer = Database(database_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(db)
        async with killer.unit_of_work() as session:
            await session.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
        await asyncio.sleep(0.2)
        # Used within the window: handed out without a ping, so the statement meets the dead
        # connection; SQLAlchemy sees the disconnect and invalidates the pool...
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(db)
        assert failed.value.connection_invalidated
        # ...and the next checkout connects afresh.
        assert await _backend_pid(db) != first
    finally:
        await db.dispose()
        await killer.dispose()
