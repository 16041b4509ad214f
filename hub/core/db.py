"""Database: the async engine over asyncpg, the unit of work, and the embedded server.

- ``Database`` owns one ``AsyncEngine`` with bounded pool limits and a statement timeout.
  Pooled connections are checked before reuse only when they sat idle (HikariCP's bypass
  window): a busy pool hands connections straight out, and a connection left over from before
  a database restart (which takes far longer than the window) is replaced, not handed out.
- ``Database.unit_of_work()`` is the only place the hub commits: services take the session it
  yields, do their work, and never commit; leaving the block commits once, an exception rolls
  back everything it did. ``Database.transaction()`` is the same contract without the ORM
  session, for services that only speak to the driver (redemption's database functions): a
  pooled connection's asyncpg connection, its BEGIN sent only when a second statement needs it.
- With no ``HUB_DATABASE_URL``, ``embedded_url`` starts PostgreSQL from the ``pgserver`` package
  under the data folder: the same engine as production, nothing to install.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
from sqlalchemy.util.concurrency import greenlet_spawn

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
    ) -> None:
        self.url = plain_url(url)
        self.engine: AsyncEngine = create_async_engine(
            async_url(url),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout_s,
            pool_recycle=1800,
            connect_args={
                "server_settings": {
                    "statement_timeout": str(statement_timeout_ms),
                    "application_name": "member-hub",
                },
                "timeout": 5,
            },
        )
        _check_idle_connections(self.engine, idle_check_s)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction: commit on normal exit, roll back on any exception."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One transaction on a pooled connection, straight on the driver: commit on normal
        exit, roll back on any exception (see ``Transaction`` for when BEGIN is sent).

        The same pool, limits, idle check and statement timeout as ``unit_of_work``, without
        the session's bookkeeping: measured with ``bench/redemption.py``, an ORM session's
        begin, commit and close cost more Python time than a redemption's database call.
        A connection that broke under it, or whose statement a cancellation interrupted, is
        invalidated, not returned to the pool.
        """
        pooled = await self.engine.raw_connection()
        conn = pooled.driver_connection
        if conn is None:  # pragma: no cover - a checked-out connection always has one
            await greenlet_spawn(pooled.close)
            raise DatabaseUnavailable("the pool handed out a closed connection")
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
            # statement in flight: the pool gets a new connection in its place.
            if not reusable:
                await greenlet_spawn(pooled.invalidate)
            await greenlet_spawn(pooled.close)

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
