from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.core.db import Database
from hub.loyalty.program import Program
from tests.redemption.support import problems
from tests.redemption.support import program as build_program


@pytest.fixture(scope="session")
def program() -> Program:
    return build_program()


@pytest.fixture
async def ledger(db: Database) -> AsyncIterator[Database]:
    """The test database; every ledger and redemption invariant must hold afterwards."""
    yield db
    async with db.read() as session:
        found = await problems(session)
    assert found == [], "invariants broken:\n" + "\n".join(found)
