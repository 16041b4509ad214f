"""GraphQL fuzzing: schemathesis generates documents for every root field from the introspected
schema; each one is sent as an agent, a member and anonymously.

Whatever arrives, the hub answers without a 5xx and without an unhandled error (the masked
``Internal error.``): bad input is a validation error or a typed result, never a crash. The
number of examples is bounded so this runs in ``make test``.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from schemathesis.python.asgi import shutdown_lifespans
from starlette.applications import Starlette

from hub.app import Services, create_app
from hub.core.db import Database
from hub.core.settings import Env, Settings
from hub.generator import generate
from hub.importer import run_import
from schema import build_schema
from tests.conftest import JWT_SECRET, TEST_KEYS, _truncate_all
from tests.schema.conftest import PRINCIPALS, token_for

# Per root field and role; HUB_FUZZ_EXAMPLES=200 for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "8"))
ROLES = ("agent", "member", "anonymous")
MASKED = "Internal error."

schemathesis.graphql.scalar(
    "Date",
    st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)).map(
        lambda d: nodes.String(d.isoformat())
    ),
)
schemathesis.graphql.scalar(
    "DateTime",
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2030, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ).map(lambda d: nodes.String(d.isoformat())),
)
schemathesis.graphql.scalar(
    "JSON",
    st.one_of(
        st.text(max_size=20).map(nodes.String),
        st.integers(-1000, 1000).map(nodes.Int),
        st.dictionaries(
            st.sampled_from(["kind", "amountFen", "note"]), st.text(max_size=10), max_size=3
        ).map(
            lambda d: nodes.Object(
                [
                    graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=nodes.String(v))
                    for k, v in d.items()
                ]
            )
        ),
    ),
)


async def _seed(url: str, data: Path) -> None:
    """A few real members with sources, activities and points, so generated ids hit rows."""
    generate(20, 7, data)
    db = Database(url, pool_size=1, max_overflow=0)
    from hub.core.pii import KeyRing

    try:
        await run_import(
            db=db,
            keyring=KeyRing.from_mapping(TEST_KEYS),
            connector="auto",
            paths=[data],
            actor="fuzz",
        )
    finally:
        await db.dispose()


async def _empty(url: str) -> None:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        await _truncate_all(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def fuzz_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    folder = tmp_path_factory.mktemp("fuzz")
    asyncio.run(_seed(database_url, folder / "gen"))
    hub_settings = Settings(
        env=Env.TEST,
        database_url=database_url,
        data_dir=folder / "data",
        jwt_secret=JWT_SECRET,  # type: ignore[arg-type]
        hash_keys=TEST_KEYS["hash_keys"],
        hash_key_id="h1",
        encryption_keys=TEST_KEYS["enc_keys"],
        encryption_key_id="k1",
        rate_limit_cost_per_s=0,
    )
    # The app's pool lives on schemathesis's own event loop (one for every ASGI call); its
    # lifespan shutdown disposes it there.
    db = Database(database_url, pool_size=4, max_overflow=0)
    app = create_app(hub_settings, services=Services(hub_settings, db, hub_settings.keyring()))
    try:
        yield app
    finally:
        shutdown_lifespans()
        asyncio.run(_empty(database_url))


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app: Starlette) -> Any:
    return schemathesis.graphql.from_asgi("/graphql", fuzz_app)


def _root_fields() -> list[tuple[str, str]]:
    """Every query and mutation root field, from the schema the app serves."""
    served = graphql.build_schema(build_schema().as_str())
    return [
        (root.name, name)
        for root in (served.query_type, served.mutation_type)
        if root is not None
        for name in root.fields
    ]


HEADERS = {
    role: {"Authorization": f"Bearer {token_for(role)}"} if PRINCIPALS[role].role else {}
    for role in ROLES
}


def _unhandled(body: Any) -> list[Any]:
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errors or [] if e.get("message") == MASKED]


@pytest.mark.parametrize(("root", "field"), _root_fields(), ids=lambda v: str(v))
def test_no_generated_operation_crashes_the_hub(fuzz_schema: Any, root: str, field: str) -> None:
    operation = fuzz_schema[root][field]

    # schemathesis's own pytest integration (``from_fixture``) does not run on this pytest, so
    # its case strategy drives hypothesis directly.
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        for role in ROLES:
            response = case.call(headers=HEADERS[role])
            assert response.status_code < 500, (role, case.body, response.text)
            body = response.json()
            assert _unhandled(body) == [], (role, case.body, body)

    fuzz()


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("query($q: String!) { searchMembers(query: $q) { id } }", {"q": "测试\x00"}),
        ('{ searchMembers(query: "a\\u0000") { id } }', {}),
        ('{ searchMembers(query: "a\\u{0}") { id } }', {}),
    ],
)
async def test_a_nul_character_is_a_bad_request_not_an_internal_error(
    client: httpx.AsyncClient, document: str, variables: dict[str, Any]
) -> None:
    response = await client.post(
        "/graphql", json={"query": document, "variables": variables}, headers=HEADERS["agent"]
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_an_escaped_backslash_u_in_a_variable_is_ordinary_text(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/graphql",
        json={
            "query": "query($q: String!) { searchMembers(query: $q) { id } }",
            "variables": {"q": "\\u0000"},
        },
        headers=HEADERS["agent"],
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"searchMembers": []}


# What the fuzzer found: ids past bigint or with non-ASCII digits, and foreign cursors, each
# failed inside a resolver as an internal error.
ID_PROBES = [
    '{ member(id: "%s") { id } }',
    '{ memberLoyalty(memberId: "%s") { points { available } } }',
    '{ quoteRedemption(line: "store", points: 10, memberId: "%s") { __typename } }',
    'mutation { adjustPoints(input: {memberId: "%s", amount: 1, reason: "测试", '
    'idempotencyKey: "k"}) { __typename } }',
    'mutation { moveSourceRecord(input: {sourceRecordId: "%s", reason: "测试", '
    'idempotencyKey: "k"}) { __typename } }',
    'mutation { unmaskMember(input: {memberId: "%s", reason: "测试"}) { __typename } }',
    'mutation { redeemPoints(input: {line: "store", points: 1, orderRef: "o", '
    'idempotencyKey: "k", memberId: "%s", reason: "测试"}) { __typename } }',
    'mutation { captureRedemption(input: {redemptionId: "%s"}) { __typename } }',
]
CURSOR_PROBES = [
    ("member", '{ me { ledger(after: "%s") { edges { cursor } } } }'),
    ("agent", '{ reviewQueue(after: "%s") { edges { cursor } } }'),
]


def _cursor(kind: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{'9' * 30}".encode()).decode()


@pytest.mark.parametrize("value", ["9" * 20, "²", "-5"])
@pytest.mark.parametrize("document", ID_PROBES)
async def test_an_id_that_names_no_row_is_an_answer_not_an_internal_error(
    client: httpx.AsyncClient, document: str, value: str
) -> None:
    response = await client.post(
        "/graphql", json={"query": document % value}, headers=HEADERS["agent"]
    )
    assert response.status_code == 200
    assert _unhandled(response.json()) == []


@pytest.mark.parametrize("cursor", [_cursor("transfer"), _cursor("review"), "scope"])
@pytest.mark.parametrize(("role", "document"), CURSOR_PROBES)
async def test_a_foreign_cursor_is_an_answer_not_an_internal_error(
    client: httpx.AsyncClient, role: str, document: str, cursor: str
) -> None:
    response = await client.post(
        "/graphql", json={"query": document % cursor}, headers=HEADERS[role]
    )
    assert response.status_code == 200
    assert _unhandled(response.json()) == []
