"""The executor's short path for plain scalars answers exactly as graphql-core's own."""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import ParserCache

from schema.executor import HubExecutionContext


@strawberry.enum
class Colour(Enum):
    RED = "red"


@strawberry.type
class Item:
    name: str
    count: int
    ratio: float | None
    at: datetime
    colour: Colour
    missing: str  # non-null, but the test object holds None

    @strawberry.field
    def upper(self) -> str:
        return self.name.upper()


ITEMS = [
    Item(
        name="a",
        count=1,
        ratio=None,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        colour=Colour.RED,
        missing="x",
    ),  # fmt: skip
    Item(
        name="b",
        count=2,
        ratio=0.5,
        at=datetime(2026, 1, 2, tzinfo=UTC),
        colour=Colour.RED,
        missing=None,
    ),  # type: ignore[arg-type]  # fmt: skip
]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return ITEMS

    @strawberry.field
    async def first(self) -> Item:
        return ITEMS[0]


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    fast = strawberry.Schema(
        query=Query, execution_context_class=HubExecutionContext, extensions=[ParserCache]
    )
    return fast, strawberry.Schema(query=Query, extensions=[ParserCache])


async def _both(query: str, **variables: Any) -> list[Any]:
    out = []
    for schema in _schemas():
        result = await schema.execute(query, variable_values=variables)
        errors = [(e.message, e.path) for e in result.errors or []]
        out.append((result.data, errors))
    return out


@pytest.mark.parametrize(
    "query",
    [
        "{ items { name count ratio at colour upper } first { name at } }",
        "{ items { n: name name ...F } } fragment F on Item { count colour }",
        "{ items { name missing } }",  # null in a non-null field: the standard error and path
        "{ first { missing name } }",
    ],
)
async def test_plain_fields_answer_as_graphql_core_does(query: str) -> None:
    fast, standard = await _both(query)
    assert fast == standard


async def test_directives_turned_by_variables_are_honoured_on_every_request() -> None:
    query = "query($show: Boolean!) { items { name count @include(if: $show) } }"
    for show in (True, False, True):
        fast, standard = await _both(query, show=show)
        assert fast == standard
        assert ("count" in fast[0]["items"][0]) is show


class _RequestContext:
    """Stands for a request's context: what the loaders and views of one request hang from."""


async def _context_outlives_execution(schema: strawberry.Schema) -> bool:
    context = _RequestContext()
    alive = weakref.ref(context)
    result = await schema.execute("{ items { name upper } first { name } }", context_value=context)
    assert result.errors is None
    del context, result
    return alive() is not None


async def test_a_requests_objects_are_freed_without_the_cyclic_collector() -> None:
    fast, standard = _schemas()
    gc.collect()
    gc.disable()
    try:
        # graphql-core's own executor sits in a reference cycle holding the context ...
        assert await _context_outlives_execution(standard)
        # ... which ours breaks, so the request's objects go when the response does.
        assert not await _context_outlives_execution(fast)
    finally:
        gc.enable()
