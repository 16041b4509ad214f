from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import strawberry

from hub.app import Services, create_app
from hub.core.db import Database
from hub.core.settings import Settings
from hub.core.tokens import ANONYMOUS, Principal, Role, issue_token
from schema import build_schema
from schema.context import Context
from tests.conftest import JWT_SECRET

PRINCIPALS: dict[str, Principal] = {
    "anonymous": ANONYMOUS,
    "member": Principal(subject="m-1", role=Role.MEMBER, member_id=1),
    "partner": Principal(subject="pos-1", role=Role.PARTNER, business_line="store"),
    "agent": Principal(subject="agent-1", role=Role.AGENT, business_line="hotel"),
    "admin": Principal(subject="admin-1", role=Role.ADMIN),
}


@pytest.fixture(scope="session")
def gql_schema() -> strawberry.Schema:
    return build_schema()


@pytest.fixture
def services(settings: Settings, db: Database) -> Services:
    return Services(settings, db, settings.keyring())


@pytest.fixture
def execute(gql_schema: strawberry.Schema, services: Services) -> Any:
    async def run(query: str, as_: str = "anonymous", **variables: Any) -> Any:
        context: Context = services.context(PRINCIPALS[as_])
        return await gql_schema.execute(query, variable_values=variables, context_value=context)

    return run


def token_for(name: str) -> str:
    p = PRINCIPALS[name]
    assert p.role is not None
    return issue_token(
        secret=JWT_SECRET,
        role=p.role,
        subject=p.subject,
        member_id=p.member_id,
        business_line=p.business_line,
    )


@pytest.fixture
async def client(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c
