"""The GraphQL schema: one sub-package per domain, composed here with ``merge_types``.

``build_schema(...)`` wires the limits in; ``schema/schema.graphql`` is its exported SDL and a
test keeps the two equal (``hub schema export`` rewrites the file).
"""

from __future__ import annotations

from pathlib import Path

import strawberry
from strawberry.tools import merge_types

from schema.audit.queries import AuditQuery
from schema.cost import TokenBuckets, cost_limiter
from schema.executor import HubExecutionContext
from schema.identity.mutations import IdentityMutation
from schema.identity.queries import IdentityQuery
from schema.ingest.mutations import IngestMutation
from schema.limits import extensions
from schema.loyalty.mutations import LoyaltyMutation
from schema.loyalty.queries import LoyaltyQuery
from schema.members.queries import MembersQuery
from schema.redemption.mutations import RedemptionMutation
from schema.redemption.queries import RedemptionQuery
from schema.viewer.queries import ViewerQuery

SDL_PATH = Path(__file__).with_name("schema.graphql")

Query = merge_types(
    "Query", (ViewerQuery, AuditQuery, IdentityQuery, LoyaltyQuery, MembersQuery, RedemptionQuery)
)
Mutation = merge_types(
    "Mutation", (IngestMutation, IdentityMutation, LoyaltyMutation, RedemptionMutation)
)


def build_schema(
    *,
    max_depth: int = 12,
    max_tokens: int = 2_000,
    max_aliases: int = 30,
    max_cost: int = 5_000,
    rate_limit: TokenBuckets | None = None,
    introspection: bool = True,
) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        execution_context_class=HubExecutionContext,
        extensions=[
            *extensions(
                max_depth=max_depth,
                max_tokens=max_tokens,
                max_aliases=max_aliases,
                introspection=introspection,
            ),
            cost_limiter(max_cost, rate_limit),
        ],
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
