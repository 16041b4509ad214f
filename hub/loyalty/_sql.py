"""The asyncpg connection under a session's transaction, for the ledger's set-based writes.

Writes go through asyncpg directly (array parameters, ``unnest`` inserts, one round trip per
statement; redemption calls one PL/pgSQL function per service, migrations 0008 and 0010);
reads that GraphQL counts go through the SQLAlchemy session. Both share the one connection and
transaction of the caller's unit of work.

``Tx`` is what ledger services take: an ORM session (``Database.unit_of_work``) or, where
nothing but the driver is needed, a bare ``Transaction`` (``Database.transaction``, what
``redemption.run_redemption`` gives its work). ``driver`` always answers inside the
transaction; ``one_statement`` is for a service whose whole work is a single statement (a
redemption database function), which on a bare ``Transaction`` then runs without BEGIN and
COMMIT around it — atomic and committed all the same.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import Transaction

_KEY = "hub.loyalty.driver"

Tx = AsyncSession | Transaction


async def one_statement(session: Tx) -> Any:
    """The asyncpg connection for a service that runs exactly one statement: outside a
    transaction when none was begun on a bare ``Transaction`` (the statement commits itself),
    else inside it."""
    if isinstance(session, Transaction):
        return session.conn
    return await driver(session)


async def driver(session: Tx) -> Any:
    """The raw asyncpg connection, inside the session's (already begun) transaction."""
    if isinstance(session, Transaction):
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
