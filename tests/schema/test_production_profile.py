"""The production profile: persisted operations, cost limits and per-principal rate limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hub.app import Services, create_app
from hub.core.settings import Env, Settings
from schema.cost import TokenBuckets, operation_cost, page_variables
from schema.persisted import Manifest, digest
from tests.schema.conftest import token_for

VIEWER_DOC = (Manifest.load().documents, Manifest.load().names)


def _viewer_id() -> str:
    documents, names = VIEWER_DOC
    return next(i for i, n in names.items() if n == "app/Viewer")


async def _client(settings: Settings, services: Services, **overrides: Any) -> httpx.AsyncClient:
    app = create_app(settings.model_copy(update=overrides), services=services)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_enforce_runs_persisted_operations_by_id_and_refuses_others(
    settings: Settings, services: Services
) -> None:
    async with await _client(settings, services, env=Env.PROD, persisted_operations="enforce") as c:
        by_id = await c.post("/graphql", json={"id": _viewer_id()})
        assert by_id.status_code == 200, by_id.text
        assert by_id.json()["data"]["viewer"]["authenticated"] is False
        apq = await c.post(
            "/graphql",
            json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": _viewer_id()}}},
        )
        assert apq.json()["data"]["viewer"]["role"] is None
        ad_hoc = await c.post("/graphql", json={"query": "{ viewer { role } }"})
        assert ad_hoc.status_code == 400
        assert ad_hoc.json()["errors"][0]["extensions"]["code"] == "PERSISTED_OPERATION_REQUIRED"
        unknown = await c.post("/graphql", json={"id": "0" * 64})
        assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_OPERATION_NOT_FOUND"


async def test_the_shipped_document_itself_is_accepted_and_a_mismatched_id_is_not(
    settings: Settings, services: Services
) -> None:
    documents, _ = VIEWER_DOC
    text = documents[_viewer_id()]
    async with await _client(settings, services, persisted_operations="enforce") as c:
        ok = await c.post("/graphql", json={"query": text})
        assert ok.status_code == 200
        bad = await c.post("/graphql", json={"query": text, "id": digest("something else")})
        assert bad.json()["errors"][0]["extensions"]["code"] == "PERSISTED_OPERATION_MISMATCH"


async def test_log_mode_runs_unknown_documents_and_logs_their_digest(
    settings: Settings, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    async with await _client(settings, services, persisted_operations="log") as c:
        response = await c.post("/graphql", json={"query": "{ viewer { role } }"})
    assert response.status_code == 200
    assert f"sha256={digest('{ viewer { role } }')}" in caplog.text


def test_every_shipped_operation_validates_against_the_schema() -> None:
    from graphql import parse, validate

    from schema import build_schema

    schema = build_schema()._schema
    documents, names = VIEWER_DOC
    assert len(documents) >= 3
    for op_id, text in documents.items():
        assert validate(schema, parse(text)) == [], names[op_id]


def test_cost_multiplies_by_page_sizes() -> None:
    from graphql import parse

    assert operation_cost(parse("{ viewer { role } }")) == 2
    assert operation_cost(parse("{ a(first: 10) { b c } }")) == 1 + 10 * 2
    paged = parse("query($n: Int) { a(first: $n) { b(first: 5) { c } } }")
    assert operation_cost(paged, None, {"n": 7}) == 1 + 7 * (1 + 5 * 1)  # the page asked for
    assert operation_cost(paged, None, {"n": 5_000}) == 1 + 100 * (1 + 5 * 1)  # at most MAX_PAGE
    assert operation_cost(paged, None, {"n": None}) == 1 + 20 * (1 + 5 * 1)  # the default page
    assert operation_cost(paged) == 1 + 20 * (1 + 5 * 1)
    assert operation_cost(paged, None, {"n": "7"}) == 1 + 100 * (1 + 5 * 1)  # refused later
    frag = "query($a: Int, $n: Int, $p: Int) { x(first: $n, p: $p) { ...F } } "
    frag += "fragment F on X { ... on Y { y(last: $a) { z } } }"
    assert page_variables(parse(frag)) == ("a", "n")  # $p sizes no page
    defaulted = parse("query($n: Int = 30) { a(first: $n) { b } }")
    assert operation_cost(defaulted) == 1 + 30 * 1
    assert operation_cost(defaulted, None, {"n": 2}) == 1 + 2 * 1
    assert operation_cost(parse("{ ...F } fragment F on Query { viewer { role } }")) == 2


async def test_a_too_costly_query_is_refused_before_it_runs(
    settings: Settings, services: Services
) -> None:
    async with await _client(settings, services, graphql_max_cost=10) as c:
        query = "{ " + " ".join(f"v{i}: viewer {{ role }}" for i in range(6)) + " }"
        body = (await c.post("/graphql", json={"query": query})).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


async def test_a_variable_page_is_charged_as_the_page_it_asks_for(
    settings: Settings, services: Services
) -> None:
    """The same text costs what each request's variables make it: a small page passes where
    a large one is refused (and the cost cache keeps them apart)."""
    query = "query($n: Int) { reviewQueue(first: $n) { edges { cursor node { id reason } } } }"
    agent = {"Authorization": f"Bearer {token_for('agent')}"}
    async with await _client(settings, services, graphql_max_cost=500) as c:
        small = (
            await c.post("/graphql", json={"query": query, "variables": {"n": 5}}, headers=agent)
        ).json()
        large = (
            await c.post("/graphql", json={"query": query, "variables": {"n": 100}}, headers=agent)
        ).json()
        again = (
            await c.post("/graphql", json={"query": query, "variables": {"n": 5}}, headers=agent)
        ).json()
    assert "errors" not in small, small
    assert large["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COSTLY",
        "cost": 1 + 100 * 5,
        "limit": 500,
    }
    assert again == small


async def test_rate_limits_are_per_principal_and_counted_in_cost(
    settings: Settings, services: Services
) -> None:
    async with await _client(
        settings, services, rate_limit_cost_per_s=0.001, rate_limit_burst=5
    ) as c:
        agent = {"Authorization": f"Bearer {token_for('agent')}"}
        admin = {"Authorization": f"Bearer {token_for('admin')}"}
        q = {"query": "{ viewer { role businessLine } }"}  # cost 3
        first = (await c.post("/graphql", json=q, headers=agent)).json()
        assert first["data"]["viewer"]["role"] == "agent"
        second = (await c.post("/graphql", json=q, headers=agent)).json()
        assert second["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        other = (await c.post("/graphql", json=q, headers=admin)).json()
        assert other["data"]["viewer"]["role"] == "admin"  # another principal has its own bucket


def test_token_buckets_refill_over_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import schema.cost as cost

    now = [100.0]
    monkeypatch.setattr(cost.time, "monotonic", lambda: now[0])
    buckets = TokenBuckets(rate_per_s=10, burst=20)
    assert buckets.take("a", 20) == 0.0
    assert buckets.take("a", 5) == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("a", 5) == 0.0
