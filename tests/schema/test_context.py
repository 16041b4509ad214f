"""The request's shared read session: one per operation, closed at its end, safe after errors."""

from __future__ import annotations

import pytest
import strawberry
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hub.app import Services
from hub.core.db import Database
from hub.core.tokens import Principal, Role
from schema.context import RequestReads
from schema.identity.queries import IdentityQuery

AGENT = Principal("a", Role.AGENT)


async def test_a_failed_batch_does_not_poison_the_next_one(db: Database) -> None:
    reads = RequestReads(db)
    reads.shared = True

    async def broken(session: object) -> None:
        await session.execute(text("SELECT no_such_column FROM member"))  # type: ignore[attr-defined]

    async def fine(session: object) -> int:
        return int(await session.scalar(text("SELECT 41 + 1")))  # type: ignore[attr-defined]

    with pytest.raises(DBAPIError):
        await reads.run(broken)
    assert await reads.run(fine) == 42
    await reads.close()
    assert db.engine.sync_engine.pool.checkedout() == 0


async def test_without_the_extension_each_batch_closes_its_own_session(
    services: Services, db: Database
) -> None:
    bare = strawberry.Schema(query=IdentityQuery)  # no SharedReads: nobody would close a share
    result = await bare.execute('{ member(id: "1") { id } }', context_value=services.context(AGENT))
    assert result.errors is None
    assert result.data == {"member": None}
    assert db.engine.sync_engine.pool.checkedout() == 0


async def test_the_shared_session_is_closed_when_the_operation_fails(
    gql_schema: strawberry.Schema, services: Services, db: Database
) -> None:
    result = await gql_schema.execute(
        '{ member(id: "1") { id sourceRecords { id } } nope: member(id: "x") { id } }',
        context_value=services.context(AGENT),
    )
    assert result.data == {"member": None, "nope": None}
    assert db.engine.sync_engine.pool.checkedout() == 0
