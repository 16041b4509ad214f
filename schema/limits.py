"""Schema extensions that bound what one request may cost, and what an error may reveal."""

from __future__ import annotations

from collections.abc import Callable

from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from hub.core.errors import HubError

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
    module-level in strawberry and shared regardless)."""
    exts: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: MaxAliasesLimiter(max_alias_count=max_aliases),
        lambda: QueryDepthLimiter(max_depth=max_depth),
        lambda: MaskErrors(should_mask_error=should_mask, error_message="Internal error."),
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
