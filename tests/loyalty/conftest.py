from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from ledger_support import problems
from loyalty_helpers import PROGRAM_TOML, variant

from hub.core.db import Database
from hub.loyalty.program import Program, parse_program


@pytest.fixture(scope="session")
def program() -> Program:
    return parse_program(PROGRAM_TOML)


@pytest.fixture(scope="session")
def with_policy() -> Callable[..., Program]:
    def build(*edits: tuple[str, str]) -> Program:
        return parse_program(variant(*edits))

    return build


@pytest.fixture
async def ledger(db: Database) -> AsyncIterator[Database]:
    """The test database; every ledger invariant must hold when the test is done."""
    yield db
    async with db.read() as session:
        found = await problems(session)
    assert found == [], "ledger invariants broken:\n" + "\n".join(found)
