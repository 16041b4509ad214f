"""``hub.core.batch``: concurrent calls of a database function sent together, with the outcome
each would have had alone — on a database of its own with a function that records its calls."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hub.core import batch
from hub.core.batch import MAX_CALLS, Batcher, DbFunction
from hub.core.db import Database, admin_execute, plain_url, with_database

NOTE = DbFunction("note", ("int", "bool", "bool", "float8"))  # n, fail, wait for gate, sleep

SCHEMA = """
CREATE TABLE calls (seq bigserial PRIMARY KEY, n int NOT NULL, xid xid8 NOT NULL
                    DEFAULT pg_current_xact_id());
CREATE TABLE gate (id int PRIMARY KEY);
INSERT INTO gate VALUES (1);
CREATE FUNCTION note(p_n int, p_fail bool, p_wait bool, p_sleep float8)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(p_sleep);
  IF p_wait THEN
    PERFORM 1 FROM gate WHERE id = 1 FOR UPDATE;
  END IF;
  INSERT INTO calls (n) VALUES (p_n);
  IF p_fail THEN
    RAISE EXCEPTION 'call % fails', p_n USING ERRCODE = 'check_violation';
  END IF;
  RETURN 'n' || p_n;
END $$;
"""


@pytest.fixture
async def db(server_url: str) -> AsyncIterator[Database]:
    name = f"hub_batch_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await admin_execute(server_url, f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    database = Database(url, pool_size=4, max_overflow=0)
    try:
        conn = await asyncpg.connect(plain_url(url))
        try:
            await conn.execute(SCHEMA)
        finally:
            await conn.close()
        yield database
    finally:
        await database.dispose()
        await admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _calls(db: Database) -> list[tuple[int, str]]:
    async with db.transaction() as tx:
        rows = await tx.conn.fetch("SELECT n, xid::text FROM calls ORDER BY seq")
    return [(r["n"], r["xid"]) for r in rows]


def _batcher(db: Database) -> Batcher:
    assert db.batcher is not None
    return db.batcher


def _note(
    db: Database,
    n: int,
    *,
    fail: bool = False,
    wait: bool = False,
    sleep: float = 0.0,
    order: int = 0,
):
    return _batcher(db).call(NOTE, (n, fail, wait, sleep), order=order)


@contextlib.asynccontextmanager
async def _gate_locked(db: Database) -> AsyncIterator[None]:
    """The gate's row locked by another transaction for the block's length."""
    holder = await asyncpg.connect(db.url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM gate WHERE id = 1 FOR UPDATE")
            yield
    finally:
        await holder.close()


async def test_calls_made_together_share_one_statement_each_in_its_order(db: Database) -> None:
    values = await asyncio.gather(*(_note(db, n, order=-n) for n in range(4)))
    assert values == [f"n{n}" for n in range(4)]  # each caller its own value
    calls = await _calls(db)
    assert len({xid for _, xid in calls}) == 1  # one transaction
    assert [n for n, _ in calls] == [3, 2, 1, 0]  # run in ``order``
    assert (_batcher(db).stats.statements, _batcher(db).stats.calls) == (1, 4)


async def test_more_calls_go_half_now_and_half_together_next(db: Database) -> None:
    """From SPLIT_FROM calls on, half goes at once and the other half, whole, when it is done
    (the first half's callers work on their answers meanwhile)."""
    values = await asyncio.gather(*(_note(db, n, order=-n) for n in range(12)))
    assert values == [f"n{n}" for n in range(12)]
    calls = await _calls(db)
    first, second = calls[:6], calls[6:]
    assert [n for n, _ in calls] == [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6]  # each in ``order``
    assert len({xid for _, xid in first}) == len({xid for _, xid in second}) == 1
    assert first[0][1] != second[0][1]
    assert (_batcher(db).stats.statements, _batcher(db).stats.calls) == (2, 12)


async def test_the_half_held_back_is_sent_before_the_first_half_resumes(db: Database) -> None:
    """The first half's callers then work on their answers while the second half runs."""
    statements_when_resumed: list[int] = []

    async def one(n: int) -> str:
        value = await _note(db, n)
        statements_when_resumed.append(_batcher(db).stats.statements)
        return value

    assert await asyncio.gather(*(one(n) for n in range(8))) == [f"n{n}" for n in range(8)]
    assert statements_when_resumed == [2] * 8  # the first four resumed after the second went


async def test_a_full_batch_waiting_goes_beside_a_running_one(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "STALL_S", 60.0)  # the running batch never counts as stalled
    running = asyncio.ensure_future(_note(db, 0, sleep=2))  # two seconds on the server
    await asyncio.sleep(0.1)
    fewer = [asyncio.ensure_future(_note(db, n)) for n in range(1, 3)]
    await asyncio.sleep(0.2)
    assert not any(f.done() for f in fewer)  # fewer than a full batch: they wait for it
    more = [_note(db, n) for n in range(3, 1 + MAX_CALLS)]
    # With them a full batch waits: it goes at once, beside the running one.
    assert await asyncio.wait_for(asyncio.gather(*fewer, *more), 1.5) == [
        f"n{n}" for n in range(1, 1 + MAX_CALLS)
    ]
    assert not running.done()
    assert await asyncio.wait_for(running, 20) == "n0"


async def test_a_call_that_fails_its_batch_fails_alone(db: Database) -> None:
    outcomes = await asyncio.gather(
        *(_note(db, n, fail=n == 3) for n in range(8)), return_exceptions=True
    )
    failed = outcomes[3]
    assert isinstance(failed, asyncpg.CheckViolationError)
    assert "call 3 fails" in str(failed)
    assert outcomes[:3] + outcomes[4:] == [f"n{n}" for n in range(8) if n != 3]
    # Its batch (the first half) left nothing; each other call of it then ran once, alone. The
    # second half ran as a batch of its own.
    calls = await _calls(db)
    assert sorted(n for n, _ in calls) == [0, 1, 2, 4, 5, 6, 7]
    assert len({xid for n, xid in calls if n < 4}) == 3
    assert len({xid for n, xid in calls if n >= 4}) == 1
    assert _batcher(db).stats.resent == 4


async def test_a_call_waiting_for_a_lock_does_not_hold_up_its_batch(db: Database) -> None:
    async with _gate_locked(db):
        waiting = asyncio.ensure_future(_note(db, 0, wait=True))
        others = [_note(db, n) for n in range(1, 5)]
        # While the lock is held, the others complete (their batch gave up on the lock and
        # they ran alone); with head-of-line blocking this would time out.
        assert await asyncio.wait_for(asyncio.gather(*others), 20) == ["n1", "n2", "n3", "n4"]
        assert not waiting.done()
    assert await asyncio.wait_for(waiting, 20) == "n0"
    assert sorted(n for n, _ in await _calls(db)) == [0, 1, 2, 3, 4]


async def test_a_call_cancelled_before_it_was_sent_never_runs(db: Database) -> None:
    # Two batches of one, each a second long on the server (the second went beside the first,
    # stalled): the function's two running batches, so the next call waits.
    first = asyncio.ensure_future(_note(db, 1, sleep=1))
    await asyncio.sleep(0.1)
    second = asyncio.ensure_future(_note(db, 2, sleep=1))
    await asyncio.sleep(0.1)
    queued = asyncio.ensure_future(_note(db, 3))
    await asyncio.sleep(0.1)
    assert not queued.done()
    queued.cancel()
    assert await asyncio.wait_for(asyncio.gather(first, second), 20) == ["n1", "n2"]
    assert queued.cancelled()
    assert sorted(n for n, _ in await _calls(db)) == [1, 2]


async def test_a_lone_call_waiting_for_a_lock_does_not_hold_up_the_function(
    db: Database,
) -> None:
    """A batch of one has no lock timeout; once it has been on the server STALL_S, the calls
    waiting for it go beside it."""
    async with _gate_locked(db):
        blocked = asyncio.ensure_future(_note(db, 0, wait=True))
        await asyncio.sleep(0.1)  # sent, and waiting for the lock
        assert await asyncio.wait_for(asyncio.gather(_note(db, 1), _note(db, 2)), 5) == [
            "n1",
            "n2",
        ]
        assert not blocked.done()
    assert await asyncio.wait_for(blocked, 20) == "n0"


async def test_a_batch_that_got_no_answer_is_not_sent_again(db: Database) -> None:
    """Its connection lost mid-statement, a batch may have committed: every caller gets the
    error (a redemption's client retries with its idempotency key), nothing runs twice."""
    calls = asyncio.gather(
        *(_note(db, n, sleep=30 if n == 1 else 0) for n in range(3)), return_exceptions=True
    )
    killer = await asyncpg.connect(db.url)
    try:
        for _ in range(200):
            killed = await killer.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'SELECT ARRAY[note(%' AND pid <> pg_backend_pid()"
            )
            if killed:
                break
            await asyncio.sleep(0.05)
        assert killed
    finally:
        await killer.close()
    outcomes = await asyncio.wait_for(calls, 20)
    lost = (asyncpg.PostgresConnectionError, asyncpg.exceptions.AdminShutdownError)
    assert all(isinstance(o, lost) for o in outcomes), outcomes
    assert _batcher(db).stats.resent == 0
    assert await _calls(db) == []  # the server rolled it back, and nothing was sent again


async def test_close_answers_every_call_made_before_it(db: Database) -> None:
    pending = [asyncio.ensure_future(_note(db, n)) for n in range(20)]
    await asyncio.sleep(0)  # the calls are queued, the first batch not yet sent
    await _batcher(db).close()
    assert all(p.done() for p in pending)
    assert [p.result() for p in pending] == [f"n{n}" for n in range(20)]
    assert len(await _calls(db)) == 20
    assert await _note(db, 20) == "n20"  # still usable, as a disposed pool is


def test_a_call_must_give_every_argument() -> None:
    batcher = Batcher(pool=None, max_calls=4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="note takes 4 arguments, not 3"):
        asyncio.run(batcher.call(NOTE, (1, False, False)))


def test_one_call_per_batch_means_no_batcher(database_url: str) -> None:
    assert Database(database_url, batch_calls=1).batcher is None
