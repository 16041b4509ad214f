"""GraphQL views of a member's loyalty: tier, points, ledger, benefits; mutation results."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from hub.core.errors import HubError
from hub.loyalty import views
from hub.loyalty.adjustments import Adjustment
from hub.loyalty.claims import Claim
from schema import ids
from schema.context import Context
from schema.limits import page_size
from schema.loyalty.loaders import loaders


@strawberry.type(description="A member's tier (会员等级) and growth (成长值) this period.")
class LoyaltyTier:
    code: str
    name: str
    growth: int
    next_tier: str | None
    progress: float = strawberry.field(description="Toward the next tier, 0 to 1.")
    retention: int = strawberry.field(description="Growth still needed to keep the tier (保级).")
    period_end: datetime

    @classmethod
    def from_model(cls, view: views.TierView) -> LoyaltyTier:
        return cls(
            code=view.code,
            name=view.name,
            growth=view.growth,
            next_tier=view.next_tier,
            progress=view.progress,
            retention=view.retention,
            period_end=view.period_end,
        )


@strawberry.type
class ExpiringPoints:
    amount: int
    expires_at: datetime


@strawberry.type
class LineBalance:
    line: str
    available: int


@strawberry.type(description="Points: spendable, pending (return window), expiring soon.")
class LoyaltyPoints:
    available: int
    pending: int
    debt: int
    expiring_soon: list[ExpiringPoints]
    by_business_line: list[LineBalance]

    @classmethod
    def from_model(cls, view: views.PointsView) -> LoyaltyPoints:
        return cls(
            available=view.available,
            pending=view.pending,
            debt=view.debt,
            expiring_soon=[
                ExpiringPoints(amount=e.amount, expires_at=e.expires_at) for e in view.expiring_soon
            ],
            by_business_line=[
                LineBalance(line=b.line, available=b.available) for b in view.by_business_line
            ],
        )


@strawberry.type(description="One ledger transfer as the member sees it.")
class LedgerEntry:
    id: strawberry.ID
    at: datetime
    code: str
    delta: int = strawberry.field(description="Change of available points (negative: out).")
    pending_delta: int
    reason: str | None

    @classmethod
    def from_model(cls, entry: views.LedgerEntry) -> LedgerEntry:
        return cls(
            id=strawberry.ID(str(entry.id)),
            at=entry.at,
            code=entry.code,
            delta=entry.delta,
            pending_delta=entry.pending_delta,
            reason=entry.reason,
        )


@strawberry.type
class LedgerEdge:
    cursor: str
    node: LedgerEntry


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class LedgerConnection:
    edges: list[LedgerEdge]
    page_info: PageInfo


def encode_cursor(transfer_id: int) -> str:
    return base64.urlsafe_b64encode(f"transfer:{transfer_id}".encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        transfer = ids.parse_id(value)
        if kind == "transfer" and transfer is not None:
            return transfer
    except (ValueError, UnicodeDecodeError):
        pass
    # A HubError reaches the caller as written; a ValueError was masked as an internal error.
    raise HubError("after: not a cursor from this ledger")


@strawberry.type
class BenefitEntitlement:
    code: str
    line: str
    description: str
    period: str
    remaining: int

    @classmethod
    def from_model(cls, view: views.BenefitView) -> BenefitEntitlement:
        return cls(
            code=view.code,
            line=view.line,
            description=view.description,
            period=view.period,
            remaining=view.remaining,
        )


@strawberry.type(description="One member's loyalty: tier, points, ledger and benefits.")
class MemberLoyalty:
    member_id: strawberry.ID
    _member: strawberry.Private[int]

    @classmethod
    def from_model(cls, member_id: int) -> MemberLoyalty:
        return cls(member_id=strawberry.ID(str(member_id)), _member=member_id)

    @strawberry.field
    async def tier(self, info: Info[Context, Any]) -> LoyaltyTier:
        return LoyaltyTier.from_model(
            (await loaders(info).summary_by_member.load(self._member)).tier
        )

    @strawberry.field
    async def points(self, info: Info[Context, Any]) -> LoyaltyPoints:
        return LoyaltyPoints.from_model(
            (await loaders(info).summary_by_member.load(self._member)).points
        )

    @strawberry.field
    async def benefits(self, info: Info[Context, Any]) -> list[BenefitEntitlement]:
        found = (await loaders(info).summary_by_member.load(self._member)).benefits
        return [BenefitEntitlement.from_model(b) for b in found]

    @strawberry.field(description="Transfers, newest first; `first` at most 100.")
    async def ledger(
        self,
        info: Info[Context, Any],
        first: int | None = None,
        after: Annotated[str | None, strawberry.argument(description="endCursor")] = None,
    ) -> LedgerConnection:
        size = page_size(first)
        page = await loaders(info).ledger_by_member.load((self._member, size, decode_cursor(after)))
        edges = [
            LedgerEdge(cursor=encode_cursor(e.id), node=LedgerEntry.from_model(e))
            for e in page.entries
        ]
        return LedgerConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
            ),
        )


# -- mutation inputs and results ------------------------------------------------------------
@strawberry.input
class AdjustPointsInput:
    member_id: strawberry.ID
    amount: int
    reason: str
    idempotency_key: str


@strawberry.type
class AdjustPointsSuccess:
    member_id: strawberry.ID
    amount: int
    available: int
    replayed: bool

    @classmethod
    def from_model(cls, result: Adjustment) -> AdjustPointsSuccess:
        return cls(
            member_id=strawberry.ID(str(result.member_id)),
            amount=result.amount,
            available=result.available,
            replayed=result.replayed,
        )


@strawberry.input
class ClaimBenefitInput:
    code: str
    idempotency_key: str


@strawberry.type
class ClaimBenefitSuccess:
    code: str
    line: str
    remaining: int
    claimed_at: datetime
    replayed: bool

    @classmethod
    def from_model(cls, claim: Claim) -> ClaimBenefitSuccess:
        return cls(
            code=claim.benefit,
            line=claim.line,
            remaining=claim.remaining,
            claimed_at=claim.claimed_at,
            replayed=claim.replayed,
        )


@strawberry.type
class InsufficientPoints:
    message: str
    requested: int
    available: int


@strawberry.type(description="The request broke a rule: amount, reason, key, or the daily cap.")
class AdjustmentRejected:
    code: str
    message: str


@strawberry.type
class IdempotencyConflict:
    message: str
    field: str


@strawberry.type
class MemberNotFound:
    message: str


@strawberry.type
class NotEntitled:
    message: str
    min_tier: str


@strawberry.type
class QuotaExhausted:
    message: str
    quota: int


@strawberry.type
class UnknownBenefit:
    message: str


AdjustPointsResult = Annotated[
    AdjustPointsSuccess
    | InsufficientPoints
    | AdjustmentRejected
    | IdempotencyConflict
    | MemberNotFound,
    strawberry.union("AdjustPointsResult"),
]
ClaimBenefitResult = Annotated[
    ClaimBenefitSuccess
    | NotEntitled
    | QuotaExhausted
    | UnknownBenefit
    | IdempotencyConflict
    | AdjustmentRejected
    | MemberNotFound,
    strawberry.union("ClaimBenefitResult"),
]
