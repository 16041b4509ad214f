"""GraphQL views of redemption: quotes, redemptions (holds), codes, settlement; inputs; errors.

``InsufficientPoints`` and ``IdempotencyConflict`` are the loyalty schema's own types, so a
client handles them the same way whichever mutation returned them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import strawberry

from hub.loyalty import settlement
from hub.loyalty.redemption_codes import IssuedCode
from hub.loyalty.redemption_views import Quote
from hub.loyalty.redemption_views import Redemption as RedemptionModel
from schema.loyalty.types import IdempotencyConflict, InsufficientPoints

__all__ = ["IdempotencyConflict", "InsufficientPoints"]


@strawberry.enum
class RedemptionState(StrEnum):
    PENDING = "pending"
    CAPTURED = "captured"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"


@strawberry.type(description="Points a redemption took from one lot, and what became of them.")
class RedemptionLot:
    lot_id: strawberry.ID
    issuer_line: str
    points: int
    captured: int
    refunded: int


@strawberry.type(description="A redemption: a hold on points, then captured, voided or refunded.")
class Redemption:
    id: strawberry.ID
    member_id: strawberry.ID
    line: str
    points: int
    order_ref: str
    state: RedemptionState
    captured_points: int
    refunded_points: int
    amount_fen: int = strawberry.field(description="What the points pay for at the line.")
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None
    available: int = strawberry.field(description="The member's available points after this.")
    lots: list[RedemptionLot]
    replayed: bool = strawberry.field(description="True when an idempotency key replayed it.")

    @classmethod
    def from_model(cls, r: RedemptionModel) -> Redemption:
        return cls(
            id=strawberry.ID(str(r.id)),
            member_id=strawberry.ID(str(r.member_id)),
            line=r.line,
            points=r.points,
            order_ref=r.order_ref,
            state=RedemptionState(r.state),
            captured_points=r.captured_points,
            refunded_points=r.refunded_points,
            amount_fen=r.amount_fen,
            created_at=r.created_at,
            expires_at=r.expires_at,
            resolved_at=r.resolved_at,
            available=r.available,
            lots=[
                RedemptionLot(
                    lot_id=strawberry.ID(str(x.lot_id)),
                    issuer_line=x.issuer_line,
                    points=x.points,
                    captured=x.captured,
                    refunded=x.refunded,
                )
                for x in r.lots
            ],
            replayed=r.replayed,
        )


@strawberry.type
class QuoteLot:
    lot_id: strawberry.ID
    issuer_line: str
    points: int
    expires_at: datetime | None


@strawberry.type(description="Points for a value at a line, and the lots a hold would use.")
class RedemptionQuote:
    line: str
    points: int
    amount_fen: int
    fen_per_point: str = strawberry.field(description="Decimal, as written in the program.")
    available: int
    enough: bool
    lots: list[QuoteLot]

    @classmethod
    def from_model(cls, q: Quote) -> RedemptionQuote:
        return cls(
            line=q.line,
            points=q.points,
            amount_fen=q.amount_fen,
            fen_per_point=str(q.fen_per_point),
            available=q.available,
            enough=q.enough,
            lots=[
                QuoteLot(
                    lot_id=strawberry.ID(str(u.lot_id)),
                    issuer_line=u.issuer_line,
                    points=u.points,
                    expires_at=u.expires_at,
                )
                for u in q.lots
            ],
        )


@strawberry.type(description="Show this once to a point of sale; it works once, for minutes.")
class RedemptionCode:
    code: str
    expires_at: datetime

    @classmethod
    def from_model(cls, issued: IssuedCode) -> RedemptionCode:
        return cls(code=issued.code, expires_at=issued.expires_at)


# -- settlement ---------------------------------------------------------------------------------
@strawberry.type
class SettlementPair:
    issuer_line: str
    redeeming_line: str
    points: int
    amount_fen: int


@strawberry.type(description="After netting: payerLine pays payeeLine amountFen.")
class SettlementObligation:
    payer_line: str
    payee_line: str
    points: int
    amount_fen: int


@strawberry.type
class SettlementPosition:
    line: str
    net_points: int
    net_fen: int
    clearing_points: int
    ties_out: bool


@strawberry.type
class Settlement:
    period: str
    state: str
    pairs: list[SettlementPair]
    netted: list[SettlementObligation]
    lines: list[SettlementPosition]
    clearing_sum: int
    ties_out: bool
    csv: str

    @classmethod
    def from_model(cls, report: settlement.SettlementReport) -> Settlement:
        return cls(
            period=report.period,
            state=report.state,
            pairs=[
                SettlementPair(
                    issuer_line=p.issuer_line,
                    redeeming_line=p.redeeming_line,
                    points=p.points,
                    amount_fen=p.amount_fen,
                )
                for p in report.pairs
            ],
            netted=[
                SettlementObligation(
                    payer_line=n.payer_line,
                    payee_line=n.payee_line,
                    points=n.points,
                    amount_fen=n.amount_fen,
                )
                for n in report.netted
            ],
            lines=[
                SettlementPosition(
                    line=p.line,
                    net_points=p.net_points,
                    net_fen=p.net_fen,
                    clearing_points=p.clearing_points,
                    ties_out=p.ties_out,
                )
                for p in report.lines
            ],
            clearing_sum=report.clearing_sum,
            ties_out=report.ties_out,
            csv=settlement.export_csv(report),
        )


# -- inputs ---------------------------------------------------------------------------------
@strawberry.input(
    description="Members redeem for themselves; a point of sale gives the member's one-time "
    "redemptionCode; an agent names memberId and gives a reason (audited)."
)
class RedeemPointsInput:
    line: str
    points: int
    order_ref: str
    idempotency_key: str
    hold_ttl_s: int | None = None
    member_id: strawberry.ID | None = None
    redemption_code: str | None = None
    reason: str | None = None


@strawberry.input
class CaptureRedemptionInput:
    redemption_id: strawberry.ID
    points: int | None = strawberry.field(default=None, description="Default: all of the hold.")
    idempotency_key: str | None = None


@strawberry.input
class CancelRedemptionInput:
    redemption_id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.input
class RefundRedemptionInput:
    redemption_id: strawberry.ID
    idempotency_key: str
    points: int | None = strawberry.field(default=None, description="Default: all not refunded.")


@strawberry.input
class IssueRedemptionCodeInput:
    ttl_s: int | None = None


# -- results and typed errors ----------------------------------------------------------------
@strawberry.type
class RedeemPointsSuccess:
    redemption: Redemption


@strawberry.type
class CaptureRedemptionSuccess:
    redemption: Redemption


@strawberry.type
class CancelRedemptionSuccess:
    redemption: Redemption


@strawberry.type
class RefundRedemptionSuccess:
    redemption: Redemption


@strawberry.type
class IssueRedemptionCodeSuccess:
    redemption_code: RedemptionCode


@strawberry.type
class AlreadyCaptured:
    message: str
    redemption_id: strawberry.ID


@strawberry.type
class AlreadyCancelled:
    message: str
    redemption_id: strawberry.ID


@strawberry.type
class HoldExpired:
    message: str
    redemption_id: strawberry.ID


@strawberry.type
class RedemptionNotFound:
    message: str


@strawberry.type
class NotCaptured:
    message: str
    state: str


@strawberry.type
class RefundExceedsCaptured:
    message: str
    captured: int
    refunded: int
    requested: int


@strawberry.type(description="An argument out of range; field names it.")
class InvalidRedemption:
    message: str
    field: str


@strawberry.type
class InvalidRedemptionCode:
    message: str


@strawberry.type
class NotRedeemableHere:
    message: str
    line: str


@strawberry.type(description="This caller may not redeem this way (see RedeemPointsInput).")
class RedemptionNotAllowed:
    message: str


QuoteRedemptionResult = Annotated[
    RedemptionQuote | NotRedeemableHere | InvalidRedemption,
    strawberry.union("QuoteRedemptionResult"),
]
RedeemPointsResult = Annotated[
    RedeemPointsSuccess
    | InsufficientPoints
    | NotRedeemableHere
    | InvalidRedemption
    | InvalidRedemptionCode
    | RedemptionNotAllowed
    | IdempotencyConflict,
    strawberry.union("RedeemPointsResult"),
]
CaptureRedemptionResult = Annotated[
    CaptureRedemptionSuccess
    | AlreadyCaptured
    | AlreadyCancelled
    | HoldExpired
    | RedemptionNotFound
    | InvalidRedemption
    | IdempotencyConflict,
    strawberry.union("CaptureRedemptionResult"),
]
CancelRedemptionResult = Annotated[
    CancelRedemptionSuccess
    | AlreadyCaptured
    | AlreadyCancelled
    | HoldExpired
    | RedemptionNotFound
    | InvalidRedemption
    | IdempotencyConflict,
    strawberry.union("CancelRedemptionResult"),
]
RefundRedemptionResult = Annotated[
    RefundRedemptionSuccess
    | NotCaptured
    | RefundExceedsCaptured
    | RedemptionNotFound
    | InvalidRedemption
    | IdempotencyConflict,
    strawberry.union("RefundRedemptionResult"),
]
IssueRedemptionCodeResult = Annotated[
    IssueRedemptionCodeSuccess | InvalidRedemption,
    strawberry.union("IssueRedemptionCodeResult"),
]
