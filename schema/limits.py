"""Schema extensions that bound what one request may cost, and what an error may reveal."""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator
from typing import Any, ClassVar

from graphql import GraphQLError
from opentelemetry import trace
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.base_extension import LifecycleStep
from strawberry.extensions.tracing import OpenTelemetryExtension
from strawberry.schema.schema import validate_document

from hub.core.errors import HubError
from schema.context import SharedReads

MAX_PAGE = 100
DEFAULT_PAGE = 20

# Errors whose message is written for the caller; anything else is an internal error and gets
# masked so no stack detail (or PII in a driver message) reaches a client.
_SAFE_PREFIXES = ("NOT_AUTHENTICATED", "PERMISSION_DENIED")


def should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None:
        return False  # parse/validation errors describe the document, not our data
    if isinstance(original, HubError):
        return False
    return not str(error.message).startswith(_SAFE_PREFIXES)


def extensions(
    *, max_depth: int, max_tokens: int, max_aliases: int, introspection: bool
) -> list[Callable[[], SchemaExtension]]:
    """Factories, so each request gets fresh extension state (the parse/validation caches are
    module-level in strawberry and shared regardless).

    The depth and alias limiters build their validation rule class in ``__init__``: made per
    request, every request brought new rule classes, so ``ValidationCache`` (keyed by the rule
    tuple) never hit and each request re-validated its document (measured: 3/4 of the CPU of
    an agent profile view). Their rules are made once here and added per request instead.
    """
    limit_rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    exts: list[Callable[[], SchemaExtension]] = [
        SharedReads,
        lambda: ParserCache(maxsize=512),
        TextKeyedValidationCache,
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: AddValidationRules(limit_rules),
        lambda: MaskErrors(should_mask_error=should_mask, error_message="Internal error."),
        PrivateOpenTelemetry,
    ]
    if not introspection:
        exts.append(DisableIntrospection)
    return exts


class TextKeyedValidationCache(ValidationCache):
    """strawberry's ValidationCache, keyed by the query text instead of the parsed document.

    Its LRU key holds the document, and graphql-core's AST nodes are dataclasses that hash by
    walking the whole tree: that walk cost about 1 ms of a profile view on every request, more
    than the validation it spared. The text names the same document (parsing is
    deterministic), and the schema and rule classes complete the key, as in the original.
    """

    MAXSIZE = 512
    _results: ClassVar[OrderedDict[tuple[Any, ...], list[GraphQLError]]] = OrderedDict()

    def __init__(self) -> None:
        super().__init__(maxsize=self.MAXSIZE)

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.query is None or ctx.graphql_document is None:
            yield from super().on_validate()
            return
        key = (id(ctx.schema._schema), ctx.query, tuple(ctx.validation_rules))
        results = self._results
        errors = results.get(key)
        if errors is None:
            errors = validate_document(
                ctx.schema._schema, ctx.graphql_document, ctx.validation_rules
            )
            results[key] = errors
            if len(results) > self.MAXSIZE:
                results.popitem(last=False)
        else:
            results.move_to_end(key)
        ctx.pre_execution_errors = errors
        yield


def page_size(first: int | None) -> int:
    """Relay ``first``: default small, never above MAX_PAGE."""
    if first is None:
        return DEFAULT_PAGE
    if first < 0:
        raise HubError("first must not be negative")
    return min(first, MAX_PAGE)


_TRACER = trace.get_tracer("strawberry")


def _drop_arguments(args: dict[str, Any], info: Any) -> dict[str, Any]:
    """Resolver arguments are where phones, names and ID numbers travel: never trace them."""
    return dict.fromkeys(args, "[filtered]")


class PrivateOpenTelemetry(OpenTelemetryExtension):
    """strawberry's OpenTelemetry tracing, minus the two ways PII reaches a span: arguments
    are filtered, and the document itself (literals can hold a phone) becomes a digest.

    Operation, parse and validation are traced; single resolvers are not. A ``resolve`` hook
    wraps every field (default attribute lookups too) in a coroutine, so graphql-core awaits
    and gathers each one: measured, that cost an agent profile view 2x its execution time,
    for spans that mostly time attribute reads. Database time shows in the statement spans
    and the operation span bounds the whole query.
    """

    resolve = SchemaExtension.resolve  # type: ignore[assignment]
    # Parsing and validation are cache lookups (ParserCache, TextKeyedValidationCache): a span
    # each cost more than the work they timed. Errors from either land on the operation span.
    on_parse = SchemaExtension.on_parse  # type: ignore[assignment]
    on_validate = SchemaExtension.on_validate  # type: ignore[assignment]

    def __init__(self) -> None:
        # strawberry's __init__ asks the provider for a tracer on every request; the proxy
        # tracer made once follows whatever provider is installed, later ones included.
        self._arg_filter = _drop_arguments
        self._tracer = _TRACER
        self._span_holder = {}

    def on_operation(self) -> Generator[None, None, None]:
        steps = super().on_operation()
        next(steps)  # the operation span now exists, with the raw document attached
        span = self._span_holder.get(LifecycleStep.OPERATION)
        if span is not None and span.is_recording() and self.execution_context.query:
            digest = hashlib.sha256(self.execution_context.query.encode()).hexdigest()[:16]
            span.set_attribute("query", f"sha256:{digest}")
        yield
        with contextlib.suppress(StopIteration):
            next(steps)
