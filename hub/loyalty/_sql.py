"""The asyncpg connection under a session's transaction, for the ledger's set-based writes.

Writes go through asyncpg directly (array parameters, ``unnest`` inserts, one round trip per
statement; redemption calls one PL/pgSQL function per service, migrations 0008 and 0010);
reads that GraphQL counts go through the SQLAlchemy session. Both share the one connection and
transaction of the caller's unit of work.

``Tx`` is what ledger services take: an ORM session (``Database.unit_of_work``), a bare
``Transaction`` (``Database.transaction``), or a ``Deferred`` one (what
``redemption.run_redemption`` gives its work: nothing is opened until the service asks).
``driver`` always answers inside the transaction. ``call`` is for a service whose whole work
is one database function (a redemption's hold, capture or cancel): on a ``Deferred``
transaction nobody began, the call goes through the database's ``Batcher`` with the calls
other tasks are making at the same moment (``hub.core.batch``); on a bare ``Transaction`` it
runs as a statement of its own, without BEGIN and COMMIT around it — atomic and committed all
the same; in a begun transaction, inside it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from contextlib import AsyncExitStack
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.batch import DbFunction
from hub.core.db import Database, Transaction

_KEY = "hub.loyalty.driver"


class Deferred:
    """A transaction opened only if its service needs one (``driver``): a service that is one
    database function (``call``) runs it batched instead. The transaction, once opened, is
    ``Database.transaction``'s, entered on ``stack``, which commits or rolls it back."""

    __slots__ = ("_stack", "_tx", "db")

    def __init__(self, db: Database, stack: AsyncExitStack) -> None:
        self.db = db
        self._stack = stack
        self._tx: Transaction | None = None

    @property
    def opened(self) -> bool:
        """Whether it holds a connection (``connection`` or ``begin`` was called)."""
        return self._tx is not None

    async def _transaction(self) -> Transaction:
        if self._tx is None:
            self._tx = await self._stack.enter_async_context(self.db.transaction())
        return self._tx

    async def connection(self) -> Any:
        """Its connection, BEGIN not sent (a statement on it alone commits itself)."""
        return (await self._transaction()).conn

    async def begin(self) -> Any:
        """Its connection inside the transaction (begun now if it was not)."""
        return await (await self._transaction()).begin()


Tx = AsyncSession | Transaction | Deferred


async def call(session: Tx, fn: DbFunction, args: Sequence[Any], *, order: int = 0) -> Any:
    """``fn(*args)``'s value, for a service whose whole work is that one call: batched with
    other tasks' calls on a ``Deferred`` transaction nobody began (``order``: the lock key the
    batch sorts by, e.g. the member), a statement of its own on a bare ``Transaction`` nobody
    began, else inside the transaction."""
    if isinstance(session, Deferred):
        if not session.opened and session.db.batcher is not None:
            return await session.db.batcher.call(fn, args, order=order)
        conn = await session.connection()
    elif isinstance(session, Transaction):
        conn = session.conn
    else:
        conn = await driver(session)
    return await conn.fetchval(fn.sql, *args)


async def driver(session: Tx) -> Any:
    """The raw asyncpg connection, inside the session's (already begun) transaction."""
    if isinstance(session, Transaction | Deferred):
        return await session.begin()
    conn = await session.connection()
    cached = session.info.get(_KEY)
    if cached is not None and cached[0] is conn and cached[1].is_in_transaction():
        return cached[1]
    raw = await conn.get_raw_connection()
    apg = raw.driver_connection
    if apg is not None and not apg.is_in_transaction():
        await _begin(conn, raw.dbapi_connection)
    if apg is None or not apg.is_in_transaction():
        raise RuntimeError("ledger writes must run inside the unit of work's transaction")
    session.info[_KEY] = (conn, apg)
    return apg


async def _begin(conn: Any, adapted: Any) -> None:
    """Begin the unit of work's transaction on the asyncpg connection.

    SQLAlchemy's asyncpg adapter begins lazily, on its first statement, and owns the
    transaction it begins (its commit and rollback act on it). Asking the adapter to begin
    costs one BEGIN; running a throwaway ``SELECT 1`` through it (the fallback, should the
    adapter's internals change) costs that query on top, on every unit of work.
    """
    start = getattr(adapted, "_start_transaction", None)
    mutex = getattr(adapted, "_execute_mutex", None)
    if start is None or mutex is None or getattr(adapted, "_transaction", False) is not None:
        await conn.execute(text("SELECT 1"))
        return
    async with mutex:
        await start()


def as_json(value: object) -> dict[str, Any]:
    """asyncpg returns jsonb as text unless a codec is set; accept both."""
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return dict(value) if isinstance(value, dict) else {}


def has_sqlstate(exc: BaseException, states: Collection[str]) -> bool:
    """Whether ``exc`` is, or was caused by, a database error with one of ``states`` (asyncpg
    raises it as itself; SQLAlchemy wraps it, keeping it as ``orig`` and the cause)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        for candidate in (seen, getattr(seen, "orig", None)):
            if getattr(candidate, "sqlstate", None) in states:
                return True
        seen = seen.__cause__
    return False
