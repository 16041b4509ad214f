"""Database: the async engine over asyncpg, the unit of work, and the embedded server.

- ``Database`` owns one ``AsyncEngine`` with bounded pool limits and a statement timeout.
  Pooled connections are checked before reuse only when they sat idle (HikariCP's bypass
  window): a busy pool hands connections straight out, and a connection left over from before
  a database restart (which takes far longer than the window) is replaced, not handed out.
- ``Database.unit_of_work()`` is the only place the hub commits: services take the session it
  yields, do their work, and never commit; leaving the block commits once, an exception rolls
  back everything it did. ``Database.transaction()`` is the same contract without the ORM
  session, for services that only speak to the driver (redemption's database functions): an
  asyncpg connection from the driver's own pool (no greenlet hop through SQLAlchemy's pool),
  its BEGIN sent only when a second statement needs it. ``Database.batcher`` sends concurrent
  calls of one database function together, on the same pool (``hub.core.batch``).
- With no ``HUB_DATABASE_URL``, ``embedded_url`` starts PostgreSQL from the ``pgserver`` package
  under the data folder: the same engine as production, nothing to install.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hub.core.batch import MAX_CALLS, Batcher
from hub.core.errors import DatabaseUnavailable, NotMigrated

log = logging.getLogger(__name__)

_embedded: dict[Path, Any] = {}


def embedded_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``data_dir/pg``; return a plain URL.

    pgserver shares one server between processes using the same folder and stops it when the
    last one exits, so `hub serve`, `hub import` and tests can run side by side.
    """
    pgdata = (data_dir / "pg").resolve()
    if pgdata not in _embedded:
        import pgserver

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _embedded[pgdata] = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(_embedded[pgdata].get_uri())


def async_url(url: str) -> str:
    """Any postgres URL → the asyncpg dialect form SQLAlchemy wants (socket ``host=`` kept)."""
    parts = urlsplit(url)
    scheme = "postgresql+asyncpg"
    query = parse_qs(parts.query)
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query, doseq=True), ""))


def plain_url(url: str) -> str:
    """The libpq/asyncpg form (``postgresql://``) of a URL, for asyncpg and pg_dump."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))


IDLE_CHECK_S = 0.5  # HikariCP's default aliveBypassWindowMs


def _check_idle_connections(engine: AsyncEngine, idle_check_s: float) -> None:
    """Ping a pooled connection on checkout only if it has been idle longer than
    ``idle_check_s``; a failed ping makes the pool discard it and try another.

    ``pool_pre_ping`` pings on every checkout: three round trips with asyncpg (BEGIN, ``;``,
    ROLLBACK), on every DataLoader batch of every request. A connection used moments ago is
    alive, or its server went away so recently that a restart cannot be over yet (then the
    statement fails, SQLAlchemy sees the disconnect and invalidates the whole pool).
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["hub_idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("hub_idle_since")
        if since is None or time.monotonic() - since <= idle_check_s:
            return  # new, or just used
        try:
            dbapi_connection.ping()
        except Exception as exc:  # any failure: the pool replaces the connection
            raise DisconnectionError(f"pooled connection is dead ({type(exc).__name__})") from exc


RECYCLE_S = 1800  # both pools replace a connection this old (SQLAlchemy's pool_recycle)


class _DriverConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection of ``_DriverPool``: when it was opened and when it was last returned."""

    hub_opened_at = 0.0
    hub_idle_since = 0.0
    hub_generation = 0


_EXPIRED = object()  # what a waiter of ``_DriverPool`` is resolved with at its deadline


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_EXPIRED)


class _DriverPool:
    """``Database.transaction``'s connections: plain asyncpg connections, checked out and
    returned without leaving the event loop's current step.

    Through SQLAlchemy's pool a check-out and its return are two hops into a greenlet, and
    asyncpg's own pool returns a connection through a task and an extra loop iteration (and by
    default a reset round trip); here both are a list operation (~65 µs of client CPU per call
    against a few, see bench/README.md). The guarantees of the engine's pool: at most
    ``size`` connections (the engine's ``pool_size + max_overflow``), beyond ``keep`` idle ones
    closed on return; a check-out waits at most ``timeout_s``; connect timeout, statement
    timeout and application name the same; a connection idle longer than the idle-check window
    is pinged before it is handed out and replaced when the ping fails
    (``_check_idle_connections``), one older than ``RECYCLE_S`` is replaced. The caller returns
    a connection only outside a transaction, or says it is not reusable (then it is
    terminated, as the engine's pool invalidates one). ``close`` closes the idle connections
    and those out when they come back; the pool stays usable, like a disposed engine.
    """

    def __init__(
        self,
        url: str,
        *,
        size: int,
        keep: int,
        timeout_s: float,
        idle_check_s: float,
        server_settings: dict[str, str],
    ) -> None:
        self._url = url
        self._size = size
        self._keep = keep
        self._timeout_s = timeout_s
        self._idle_check_s = idle_check_s
        self._server_settings = server_settings
        self._idle: list[Any] = []  # last in, first out: the warmest connection first
        self._open = 0  # open, being opened, or out
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closing: set[asyncio.Task[None]] = set()
        self._generation = 0  # bumped by close: older connections are closed on return

    async def acquire(self) -> Any:
        deadline = time.monotonic() + self._timeout_s
        while True:
            while self._idle:
                conn = self._idle.pop()
                try:
                    usable = await self._usable(conn)
                except BaseException:  # cancelled during the ping
                    self._drop(conn, graceful=False)
                    raise
                if usable:
                    return conn
                self._drop(conn, graceful=True)  # recycled, or dead (then terminated)
            if self._open < self._size:
                return await self._connect()
            conn = await self._wait(deadline)
            if conn is not None:
                return conn

    async def _usable(self, conn: Any) -> bool:
        now = time.monotonic()
        if conn.is_closed() or now - conn.hub_opened_at > RECYCLE_S:
            return False
        if now - conn.hub_idle_since <= self._idle_check_s:
            return True
        try:
            await conn.fetchval("SELECT 1")  # (asyncpg 0.32 fails on the empty query ";")
        except Exception:
            return False
        return True

    async def _connect(self) -> Any:
        self._open += 1
        try:
            conn = await asyncpg.connect(
                dsn=self._url,
                timeout=5,
                server_settings=self._server_settings,
                connection_class=_DriverConnection,
            )
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        conn.hub_opened_at = conn.hub_idle_since = time.monotonic()
        conn.hub_generation = self._generation
        return conn

    async def _wait(self, deadline: float) -> Any:
        """A connection handed over by ``release``, or None when one may be opened now.

        The deadline resolves the waiter itself instead of cancelling the task
        (``asyncio.timeout``): a GraphQL field's first step runs under its parent's task.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(max(0.0, deadline - time.monotonic()), _expire, waiter)
        try:
            handed = await waiter
        except BaseException:  # cancelled while waiting
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._pass_on(waiter.result())  # handed over just as we gave up
            raise
        finally:
            timer.cancel()
        if handed is _EXPIRED:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            raise TimeoutError(
                f"no database connection free within {self._timeout_s:g} s ({self._size} in use)"
            )
        return handed

    def _pass_on(self, handed: Any) -> None:
        if handed is None:
            self._wake()
        elif handed is not _EXPIRED:
            self.release(handed, reusable=True)

    def release(self, conn: Any, *, reusable: bool) -> None:
        if not reusable or conn.is_closed():
            self._drop(conn, graceful=False)
            return
        if conn.hub_generation != self._generation:
            self._drop(conn, graceful=True)
            return
        conn.hub_idle_since = time.monotonic()
        if self._hand(conn):
            return
        if len(self._idle) >= self._keep:
            self._drop(conn, graceful=True)  # an overflow connection, as the engine's pool does
        else:
            self._idle.append(conn)

    def _drop(self, conn: Any, *, graceful: bool) -> None:
        """Close a connection (in the background when ``graceful``) and let a waiter open one
        in its place."""
        self._open -= 1
        if not graceful or conn.is_closed():
            conn.terminate()  # closes the socket at once, sends nothing
        else:
            task = asyncio.get_running_loop().create_task(self._close(conn))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self._wake()

    @staticmethod
    async def _close(conn: Any) -> None:
        try:
            await conn.close(timeout=5)
        except Exception:
            conn.terminate()

    def _wake(self) -> None:
        self._hand(None)  # room to open a connection

    def _hand(self, handed: Any) -> bool:
        """Resolve the longest waiting check-out with ``handed`` (a connection, or None: open
        one); False when nobody is waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False

    async def close(self) -> None:
        self._generation += 1
        idle, self._idle = self._idle, []
        for conn in idle:
            self._drop(conn, graceful=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class Transaction:
    """An asyncpg connection whose transaction ``Database.transaction()`` commits.

    BEGIN is sent lazily, by ``begin()``: a service that is one statement (a redemption
    database function) runs it without, and PostgreSQL makes that statement atomic on its own,
    committed when it succeeds — the same outcome as BEGIN, statement, COMMIT, in one round
    trip instead of three.
    """

    __slots__ = ("_open", "conn")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._open: Any = None

    async def begin(self) -> Any:
        """The connection inside the transaction (begun now if it was not)."""
        if self._open is None:
            opened = self.conn.transaction()
            await opened.start()
            self._open = opened
        return self.conn

    async def _finish(self, *, commit: bool) -> None:
        opened, self._open = self._open, None
        if opened is None or self.conn.is_closed():
            return
        if commit:
            await opened.commit()
        else:
            await opened.rollback()


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 5,
        pool_timeout_s: float = 10.0,
        statement_timeout_ms: int = 30_000,
        idle_check_s: float = IDLE_CHECK_S,
        batch_calls: int = MAX_CALLS,
    ) -> None:
        self.url = plain_url(url)
        server_settings = {
            "statement_timeout": str(statement_timeout_ms),
            "application_name": "member-hub",
        }
        self._driver = _DriverPool(
            self.url,
            size=pool_size + max_overflow,
            keep=pool_size,
            timeout_s=pool_timeout_s,
            idle_check_s=idle_check_s,
            server_settings=server_settings,
        )
        self.engine: AsyncEngine = create_async_engine(
            async_url(url),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout_s,
            pool_recycle=RECYCLE_S,
            connect_args={"server_settings": server_settings, "timeout": 5},
        )
        _check_idle_connections(self.engine, idle_check_s)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Concurrent calls of one database function sent together (``hub.core.batch``);
        # None with ``batch_calls=1``: every call its own statement.
        self.batcher = Batcher(self._driver, max_calls=batch_calls) if batch_calls > 1 else None

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction: commit on normal exit, roll back on any exception."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One transaction on a pooled driver connection: commit on normal exit, roll back on
        any exception (see ``Transaction`` for when BEGIN is sent).

        The connection comes from the driver's pool (``_DriverPool``: the engine's limits, idle
        check, recycling and statement timeout), not the engine's, and without a session's
        bookkeeping: measured with ``bench/redemption.py``, an ORM session's begin, commit and
        close cost more Python time than a redemption's database call, and a check-out through
        the engine's pool two greenlet hops. A connection that broke under it, or whose
        statement a cancellation interrupted, is closed, not returned to the pool.
        """
        conn = await self._driver.acquire()
        tx = Transaction(conn)
        reusable = False
        try:
            try:
                yield tx
            except Exception:
                await tx._finish(commit=False)
                reusable = not conn.is_closed()
                raise
            await tx._finish(commit=True)
            reusable = True
        finally:
            # Closed, a failed commit or rollback, or a cancellation that may have left a
            # statement in flight: the pool opens a new connection in its place.
            self._driver.release(conn, reusable=reusable)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; rolled back on exit so a read can never write by accident."""
        async with self.sessions() as session:
            try:
                yield session
            finally:
                await session.rollback()

    async def ping(self, timeout_s: float = 2.0) -> None:
        try:
            async with asyncio.timeout(timeout_s), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OSError, OperationalError, DBAPIError, TimeoutError, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(f"database unreachable ({exc.__class__.__name__})") from None

    async def schema_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            exists = await conn.scalar(text("SELECT to_regclass('public.alembic_version')"))
            if exists is None:
                return None
            value = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            return str(value) if value is not None else None

    async def require_migrated(self, head: str, known: frozenset[str] = frozenset()) -> None:
        """At ``head``, or at a revision this code does not know (a newer release migrated
        first during a rolling update: old pods must stay ready)."""
        current = await self.schema_revision()
        if current != head and (current is None or current in known):
            raise NotMigrated(
                f"database schema is at {current or 'nothing'}, the code needs {head}: "
                "run `hub migrate` first"
            )

    async def dispose(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        await self._driver.close()
        await self.engine.dispose()


def resolve_url(database_url: str | None, data_dir: Path) -> str:
    return database_url if database_url else embedded_url(data_dir)


def with_database(url: str, name: str) -> str:
    """The same server, another database (tests and benchmarks make throwaway ones)."""
    parts = urlsplit(plain_url(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


async def admin_execute(url: str, *sql: str) -> list[Any]:
    """Run statements outside any transaction (CREATE/DROP DATABASE), one connection."""
    conn = await asyncpg.connect(dsn=plain_url(url))
    try:
        return [await conn.fetch(s) for s in sql]
    finally:
        await conn.close()
