"""The per-request GraphQL context: who is calling, the database, and fresh DataLoaders.

DataLoaders read through ``Context.reads``: during an operation (``SharedReads`` below, in
every schema built with ``schema.limits.extensions``) all their batches share one connection
in autocommit (``Database.read_statements``), so a profile view costs one pool checkout and
no BEGIN/ROLLBACK round trips whatever the number of loaders; it goes back to the pool when
the operation ends, also on errors. Without the extension (a bare ``strawberry.Schema`` in a
test) each batch opens its own ``read()`` session, so nothing is ever left checked out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import SchemaExtension

from hub.core.audit import Actor
from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.settings import Settings
from hub.core.tokens import Principal

T = TypeVar("T")


class RequestReads:
    """One request's reads: a lazily opened session shared by its loaders, one batch at a time
    (a session is not safe for concurrent use; batches of one request are sub-millisecond, so
    serialising them costs less than a checkout each)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self._stack: AsyncExitStack | None = None
        self._session: AsyncSession | None = None
        self.shared = False

    async def run(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``fn(session)`` on this request's read session."""
        if not self.shared:
            async with self._db.read() as session:
                return await fn(session)
        async with self._lock:
            if self._session is None:
                stack = AsyncExitStack()
                self._session = await stack.enter_async_context(self._db.read_statements())
                self._stack = stack
            try:
                return await fn(self._session)
            except BaseException:
                # A failed statement aborts the transaction: later batches get a fresh one.
                await self._close()
                raise

    async def close(self) -> None:
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            await stack.aclose()


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
