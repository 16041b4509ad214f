"""A schema with the redemption types, until the lead composes them into ``schema``."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.tools import merge_types

import schema as hub_schema
from schema.limits import extensions
from schema.redemption.mutations import RedemptionMutation
from schema.redemption.queries import RedemptionQuery


def build_schema(**limits: Any) -> strawberry.Schema:
    built = hub_schema.build_schema(**limits)
    if "redeemPoints" in built.as_str():
        return built
    return strawberry.Schema(
        query=merge_types("Query", (hub_schema.Query, RedemptionQuery)),
        mutation=merge_types("Mutation", (hub_schema.Mutation, RedemptionMutation)),
        extensions=extensions(
            max_depth=limits.get("max_depth", 12),
            max_tokens=limits.get("max_tokens", 2_000),
            max_aliases=limits.get("max_aliases", 30),
            introspection=limits.get("introspection", True),
        ),
    )


REDEEM = """
mutation($input: RedeemPointsInput!) {
  redeemPoints(input: $input) {
    __typename
    ... on RedeemPointsSuccess { redemption { id state points available replayed memberId
                                              lots { issuerLine points } } }
    ... on InsufficientPoints { requested available }
    ... on IdempotencyConflict { field }
    ... on RedemptionNotAllowed { message }
    ... on InvalidRedemptionCode { message }
    ... on InvalidRedemption { field }
    ... on NotRedeemableHere { line }
  }
}
"""

RESOLVE = """
mutation($cap: CaptureRedemptionInput!, $can: CancelRedemptionInput!) {
  captureRedemption(input: $cap) {
    __typename
    ... on CaptureRedemptionSuccess { redemption { state capturedPoints available } }
    ... on AlreadyCaptured { redemptionId }
    ... on AlreadyCancelled { redemptionId }
    ... on HoldExpired { redemptionId }
    ... on RedemptionNotFound { message }
  }
  cancelRedemption(input: $can) {
    __typename
    ... on CancelRedemptionSuccess { redemption { state available } }
    ... on AlreadyCaptured { redemptionId }
    ... on AlreadyCancelled { redemptionId }
    ... on RedemptionNotFound { message }
  }
}
"""
