"""Schema extensions that bound what one request may cost, and what an error may reveal."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Generator
from typing import Any

from graphql import GraphQLError
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
        lambda: ValidationCache(maxsize=512),
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: AddValidationRules(limit_rules),
        lambda: MaskErrors(should_mask_error=should_mask, error_message="Internal error."),
        PrivateOpenTelemetry,
    ]
    if not introspection:
        exts.append(DisableIntrospection)
    return exts


def page_size(first: int | None) -> int:
    """Relay ``first``: default small, never above MAX_PAGE."""
    if first is None:
        return DEFAULT_PAGE
    if first < 0:
        raise HubError("first must not be negative")
    return min(first, MAX_PAGE)


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

    def __init__(self) -> None:
        super().__init__(arg_filter=_drop_arguments)

    def on_operation(self) -> Generator[None, None, None]:
        steps = super().on_operation()
        next(steps)  # the operation span now exists, with the raw document attached
        span = self._span_holder.get(LifecycleStep.OPERATION)
        if span is not None and self.execution_context.query:
            digest = hashlib.sha256(self.execution_context.query.encode()).hexdigest()[:16]
            span.set_attribute("query", f"sha256:{digest}")
        yield
        with contextlib.suppress(StopIteration):
            next(steps)
