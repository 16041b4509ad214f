"""graphql-core's executor with a short path for plain scalar fields.

A profile view resolves about 170 fields and 105 of them are scalars read straight off a view
object (``name``, ``amount``, ``expiresAt``...). graphql-core runs each through the whole
field machinery — a ``Path``, strawberry's ``Info``, the resolver wrapper, ``complete_value``
— about 20 µs a field: 2 ms of an agent profile view, whether it is served from the database
or from memory. For a field strawberry itself marks *basic* (no resolver, no permission
classes, no field extensions) and whose type is a scalar or an enum, this executor reads the
attribute and coerces it as graphql-core would, and hands anything unusual (a null for a
non-null field, a value the scalar refuses, an exception) back to the standard path, which
reports it with its path as before. With a schema extension that wraps resolvers (a
``resolve`` hook), every field takes the standard path.

An async field is started at once (``_start``), in a copy of the context as a task would be:
once a profile view's reads are primed its resolvers finish without waiting, and graphql-core
would have made a task for each (ten per agent view) only to gather them. A field that does
wait is carried on by whoever awaits it, as before.

graphql-core also works out each object's sub-selection again on every request (about 14 per
agent view, 8 % of its CPU). For an operation without directives (no ``@skip``/``@include``
that variables could turn, no ``@defer``) that depends on the document alone, so it is
remembered across requests, keyed by the field nodes of the document, which the parser cache
hands out again for the same text; the cache keeps those nodes alive, so their ids are never
reused while an entry exists.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Generator, Sequence
from inspect import isawaitable
from types import CoroutineType
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfoHelpers,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    is_leaf_type,
)
from graphql.execution.collect_fields import CollectedFields, FieldDetailsList, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

# field name -> (attribute, resolver, scalar type, nullable), per object type of the schema
_Plain = dict[str, tuple[str, Any, GraphQLLeafType, bool]]
_PLAIN: dict[GraphQLObjectType, _Plain] = {}


def _plain_fields(parent_type: GraphQLObjectType) -> _Plain:
    found = _PLAIN.get(parent_type)
    if found is not None:
        return found
    plain: _Plain = {}
    for name, field_def in parent_type.fields.items():
        definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberryField) or not definition.is_basic_field:
            continue
        if not getattr(field_def.resolve, "_is_default", False) or field_def.args:
            continue
        gql_type = field_def.type
        nullable = not isinstance(gql_type, GraphQLNonNull)
        leaf = gql_type if nullable else gql_type.of_type
        if is_leaf_type(leaf) and definition.python_name:
            plain[name] = (definition.python_name, definition.default_resolver, leaf, nullable)
    _PLAIN[parent_type] = plain
    return plain


SUBFIELDS_CACHE_SIZE = 2_048  # entries; operations: a quarter of it
_SUBFIELDS: OrderedDict[tuple[Any, ...], tuple[tuple[FieldNode, ...], CollectedFields]] = (
    OrderedDict()
)
# id(operation) -> (operation, whether its sub-selections depend on the document alone)
_STATIC: OrderedDict[int, tuple[OperationDefinitionNode, bool]] = OrderedDict()


def _without_directives(selection_set: SelectionSetNode | None, fragments: dict[str, Any]) -> bool:
    stack = [selection_set]
    seen: set[str] = set()
    while stack:
        current = stack.pop()
        if current is None:
            continue
        for sel in current.selections:
            if sel.directives:
                return False
            if isinstance(sel, FieldNode | InlineFragmentNode):
                stack.append(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                if sel.arguments:
                    return False
                name = sel.name.value
                details = fragments.get(name)
                if name not in seen and details is not None:
                    seen.add(name)
                    if details.definition.directives:
                        return False
                    stack.append(details.definition.selection_set)
    return True


class HubExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = _weak_helpers(self)

    def _static(self) -> bool:
        operation = self.operation
        found = _STATIC.get(id(operation))
        if found is None or found[0] is not operation:
            found = (operation, _without_directives(operation.selection_set, self.fragments))
            _STATIC[id(operation)] = found
            if len(_STATIC) > SUBFIELDS_CACHE_SIZE // 4:
                _STATIC.popitem(last=False)
        return found[1]

    def collect_subfields(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> CollectedFields:
        if not self._static() or any(
            d.defer_usage is not None or d.fragment_variable_values is not None
            for d in field_details_list
        ):
            return super().collect_subfields(return_type, field_details_list)
        nodes = tuple(d.node for d in field_details_list)
        key = (return_type, tuple(map(id, nodes)), self.hide_suggestions)
        hit = _SUBFIELDS.get(key)
        if hit is not None:
            return hit[1]
        collected = super().collect_subfields(return_type, field_details_list)
        _SUBFIELDS[key] = (nodes, collected)
        if len(_SUBFIELDS) > SUBFIELDS_CACHE_SIZE:
            _SUBFIELDS.popitem(last=False)
        return collected

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        manager = self.middleware_manager
        if manager is not None and manager.middlewares:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        # graphql-core's execute_fields, with plain scalars answered in place and async
        # fields started at once.
        plain = _plain_fields(parent_type)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                node = field_details_list[0].node
                fast = plain.get(node.name.value)
                if fast is not None and not node.arguments:
                    value = _plain_value(fast, source_value, is_awaitable)
                    if value is not Undefined:
                        results[response_name] = value
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if type(result) is CoroutineType:
                    result = _start(result)
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return _gather(results, awaitable_fields)


def _weak_helpers(executor: HubExecutionContext) -> GraphQLResolveInfoHelpers:
    """graphql-core's resolver helpers without a reference back to the executor.

    graphql-core builds them from the executor's bound methods, and the executor holds the
    request's context: a reference cycle, so every object a request made (its context,
    loaders, rows, views) was left to the cyclic garbage collector, whose pauses landed on
    every request in flight (the p99 of ``bench/profile_query.py``). With these, a request's
    objects are freed as soon as its response is sent.
    """
    ref = weakref.ref(executor)

    def track(values: Sequence[Any]) -> None:
        live = ref()
        if live is not None:
            live.track_async_work(values)
        else:  # the operation is over: nobody can wait for these, but they still run
            for value in values:
                if isawaitable(value):
                    asyncio.ensure_future(value)

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return gather_with_cancel(*values)

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


def _start(coro: CoroutineType[Any, Any, Any]) -> Any:
    """Run a field's coroutine up to its first suspension, as an eager task would.

    Its value when it finishes without waiting (the usual case once a profile view's reads are
    primed: the DataLoaders answer from their cache), else an awaitable that carries it on.
    graphql-core made a task per async field to gather them: 10.4 tasks per agent view against
    the database, 1.0 with this. It runs in a copy of the context, as a task would, so a context variable it sets (an
    OpenTelemetry span) never leaks to its siblings. Unlike a task its first step runs under
    the parent's task: no resolver may start an ``asyncio.timeout`` before its first await
    (a timeout cancels ``current_task()``).
    """
    context = contextvars.copy_context()
    try:
        yielded = context.run(coro.send, None)
    except StopIteration as done:
        return done.value
    if asyncio.isfuture(yielded):
        # As a task takes a future's "blocking" mark the moment it is handed one: a field
        # started next may await the same future (a DataLoader's, for one key), and a future
        # still marked refuses a second await.
        yielded._asyncio_future_blocking = False
    return _Started(coro, context, yielded)


_AWAITED = object()


class _Started:
    """A field's coroutine that suspended in `_start`: awaiting it drives it to its end."""

    __slots__ = ("_context", "_coro", "_yielded")

    def __init__(self, coro: CoroutineType[Any, Any, Any], context: Any, yielded: Any) -> None:
        self._coro, self._context, self._yielded = coro, context, yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, run, yielded = self._coro, self._context.run, self._yielded
        if yielded is _AWAITED:
            raise RuntimeError("cannot reuse an already awaited field")
        self._yielded = _AWAITED
        if asyncio.isfuture(yielded):
            yielded._asyncio_future_blocking = True  # handed on, marked as the task expects
        while True:
            try:
                sent = yield yielded  # what the coroutine waits on, handed to the task
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation included: the coroutine sees it
                try:
                    yielded = run(coro.throw, exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = run(coro.send, sent)
                except StopIteration as done:
                    return done.value


async def _gather(results: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """graphql-core's own gathering of a selection set's pending fields."""
    if len(names) == 1:
        results[names[0]] = await results[names[0]]
    else:
        values = await gather_with_cancel(*(results[name] for name in names))
        results.update(zip(names, values, strict=True))
    return results


def _plain_value(
    fast: tuple[str, Any, GraphQLLeafType, bool], source: Any, is_awaitable: Any
) -> Any:
    """The completed value, or Undefined to take the standard path."""
    attribute, resolver, leaf, nullable = fast
    try:
        value = resolver(source, attribute)
        if value is None:
            return None if nullable else Undefined
        if isinstance(value, Exception) or is_awaitable(value):
            return Undefined
        coerced = leaf.coerce_output_value(value)
    except Exception:  # the standard path raises it again, located
        return Undefined
    return Undefined if coerced is None else coerced
