"""Redemption's branch of the loyalty exception tree (see ``hub.loyalty.errors``).

    HubError
    └── LoyaltyError
        ├── InsufficientPoints          (hub.loyalty.errors) the usable lots hold less
        └── RedemptionError
            ├── InvalidRedemption       an argument out of range (names the field)
            ├── NotRedeemableHere       the line takes no points (no redemption rate)
            ├── HoldNotFound            no such hold for this caller
            ├── AlreadyCaptured         a second capture / cancel of a captured hold
            ├── AlreadyCancelled        a cancelled hold resolved again
            ├── HoldExpired             the hold's TTL passed before it was captured
            ├── NotCaptured             refund of a hold that was never captured
            ├── RefundExceedsCaptured   refunds would total more than was captured
            ├── InvalidRedemptionCode   unknown, expired, used, or another member's code
            └── PeriodClosed            a settlement period that is closed

``hub.core.errors.IdempotencyConflict`` (same key, different input) names the field that
differs. Messages carry ids, amounts and codes, never PII.
"""

from __future__ import annotations

from hub.loyalty.errors import LoyaltyError


class RedemptionError(LoyaltyError):
    code = "REDEMPTION_ERROR"


class InvalidRedemption(RedemptionError):
    code = "INVALID_REDEMPTION"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotRedeemableHere(RedemptionError):
    code = "NOT_REDEEMABLE_HERE"

    def __init__(self, line: str) -> None:
        super().__init__(f"business line {line!r} does not take points")
        self.line = line


class HoldNotFound(RedemptionError):
    code = "HOLD_NOT_FOUND"

    def __init__(self, hold_id: int) -> None:
        super().__init__(f"no redemption {hold_id} that this caller may act on")
        self.hold_id = hold_id


class _Resolved(RedemptionError):
    verb = "resolved"

    def __init__(self, hold_id: int) -> None:
        super().__init__(f"redemption {hold_id} was already {self.verb}")
        self.hold_id = hold_id


class AlreadyCaptured(_Resolved):
    code = "ALREADY_CAPTURED"
    verb = "captured"


class AlreadyCancelled(_Resolved):
    code = "ALREADY_CANCELLED"
    verb = "cancelled"


class HoldExpired(_Resolved):
    code = "HOLD_EXPIRED"
    verb = "expired (its hold time passed)"


class NotCaptured(RedemptionError):
    code = "NOT_CAPTURED"

    def __init__(self, hold_id: int, state: str) -> None:
        super().__init__(f"redemption {hold_id} is {state}, not captured: nothing to refund")
        self.hold_id = hold_id
        self.state = state


class RefundExceedsCaptured(RedemptionError):
    code = "REFUND_EXCEEDS_CAPTURED"

    def __init__(self, *, hold_id: int, captured: int, refunded: int, requested: int) -> None:
        super().__init__(
            f"redemption {hold_id}: {requested} more points asked back, but only "
            f"{captured - refunded} of {captured} captured are not refunded yet"
        )
        self.hold_id = hold_id
        self.captured = captured
        self.refunded = refunded
        self.requested = requested


class InvalidRedemptionCode(RedemptionError):
    code = "INVALID_REDEMPTION_CODE"

    def __init__(self, reason: str) -> None:
        super().__init__(f"redemption code {reason}")
        self.reason = reason


class PeriodClosed(RedemptionError):
    code = "PERIOD_CLOSED"

    def __init__(self, period: str) -> None:
        super().__init__(f"settlement period {period} is closed")
        self.period = period
