"""Redemption mutations: one input, one result union of success and typed errors each.

Every mutation runs through ``redemption.run_redemption``: its own unit of work, deadlocks
retried, typed errors committed so an idempotency key replays them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.types import Info

from hub.core.clock import utcnow
from hub.core.errors import IdempotencyConflict as IdempotencyConflictError
from hub.core.tokens import Role
from hub.loyalty import errors, redemption
from hub.loyalty import redemption_errors as rerrors
from hub.loyalty.redemption_codes import DEFAULT_TTL_S, issue_redemption_code
from hub.loyalty.redemption_views import Redemption as RedemptionModel
from schema.context import Context
from schema.ids import parse_id
from schema.loyalty.loaders import program
from schema.permissions import IsMember
from schema.redemption import types as t
from schema.redemption.access import CanRedeem, CanRefund, scope_of
from schema.redemption.types import (
    CancelRedemptionInput,
    CaptureRedemptionInput,
    IssueRedemptionCodeInput,
    RedeemPointsInput,
    RefundRedemptionInput,
)


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m[1].upper(), name)


def typed_error(exc: Exception) -> Any:
    """The GraphQL error type for a domain error (its union decides whether it is allowed)."""
    if isinstance(exc, errors.InsufficientPoints):
        return t.InsufficientPoints(
            message=exc.message, requested=exc.requested, available=exc.available
        )
    if isinstance(exc, IdempotencyConflictError):
        return t.IdempotencyConflict(message=exc.message, field=_camel(exc.field))
    if isinstance(exc, rerrors.AlreadyCaptured):
        return t.AlreadyCaptured(message=exc.message, redemption_id=strawberry.ID(str(exc.hold_id)))
    if isinstance(exc, rerrors.AlreadyCancelled):
        return t.AlreadyCancelled(
            message=exc.message, redemption_id=strawberry.ID(str(exc.hold_id))
        )
    if isinstance(exc, rerrors.HoldExpired):
        return t.HoldExpired(message=exc.message, redemption_id=strawberry.ID(str(exc.hold_id)))
    if isinstance(exc, rerrors.HoldNotFound):
        return t.RedemptionNotFound(message=exc.message)
    if isinstance(exc, rerrors.NotCaptured):
        return t.NotCaptured(message=exc.message, state=exc.state)
    if isinstance(exc, rerrors.RefundExceedsCaptured):
        return t.RefundExceedsCaptured(
            message=exc.message,
            captured=exc.captured,
            refunded=exc.refunded,
            requested=exc.requested,
        )
    if isinstance(exc, rerrors.InvalidRedemption):
        return t.InvalidRedemption(message=exc.message, field=_camel(exc.field))
    if isinstance(exc, rerrors.InvalidRedemptionCode):
        return t.InvalidRedemptionCode(message=exc.message)
    if isinstance(exc, rerrors.NotRedeemableHere):
        return t.NotRedeemableHere(message=exc.message, line=exc.line)
    if isinstance(exc, errors.UnknownBusinessLine):
        return t.NotRedeemableHere(message=exc.message, line=exc.line)
    raise exc


async def _run(
    info: Info[Context, Any],
    work: Callable[[redemption.Tx], Awaitable[RedemptionModel]],
    success: Callable[..., Any],
) -> Any:
    """Run ``work``; its redemption wrapped in ``success``, or its typed error."""
    try:
        done = await redemption.run_redemption(db=info.context.db, work=work)
    except (errors.LoyaltyError, IdempotencyConflictError) as exc:
        return typed_error(exc)
    return success(redemption=t.Redemption.from_model(done))


def _hold_id(value: strawberry.ID) -> int:
    hold = parse_id(value)
    if hold is None:
        raise rerrors.HoldNotFound(0)
    return hold


@strawberry.type
class RedemptionMutation:
    @strawberry.mutation(
        permission_classes=[CanRedeem],
        description="Hold points for an order: they leave `available` at once; capture, cancel "
        "or let the hold expire (holdTtlS, default 900 s).",
    )
    async def redeem_points(
        self, info: Info[Context, Any], input: RedeemPointsInput
    ) -> t.RedeemPointsResult:
        who = info.context.principal
        member: int | None = None
        code: str | None = None
        reason: str | None = None
        if who.role is Role.MEMBER:
            if input.member_id is not None or input.redemption_code is not None:
                return t.RedemptionNotAllowed(
                    message="members redeem for themselves: leave memberId and redemptionCode out"
                )
            member = who.member_id
        elif who.role is Role.PARTNER:
            if input.line != who.business_line:
                return t.RedemptionNotAllowed(
                    message=f"a {who.business_line} point of sale may not redeem at {input.line}"
                )
            if not input.redemption_code:
                return t.RedemptionNotAllowed(message="give the member's redemptionCode")
            code = input.redemption_code
        else:
            named = None if input.member_id is None else parse_id(input.member_id)
            if named is None:
                return t.RedemptionNotAllowed(message="agents name the memberId")
            if not (input.reason or "").strip():
                return t.RedemptionNotAllowed(message="agents give a reason (it is audited)")
            member, reason = named, input.reason
        ctx = info.context
        return await _run(  # type: ignore[no-any-return]
            info,
            lambda s: redemption.place_hold(
                session=s,
                program=program(),
                actor=ctx.actor,
                line=input.line,
                points=input.points,
                order_ref=input.order_ref,
                idempotency_key=input.idempotency_key,
                member_id=member,
                redemption_code=code,
                keyring=ctx.keyring,
                hold_ttl_s=input.hold_ttl_s,
                reason=reason,
            ),
            t.RedeemPointsSuccess,
        )

    @strawberry.mutation(
        permission_classes=[CanRedeem],
        description="Spend a pending hold, all of it or `points` (the rest goes back).",
    )
    async def capture_redemption(
        self, info: Info[Context, Any], input: CaptureRedemptionInput
    ) -> t.CaptureRedemptionResult:
        ctx = info.context
        try:
            hold_id = _hold_id(input.redemption_id)
        except rerrors.HoldNotFound as exc:
            return typed_error(exc)  # type: ignore[no-any-return]
        return await _run(  # type: ignore[no-any-return]
            info,
            lambda s: redemption.capture(
                session=s,
                program=program(),
                actor=ctx.actor,
                hold_id=hold_id,
                points=input.points,
                idempotency_key=input.idempotency_key,
                scope=scope_of(ctx.principal),
            ),
            t.CaptureRedemptionSuccess,
        )

    @strawberry.mutation(
        permission_classes=[CanRedeem],
        description="Void a pending hold: the points go back to their lots.",
    )
    async def cancel_redemption(
        self, info: Info[Context, Any], input: CancelRedemptionInput
    ) -> t.CancelRedemptionResult:
        ctx = info.context
        try:
            hold_id = _hold_id(input.redemption_id)
        except rerrors.HoldNotFound as exc:
            return typed_error(exc)  # type: ignore[no-any-return]
        return await _run(  # type: ignore[no-any-return]
            info,
            lambda s: redemption.cancel(
                session=s,
                program=program(),
                actor=ctx.actor,
                hold_id=hold_id,
                idempotency_key=input.idempotency_key,
                scope=scope_of(ctx.principal),
            ),
            t.CancelRedemptionSuccess,
        )

    @strawberry.mutation(
        permission_classes=[CanRefund],
        description="Refund a captured redemption (the order was returned): the points go back "
        "to the lots they came from; lots that expired since go to expiry.",
    )
    async def refund_redemption(
        self, info: Info[Context, Any], input: RefundRedemptionInput
    ) -> t.RefundRedemptionResult:
        ctx = info.context
        try:
            hold_id = _hold_id(input.redemption_id)
        except rerrors.HoldNotFound as exc:
            return typed_error(exc)  # type: ignore[no-any-return]
        return await _run(  # type: ignore[no-any-return]
            info,
            lambda s: redemption.refund_redemption(
                session=s,
                program=program(),
                actor=ctx.actor,
                hold_id=hold_id,
                idempotency_key=input.idempotency_key,
                points=input.points,
                scope=scope_of(ctx.principal),
            ),
            t.RefundRedemptionSuccess,
        )

    @strawberry.mutation(
        permission_classes=[IsMember],
        description=f"A one-time code to show a point of sale (valid {DEFAULT_TTL_S // 60} "
        "minutes unless ttlS says less or more, at most 15).",
    )
    async def issue_redemption_code(
        self, info: Info[Context, Any], input: IssueRedemptionCodeInput
    ) -> t.IssueRedemptionCodeResult:
        ctx = info.context
        member = ctx.principal.member_id
        assert member is not None  # member tokens always carry one (hub.core.tokens)
        try:
            async with ctx.db.unit_of_work() as session:
                issued = await issue_redemption_code(
                    session=session,
                    keyring=ctx.keyring,
                    member_id=member,
                    now=utcnow(),
                    ttl_s=input.ttl_s if input.ttl_s is not None else DEFAULT_TTL_S,
                )
        except rerrors.InvalidRedemption as exc:
            return typed_error(exc)  # type: ignore[no-any-return]
        return t.IssueRedemptionCodeSuccess(redemption_code=t.RedemptionCode.from_model(issued))
