"""What a query may cost, and how much a principal may spend.

Cost is counted on the document before execution: every field costs 1, times the page sizes of
the lists above it (``first``/``last``; a variable counts as the page it asks for in the request,
its default page when null or absent). A query over
``HUB_GRAPHQL_MAX_COST`` is refused; within the limit, its cost is charged to the caller's token
bucket (``HUB_RATE_LIMIT_COST_PER_S`` refill, ``HUB_RATE_LIMIT_BURST`` capacity), so a client
that asks for big pages runs out sooner than one that asks for small ones.

The buckets live in the process: with N replicas a caller gets N times the rate. That is the
documented trade-off; a shared limiter (Redis, or the gateway) replaces this at scale.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from schema.limits import DEFAULT_PAGE, MAX_PAGE

MAX_BUCKETS = 100_000  # least recently used callers are forgotten past this
COST_CACHE_SIZE = 512  # documents whose cost is remembered, by text (like the parser cache)


def _page(field: FieldNode, pages: Mapping[str, int]) -> int:
    for arg in field.arguments or ():
        if arg.name.value in ("first", "last"):
            if isinstance(arg.value, IntValueNode):
                return max(1, min(int(arg.value.value), MAX_PAGE))
            if isinstance(arg.value, VariableNode):
                return pages.get(arg.value.name.value, MAX_PAGE)
    return 1


def _variable_pages(
    operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
) -> dict[str, int]:
    """The page size each variable of the operation stands for in this request: its value, or
    its default in the document, or the resolvers' default page when it is null or absent.
    Anything else (a value the validation will refuse) counts as the largest page."""
    given = variables or {}
    pages: dict[str, int] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name in given:
            value = given[name]
        elif isinstance(definition.default_value, IntValueNode):
            value = int(definition.default_value.value)
        elif definition.default_value is None or isinstance(
            definition.default_value, NullValueNode
        ):
            value = None
        else:
            continue
        if value is None:
            pages[name] = DEFAULT_PAGE
        elif isinstance(value, int) and not isinstance(value, bool):
            pages[name] = max(1, min(value, MAX_PAGE))
    return pages


def page_variables(document: DocumentNode) -> tuple[str, ...]:
    """The variables that give a ``first``/``last`` anywhere in the document."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        for sel in getattr(getattr(node, "selection_set", None), "selections", None) or ():
            if isinstance(sel, FieldNode):
                for arg in sel.arguments or ():
                    if arg.name.value in ("first", "last") and isinstance(arg.value, VariableNode):
                        names.add(arg.value.name.value)
            walk(sel)

    for definition in document.definitions:
        walk(definition)
    return tuple(sorted(names))


def operation_cost(
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """Every field costs 1, times the page sizes above it; a page given by a variable counts
    as the page that variable asks for in this request (``variables``)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = next(
        (
            o
            for o in operations
            if operation_name is None or (o.name and o.name.value == operation_name)
        ),
        None,
    )
    if chosen is None:
        return 0
    pages = _variable_pages(chosen, variables)

    def cost(selection_set: SelectionSetNode | None, seen: frozenset[str]) -> int:
        if selection_set is None:
            return 0
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                total += 1 + _page(sel, pages) * cost(sel.selection_set, seen)
            elif isinstance(sel, InlineFragmentNode):
                total += cost(sel.selection_set, seen)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                frag = fragments.get(sel.name.value)
                if frag is not None:
                    total += cost(frag.selection_set, seen | {sel.name.value})
        return total

    return cost(chosen.selection_set, frozenset())


class TokenBuckets:
    def __init__(self, *, rate_per_s: float, burst: float) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, who: str, amount: float) -> float:
        """Charge ``amount``; 0.0 if allowed, else the seconds until it would be."""
        now = time.monotonic()
        with self._lock:
            level, at = self._buckets.pop(who, (self.burst, now))
            level = min(self.burst, level + (now - at) * self.rate)
            if amount > level:
                self._buckets[who] = (level, now)
                wait = (amount - level) / self.rate if self.rate > 0 else float("inf")
            else:
                self._buckets[who] = (level - amount, now)
                wait = 0.0
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        return wait


def _caller(context: object) -> str:
    principal = getattr(context, "principal", None)
    if principal is not None and principal.role is not None:
        return f"{principal.role.value}:{principal.subject}"
    request = getattr(context, "request", None)
    client = getattr(request, "client", None)
    return f"anonymous:{client.host if client else 'local'}"


def cost_limiter(max_cost: int, buckets: TokenBuckets | None) -> type[SchemaExtension]:
    # The cost depends on the document, the operation and the page sizes its variables ask for:
    # the same request costs the same, so a client repeating its query is not walked again
    # (measured: 0.1 ms of a profile view).
    costs: OrderedDict[tuple[str, str | None, tuple[Any, ...]], int] = OrderedDict()
    paged: OrderedDict[tuple[str, str | None], tuple[str, ...]] = OrderedDict()

    def cost_of(
        query: str | None,
        document: DocumentNode,
        operation: str | None,
        variables: Mapping[str, Any] | None,
    ) -> int:
        if query is None:
            return operation_cost(document, operation, variables)
        names = paged.get((query, operation))
        if names is None:
            names = paged[(query, operation)] = page_variables(document)
            if len(paged) > COST_CACHE_SIZE:
                paged.popitem(last=False)
        given = variables or {}
        # only the variables that size a page: a mutation's amounts do not split the cache
        key = (query, operation, tuple(given.get(n, Undefined) for n in names))
        found = costs.get(key)
        if found is None:
            found = costs[key] = operation_cost(document, operation, variables)
            if len(costs) > COST_CACHE_SIZE:
                costs.popitem(last=False)
        return found

    class CostLimiter(SchemaExtension):
        def on_validate(self) -> Generator[None, None, None]:
            # Before the yield: strawberry checks for errors inside the validation step, so
            # anything added after it would come too late. ValidationCache (listed earlier)
            # has validated by now; an invalid document is left to its errors.
            self._check()
            yield

        def _check(self) -> None:
            ctx = self.execution_context
            if ctx.pre_execution_errors or ctx.graphql_document is None:
                return
            spent = cost_of(ctx.query, ctx.graphql_document, ctx.operation_name, ctx.variables)
            error: GraphQLError | None = None
            if spent > max_cost:
                error = GraphQLError(
                    f"query cost {spent} exceeds the limit of {max_cost}; ask for smaller pages",
                    extensions={"code": "QUERY_TOO_COSTLY", "cost": spent, "limit": max_cost},
                )
            elif buckets is not None:
                wait = buckets.take(_caller(ctx.context), spent)
                if wait > 0:
                    error = GraphQLError(
                        f"RATE_LIMITED: retry in {wait:.1f} s",
                        extensions={"code": "RATE_LIMITED", "retry_after_s": round(wait, 1)},
                    )
            if error is not None:
                ctx.pre_execution_errors = [*(ctx.pre_execution_errors or []), error]

    return CostLimiter
