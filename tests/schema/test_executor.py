"""The executor's short path for plain scalars answers exactly as graphql-core's own."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.dataloader import DataLoader
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


# -- async fields started at once -----------------------------------------------------------------

LEAK: contextvars.ContextVar[str] = contextvars.ContextVar("leak", default="unset")


async def _load(keys: list[int]) -> list[int]:
    await asyncio.sleep(0.001)
    return [k * 10 for k in keys]


@strawberry.type
class Loaded:
    value: int
    seen: str


@strawberry.type
class Async:
    @strawberry.field
    async def a(self, info: strawberry.Info) -> Loaded:
        LEAK.set("a")  # before its first await, as a span's context would be
        value = await info.context["loader"].load(1)
        return Loaded(value=value, seen=LEAK.get())

    @strawberry.field
    async def b(self, info: strawberry.Info) -> Loaded:  # the same key: the same future
        seen = LEAK.get()
        return Loaded(value=await info.context["loader"].load(1), seen=seen)

    @strawberry.field
    async def c(self, info: strawberry.Info) -> Loaded:
        return Loaded(value=await info.context["loader"].load(2), seen=LEAK.get())

    @strawberry.field
    async def ready(self, info: strawberry.Info) -> int:
        return await info.context["primed"].load(7)

    @strawberry.field
    async def fails(self) -> int:
        await asyncio.sleep(0)
        raise ValueError("no")

    @strawberry.field
    async def slow(self, info: strawberry.Info) -> int | None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            info.context["cancelled"].append("slow")
            raise
        return 1


@strawberry.type
class AsyncQuery:
    @strawberry.field
    def root(self) -> Async:
        return Async()


def _async_schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    return (
        strawberry.Schema(query=AsyncQuery, execution_context_class=HubExecutionContext),
        strawberry.Schema(query=AsyncQuery),
    )


def _async_context() -> dict[str, Any]:
    primed: DataLoader[int, int] = DataLoader(load_fn=_load)
    primed.prime(7, 70)
    return {"loader": DataLoader(load_fn=_load), "primed": primed, "cancelled": []}


async def test_fields_on_one_loader_key_batch_and_keep_their_own_context() -> None:
    query = "{ root { a { value seen } b { value seen } c { value seen } ready } }"
    for schema in _async_schemas():
        result = await schema.execute(query, context_value=_async_context())
        assert result.errors is None
        assert result.data == {
            "root": {
                "a": {"value": 10, "seen": "a"},
                "b": {"value": 10, "seen": "unset"},  # a's context variable did not leak
                "c": {"value": 20, "seen": "unset"},
                "ready": 70,
            }
        }
    assert LEAK.get() == "unset"


async def test_fields_whose_values_are_ready_run_without_a_task_of_their_own() -> None:
    loop = asyncio.get_running_loop()
    made: list[object] = []
    before = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        counts = []
        for schema in _async_schemas():
            made.clear()
            context = _async_context()
            context["loader"] = context["primed"]  # every field's value is ready
            result = await schema.execute(
                "{ root { r1: ready r2: ready r3: ready } }", context_value=context
            )
            assert result.data == {"root": {"r1": 70, "r2": 70, "r3": 70}}
            counts.append(len(made))
    finally:
        loop.set_task_factory(before)
    assert counts[0] == 0  # ours: none
    assert counts[1] >= 3  # graphql-core: one per field


async def test_a_failing_non_null_field_cancels_its_started_siblings() -> None:
    for schema in _async_schemas():
        context = _async_context()
        result = await schema.execute("{ root { slow fails } }", context_value=context)
        assert result.data is None
        assert [e.message for e in result.errors or []] == ["no"]
        await asyncio.sleep(0.01)  # the background settling of the cancelled sibling
        assert context["cancelled"] == ["slow"]


def test_no_resolver_path_opens_an_asyncio_timeout() -> None:
    # A field's first step runs under its parent's task (``_start``): a timeout opened there
    # would cancel the parent. The readiness probe's ping holds the one timeout, and no
    # resolver calls it.
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = [
        str(path.relative_to(root))
        for package in ("hub", "schema", "identity")
        for path in sorted((root / package).rglob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if "asyncio.timeout(" in line and not line.lstrip().startswith("#")
    ]
    assert found == ["hub/core/db.py"]
    assert not any(
        ".ping(" in p.read_text(encoding="utf-8") for p in (root / "schema").rglob("*.py")
    )
