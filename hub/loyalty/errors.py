"""The loyalty subtree of the hub's exception tree (see ``hub.core.errors``).

    HubError
    └── LoyaltyError
        ├── InsufficientPoints      a burn asks for more than the usable lots hold
        ├── UnknownBusinessLine     a line the program does not declare
        ├── UnknownTier             a tier code the program does not declare
        ├── InvalidActivity         an activity's amounts or details cannot be earned on
        ├── RefundExceedsOriginal   refunds add up to more than the original amount
        ├── UnknownBenefit          a benefit code the program does not declare
        ├── NotEntitled             the member's tier is below the benefit's minimum tier
        ├── QuotaExhausted          the benefit's quota for this period is used up
        ├── InvalidAdjustment       zero, too large for one adjustment, or no reason given
        ├── InvalidClaim            a benefit claim without a usable idempotency key
        └── AdjustmentCapExceeded   the agent's adjustments today would pass the daily cap

Configuration problems (a bad program file) are ``hub.core.errors.ConfigError``: they stop
start-up, while these are raised while the hub runs. Messages carry amounts and codes, never PII.
"""

from __future__ import annotations

from hub.core.errors import HubError


class LoyaltyError(HubError):
    code = "LOYALTY_ERROR"


class InsufficientPoints(LoyaltyError):
    code = "INSUFFICIENT_POINTS"

    def __init__(self, *, requested: int, available: int) -> None:
        super().__init__(f"asked for {requested} points but only {available} are available")
        self.requested = requested
        self.available = available


class UnknownBusinessLine(LoyaltyError):
    code = "UNKNOWN_BUSINESS_LINE"

    def __init__(self, line: str) -> None:
        super().__init__(f"business line {line!r} is not declared in the loyalty program")
        self.line = line


class UnknownTier(LoyaltyError):
    code = "UNKNOWN_TIER"

    def __init__(self, tier: str) -> None:
        super().__init__(f"tier {tier!r} is not declared in the loyalty program")
        self.tier = tier


class InvalidActivity(LoyaltyError):
    """An activity reached loyalty with amounts or details it cannot earn on (names the field)."""

    code = "INVALID_ACTIVITY"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RefundExceedsOriginal(LoyaltyError):
    code = "REFUND_EXCEEDS_ORIGINAL"

    def __init__(self, *, original_fen: int, refunded_fen: int) -> None:
        super().__init__(
            f"refunds would total {refunded_fen} fen, more than the original {original_fen} fen"
        )
        self.original_fen = original_fen
        self.refunded_fen = refunded_fen


class UnknownBenefit(LoyaltyError):
    code = "UNKNOWN_BENEFIT"

    def __init__(self, benefit: str) -> None:
        super().__init__(f"benefit {benefit!r} is not declared in the loyalty program")
        self.benefit = benefit


class NotEntitled(LoyaltyError):
    code = "NOT_ENTITLED"

    def __init__(self, *, benefit: str, tier: str, min_tier: str) -> None:
        super().__init__(f"benefit {benefit!r} needs tier {min_tier} or above, member is {tier}")
        self.benefit = benefit
        self.tier = tier
        self.min_tier = min_tier


class QuotaExhausted(LoyaltyError):
    code = "QUOTA_EXHAUSTED"

    def __init__(self, *, benefit: str, quota: int) -> None:
        super().__init__(f"benefit {benefit!r} was already claimed {quota} times this period")
        self.benefit = benefit
        self.quota = quota


class InvalidAdjustment(LoyaltyError):
    code = "INVALID_ADJUSTMENT"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class AdjustmentCapExceeded(LoyaltyError):
    code = "ADJUSTMENT_CAP_EXCEEDED"

    def __init__(self, *, cap: int, used: int, requested: int) -> None:
        super().__init__(
            f"daily adjustment cap is {cap} points; {used} used today, {requested} more asked"
        )
        self.cap = cap
        self.used = used
        self.requested = requested


class InvalidClaim(LoyaltyError):
    code = "INVALID_CLAIM"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
