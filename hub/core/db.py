"""Database: the async engine over asyncpg, the unit of work, and the embedded server.

- ``Database`` owns one ``AsyncEngine`` with bounded pool limits and a statement timeout.
- ``Database.unit_of_work()`` is the only place the hub commits: services take the session it
  yields, do their work, and never commit; leaving the block commits once, an exception rolls
  back everything it did.
- With no ``HUB_DATABASE_URL``, ``embedded_url`` starts PostgreSQL from the ``pgserver`` package
  under the data folder: the same engine as production, nothing to install.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 5,
        pool_timeout_s: float = 10.0,
        statement_timeout_ms: int = 30_000,
    ) -> None:
        self.url = plain_url(url)
        self.engine: AsyncEngine = create_async_engine(
            async_url(url),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout_s,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={
                "server_settings": {
                    "statement_timeout": str(statement_timeout_ms),
                    "application_name": "member-hub",
                },
                "timeout": 5,
            },
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction: commit on normal exit, roll back on any exception."""
        async with self.sessions() as session, session.begin():
            yield session

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
