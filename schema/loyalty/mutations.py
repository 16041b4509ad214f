"""Loyalty mutations: one input, one result union of success and typed errors."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from hub.core.errors import IdempotencyConflict as IdempotencyConflictError
from hub.core.errors import NotAuthenticated, NotFound
from hub.loyalty import errors
from hub.loyalty.adjustments import adjust_points
from hub.loyalty.claims import claim_benefit
from schema.context import Context
from schema.ids import parse_id
from schema.loyalty.loaders import program
from schema.loyalty.types import (
    AdjustmentRejected,
    AdjustPointsInput,
    AdjustPointsResult,
    AdjustPointsSuccess,
    ClaimBenefitInput,
    ClaimBenefitResult,
    ClaimBenefitSuccess,
    IdempotencyConflict,
    InsufficientPoints,
    MemberNotFound,
    NotEntitled,
    QuotaExhausted,
    UnknownBenefit,
)
from schema.permissions import IsAgent, IsMember


@strawberry.type
class LoyaltyMutation:
    @strawberry.mutation(
        permission_classes=[IsAgent],
        description="Add (positive) or take (negative) points by hand; audited, capped per day.",
    )
    async def adjust_points(
        self, info: Info[Context, Any], input: AdjustPointsInput
    ) -> AdjustPointsResult:
        if parse_id(input.member_id) is None:
            return MemberNotFound(message="memberId: not a member id")
        try:
            async with info.context.db.unit_of_work() as session:
                result = await adjust_points(
                    session=session,
                    program=program(),
                    actor=info.context.actor,
                    member_id=int(input.member_id),
                    amount=input.amount,
                    reason=input.reason,
                    idempotency_key=input.idempotency_key,
                )
        except errors.InsufficientPoints as exc:
            return InsufficientPoints(
                message=exc.message, requested=exc.requested, available=exc.available
            )
        except (errors.InvalidAdjustment, errors.AdjustmentCapExceeded) as exc:
            return AdjustmentRejected(code=exc.code, message=exc.message)
        except IdempotencyConflictError as exc:
            return IdempotencyConflict(message=exc.message, field=exc.field)
        except NotFound as exc:
            return MemberNotFound(message=exc.message)
        return AdjustPointsSuccess.from_model(result)

    @strawberry.mutation(
        permission_classes=[IsMember],
        description="Claim a benefit (权益) for the signed-in member; idempotent by key.",
    )
    async def claim_benefit(
        self, info: Info[Context, Any], input: ClaimBenefitInput
    ) -> ClaimBenefitResult:
        member = info.context.principal.member_id
        if member is None:
            raise NotAuthenticated("this member token names no member")
        try:
            async with info.context.db.unit_of_work() as session:
                claim = await claim_benefit(
                    session=session,
                    program=program(),
                    actor=info.context.actor,
                    member_id=member,
                    code=input.code,
                    idempotency_key=input.idempotency_key,
                )
        except errors.NotEntitled as exc:
            return NotEntitled(message=exc.message, min_tier=exc.min_tier)
        except errors.QuotaExhausted as exc:
            return QuotaExhausted(message=exc.message, quota=exc.quota)
        except errors.UnknownBenefit as exc:
            return UnknownBenefit(message=exc.message)
        except errors.InvalidClaim as exc:
            return AdjustmentRejected(code=exc.code, message=exc.message)
        except IdempotencyConflictError as exc:
            return IdempotencyConflict(message=exc.message, field=exc.field)
        except NotFound as exc:
            return MemberNotFound(message=exc.message)
        return ClaimBenefitSuccess.from_model(claim)
