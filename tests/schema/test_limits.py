from __future__ import annotations

from typing import Any

import strawberry

from hub.core.settings import Settings
from schema import SDL_PATH, build_schema, export_sdl


def _deep(depth: int) -> str:
    inner = "role"
    for i in range(depth):
        inner = f"f{i} {{ {inner} }}"
    return "{ viewer { " + inner + " } }"


async def test_a_50_deep_query_is_a_validation_error(execute: Any) -> None:
    result = await execute(_deep(50), as_="admin")
    assert result.data is None
    assert "exceeds maximum operation depth of 12" in result.errors[0].message


async def test_a_50_deep_query_over_http_is_not_a_500(client: Any) -> None:
    response = await client.post("/graphql", json={"query": _deep(50)})
    assert response.status_code < 500
    assert "maximum operation depth" in response.json()["errors"][0]["message"]


async def test_a_1000_alias_query_is_a_validation_error(execute: Any) -> None:
    query = "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(1000)) + " }"
    result = await execute(query, as_="admin")
    assert result.data is None
    assert any(
        "aliases" in e.message.lower() or "token" in e.message.lower() for e in result.errors
    )


async def test_1000_aliases_over_http_is_not_a_500(client: Any) -> None:
    query = "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(1000)) + " }"
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code < 500
    assert response.json()["errors"]


async def test_first_is_capped_at_100(execute: Any) -> None:
    from schema.limits import MAX_PAGE, page_size

    assert page_size(10_000) == MAX_PAGE == 100
    assert page_size(None) == 20


async def test_production_schema_has_no_introspection(settings: Settings) -> None:
    prod = build_schema(introspection=False)
    result = await prod.execute("{ __schema { types { name } } }")
    assert result.errors
    assert "introspection" in result.errors[0].message.lower()


async def test_internal_errors_are_masked() -> None:
    @strawberry.type
    class Query:
        @strawberry.field
        def boom(self) -> str:
            raise RuntimeError("driver said: phone 13800000001 violates constraint")

    from schema.limits import extensions

    schema = strawberry.Schema(
        query=Query,
        extensions=extensions(max_depth=10, max_tokens=1000, max_aliases=10, introspection=True),
    )
    result = await schema.execute("{ boom }")
    assert result.errors[0].message == "Internal error."


def test_checked_in_sdl_matches_the_code() -> None:
    assert SDL_PATH.read_text() == export_sdl(), (
        "run `make schema` and commit schema/schema.graphql"
    )
