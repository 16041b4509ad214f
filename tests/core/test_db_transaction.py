"""``Database.transaction``: a driver connection whose BEGIN is sent only when asked for."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from hub.core.db import Database


async def _members(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(text("SELECT count(*) FROM member")))


async def test_a_begun_transaction_commits_every_statement_or_none(db: Database) -> None:
    async with db.transaction() as tx:
        conn = await tx.begin()
        await conn.execute("INSERT INTO member DEFAULT VALUES")
        await conn.execute("INSERT INTO member DEFAULT VALUES")
    assert await _members(db) == 2

    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            conn = await tx.begin()
            await conn.execute("INSERT INTO member DEFAULT VALUES")
            assert conn.is_in_transaction()
            raise RuntimeError("after the insert")
    assert await _members(db) == 2


async def test_one_statement_without_begin_is_atomic_and_commits_itself(db: Database) -> None:
    async with db.transaction() as tx:
        assert not tx.conn.is_in_transaction()
        await tx.conn.execute("INSERT INTO member SELECT FROM generate_series(1, 3)")
    assert await _members(db) == 3

    with pytest.raises(Exception, match="division by zero"):
        async with db.transaction() as tx:
            # One statement fails as a whole: none of its rows stay.
            await tx.conn.execute(
                "INSERT INTO member SELECT FROM generate_series(1, 3) g WHERE 1 / (3 - g) >= 0"
            )
    assert await _members(db) == 3


async def test_a_connection_that_died_in_a_transaction_is_not_handed_out_again(
    database_url: str,
) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, idle_check_s=60)
    try:
        async with db.transaction() as tx:
            first = await tx.conn.fetchval("SELECT pg_backend_pid()")
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
            async with db.transaction() as tx:
                conn = await tx.begin()
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        async with db.transaction() as tx:
            second = await tx.conn.fetchval("SELECT pg_backend_pid()")
        assert second != first
    finally:
        await db.dispose()


async def test_a_statement_cut_off_by_cancellation_leaves_no_busy_connection_behind(
    database_url: str,
) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, idle_check_s=60)

    async def slow() -> None:
        async with db.transaction() as tx:
            await tx.conn.execute("SELECT pg_sleep(30)")

    try:
        task = asyncio.create_task(slow())
        await asyncio.sleep(0.3)  # let the statement start
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with db.transaction() as tx:  # the pool's one connection: a fresh one
            assert await tx.conn.fetchval("SELECT 1") == 1
    finally:
        await db.dispose()


async def _backend(db: Database) -> int:
    async with db.transaction() as tx:
        return int(await tx.conn.fetchval("SELECT pg_backend_pid()"))


async def test_an_idle_connection_whose_server_went_away_is_replaced_not_handed_out(
    database_url: str,
) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, idle_check_s=0)
    try:
        first = await _backend(db)
        async with db.read() as session:
            await session.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
        await asyncio.sleep(0.05)  # idle past the (zero) window: checked before it is used
        second = await _backend(db)
        assert second != first
        assert await _backend(db) == second  # a live one is kept
    finally:
        await db.dispose()


async def test_a_full_pool_makes_the_next_transaction_wait_for_a_returned_connection(
    database_url: str,
) -> None:
    db = Database(database_url, pool_size=1, max_overflow=1, pool_timeout_s=5)
    try:
        release = asyncio.Event()
        started: list[int] = []
        both = asyncio.Barrier(3)

        async def hold() -> None:
            async with db.transaction() as tx:
                started.append(int(await tx.conn.fetchval("SELECT pg_backend_pid()")))
                await both.wait()
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        await both.wait()
        waiting = asyncio.create_task(_backend(db))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # both connections are out: it waits
        release.set()
        await asyncio.gather(*holders)
        assert await waiting in started  # it got one of the two back
    finally:
        await db.dispose()


async def test_a_transaction_that_finds_no_free_connection_in_time_fails(
    database_url: str,
) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, pool_timeout_s=0.2)
    try:
        async with db.transaction():
            with pytest.raises(TimeoutError):
                await _backend(db)
        assert await _backend(db) > 0  # the pool is whole again
    finally:
        await db.dispose()


async def test_connections_beyond_the_pool_size_are_closed_when_returned(
    database_url: str,
) -> None:
    db = Database(database_url, pool_size=1, max_overflow=2)
    try:
        release = asyncio.Event()
        pids: list[int] = []
        all_out = asyncio.Barrier(4)

        async def hold() -> None:
            async with db.transaction() as tx:
                pids.append(int(await tx.conn.fetchval("SELECT pg_backend_pid()")))
                await all_out.wait()
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(3)]
        await all_out.wait()
        release.set()
        await asyncio.gather(*holders)
        alive = len(pids)
        for _ in range(100):  # the overflow connections close in the background
            async with db.read() as session:
                alive = await session.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"), {"p": pids}
                )
            if alive == 1:
                break
            await asyncio.sleep(0.05)
        assert alive == 1
    finally:
        await db.dispose()
