"""The per-request GraphQL context: who is calling, the database, and fresh DataLoaders.

DataLoaders read through ``Context.reads``: during an operation (``SharedReads`` below, in
every schema built with ``schema.limits.extensions``) all their batches share one connection,
outside any transaction, so a profile view costs one pool checkout and no BEGIN/ROLLBACK
round trips whatever the number of loaders (each statement sees its own snapshot, as
statements inside a READ COMMITTED transaction do); it goes back to the pool when the
operation ends, also on errors. Without the extension (a bare ``strawberry.Schema`` in a
test) each batch checks out its own, so nothing is ever left checked out.

The loaders' fixed SELECTs go through ``RequestReads.fetch``: straight to that connection's
asyncpg driver, whose own statement cache keeps them prepared. Measured on this machine, a
one-row SELECT cost 480 µs of CPU through ``AsyncSession.execute`` and 165 µs this way; a
profile view (``schema.profile_reads``) runs one, other loaders one per batch. Each statement
is still announced to SQLAlchemy's ``before_cursor_execute``/``after_cursor_execute`` events,
so statement counting and any listener see it as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from strawberry.extensions import SchemaExtension

from hub.core.audit import Actor
from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.settings import Settings
from hub.core.tokens import Principal

T = TypeVar("T")


class RequestReads:
    """One request's reads: a lazily checked-out connection shared by its loaders, one batch at
    a time (a connection runs one statement at a time; batches of one request are
    sub-millisecond, so serialising them costs less than a checkout each)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self._stack: AsyncExitStack | None = None
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # the asyncpg connection under _conn
        self.shared = False

    async def run(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``fn(session)`` on this request's connection, in autocommit."""
        if not self.shared:
            async with self._db.read() as session:
                return await fn(session)
        async with self._lock:
            conn = await self._connection()
            try:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                async with self._db.sessions(bind=conn) as session:
                    return await fn(session)
            except BaseException:
                # A failed statement may leave the connection unusable: later batches get
                # a fresh one.
                await self._close()
                raise

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """Rows of one fixed read-only statement (asyncpg ``$n`` parameters)."""
        if not self.shared:
            async with self._db.engine.connect() as conn:
                return await _fetch(conn, await _driver(conn), sql, args)
        async with self._lock:
            conn = await self._connection()
            try:
                return await _fetch(conn, self._driver, sql, args)
            except BaseException:
                await self._close()
                raise

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            stack = AsyncExitStack()
            conn = await stack.enter_async_context(self._db.engine.connect())
            self._driver = await _driver(conn)
            self._conn, self._stack = conn, stack
        return self._conn

    async def close(self) -> None:
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        stack, self._stack, self._conn, self._driver = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()


async def _driver(conn: AsyncConnection) -> Any:
    # ``connect()`` has checked the DBAPI connection out already: reading it needs no greenlet
    # hop (``get_raw_connection`` takes one, ~100 µs of CPU per request).
    sync = conn.sync_connection
    raw = sync.connection if sync is not None and not sync.closed else None
    if raw is None:
        raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return driver


async def _fetch(conn: AsyncConnection, driver: Any, sql: str, args: tuple[Any, ...]) -> list[Any]:
    """One statement on the connection's asyncpg driver, outside any transaction (nothing
    was begun on it: SQLAlchemy begins lazily, on its own first statement)."""
    sync = conn.sync_connection
    assert sync is not None
    sync.dispatch.before_cursor_execute(sync, None, sql, args, None, False)
    try:
        rows = await driver.fetch(sql, *args)
    except BaseException:
        # Never handed back to the pool: after a failure the driver may be in a state
        # SQLAlchemy did not see (a cancelled query, a server that went away).
        await conn.invalidate()
        raise
    sync.dispatch.after_cursor_execute(sync, None, sql, args, None, False)
    return list(rows)


class SharedReads(SchemaExtension):
    """Share one read session between the loaders of an operation; close it at the end."""

    async def on_operation(self) -> AsyncIterator[None]:
        reads = getattr(self.execution_context.context, "reads", None)
        if not isinstance(reads, RequestReads):
            yield
            return
        reads.shared = True
        try:
            yield
        finally:
            reads.shared = False
            await reads.close()


@dataclass
class Loaders:
    """DataLoaders live one request (named ``<Thing>By<Key>Loader``); domains add theirs here."""

    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    principal: Principal
    db: Database
    settings: Settings
    keyring: KeyRing
    request_id: str | None = None
    loaders: Loaders = field(default_factory=Loaders)
    request: Any = None  # starlette Request over HTTP; None in direct schema.execute tests
    response: Any = None
    reads: RequestReads = field(init=False)

    def __post_init__(self) -> None:
        self.reads = RequestReads(self.db)

    @property
    def actor(self) -> Actor:
        return Actor(id=self.principal.subject, role=self.principal.role or "anonymous")
