"""What an activity earns: points, growth, when they become available and when they expire.

Pure functions over the program; the ledger posts what they return. Integer arithmetic only
(rates are scaled to integers, see ``model.ScaledRates``) and one declared rounding: **floor**,
applied once per activity after the tier multiplier, so 1.5 points per yuan on 0.99 yuan at ×1.3 is
floor(1.9305) = 1 point, never the sum of separately rounded parts.

Pending: points wait ``pending_days`` after the order (e-commerce return window) or after the
departure date (hotel, ``details["departure"]``). The pending period is a property of the line,
not of the activity's status; the ledger decides whether a pending-status activity accrues now.
Expiry is counted from the moment points become available (``pending_until`` or occurrence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from hub.core.records import ActivityKind, ActivityStatus
from hub.loyalty import expiry
from hub.loyalty.errors import InvalidActivity, RefundExceedsOriginal
from hub.loyalty.model import RATE_SCALE, BusinessLine, EarnRule, PendingFrom, Program
from hub.loyalty.periods import midnight

FEN_PER_YUAN = 100
_UNIT = FEN_PER_YUAN * RATE_SCALE
DEPARTURE_KEY = "departure"


class ActivityLike(Protocol):
    """The fields of ``hub.core.records.Activity`` (or a stored activity row) that earning reads."""

    @property
    def business_line(self) -> str: ...
    @property
    def kind(self) -> ActivityKind: ...
    @property
    def status(self) -> ActivityStatus: ...
    @property
    def amount_fen(self) -> int: ...
    @property
    def quantity(self) -> int: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Earning:
    points: int
    growth: int
    pending_until: datetime | None  # None: available at once
    expires_at: datetime | None  # None when nothing was earned
    rule: EarnRule | None  # None when no rule applies (cancelled, or no rule for line/kind)


NOTHING = Earning(points=0, growth=0, pending_until=None, expires_at=None, rule=None)


def points_for(activity: ActivityLike, program: Program, tier_code: str) -> Earning:
    """Points and growth an activity earns for a member at ``tier_code``.

    Raises ``UnknownBusinessLine``/``UnknownTier`` for codes the program does not declare and
    ``InvalidActivity`` for refunds (see ``refund_points``) or unreadable details.
    """
    line = program.line(activity.business_line)
    program.tier(tier_code)
    if activity.kind is ActivityKind.REFUND:
        raise InvalidActivity("kind", "a refund earns nothing: reverse the original pro rata")
    rule = program.rule_for(line.code, activity.kind)
    if rule is None or activity.status is ActivityStatus.CANCELLED:
        return NOTHING

    rates = rule.scaled
    basis_fen = earning_basis_fen(activity, rule)
    per_yuan_fen = basis_fen if basis_fen >= rule.min_amount_fen else 0
    nights = activity.quantity
    multiplier = rates.multipliers.get(tier_code, RATE_SCALE)
    # Everything in units of 1 / (FEN_PER_YUAN × RATE_SCALE) of a point, so one floor division
    # at the end is the only rounding.
    raw_points = (
        per_yuan_fen * rates.points_per_yuan
        + nights * rates.points_per_night * FEN_PER_YUAN
        + rule.fixed_points * FEN_PER_YUAN * RATE_SCALE
    )
    raw_growth = (
        per_yuan_fen * rates.growth_per_yuan
        + nights * rates.growth_per_night * FEN_PER_YUAN
        + rule.fixed_growth * FEN_PER_YUAN * RATE_SCALE
    )
    points = _capped(raw_points * multiplier // (_UNIT * RATE_SCALE), rule.max_points)
    growth = _capped(raw_growth // _UNIT, rule.max_growth)
    if points == 0 and growth == 0:
        return Earning(0, 0, None, None, rule)
    pending = pending_until(activity, line)
    available_at = pending or activity.occurred_at
    expires = expiry.expires_at(program.expiry, available_at, tz=program.timezone)
    return Earning(points, growth, pending, expires if points else None, rule)


def earning_basis_fen(activity: ActivityLike, rule: EarnRule) -> int:
    """``amount_fen`` less the detail amounts the rule excludes (e.g. shipping), never below 0."""
    excluded = 0
    for key in rule.exclude:
        value = activity.details.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidActivity(f"details.{key}", "must be a non-negative integer of fen")
        excluded += value
    return max(0, activity.amount_fen - excluded)


def pending_until(activity: ActivityLike, line: BusinessLine) -> datetime | None:
    """When the points stop being pending, or ``None`` if they are available at once."""
    start = activity.occurred_at
    if line.pending_from is PendingFrom.CHECKOUT and DEPARTURE_KEY in activity.details:
        departure = _as_date(
            activity.details[DEPARTURE_KEY], f"details.{DEPARTURE_KEY}", line.timezone
        )
        start = midnight(departure, line.timezone)
    until = start + timedelta(days=line.pending_days)
    return until if until > activity.occurred_at else None


def refund_points(
    *,
    original_points: int,
    original_amount_fen: int,
    refund_amount_fen: int,
    already_refunded_fen: int = 0,
    already_refunded_points: int = 0,
) -> int:
    """Points to take back for one (partial) refund, pro rata to the amount refunded.

    Computed on the running total: floor(original × refunded-so-far / amount) minus what earlier
    refunds took. So partial refunds in any split never take back more than the original, and the
    refund that completes the amount takes back exactly the rest. Works the same for growth.
    An original with no amount (fixed or per-night points only) is reversed whole by any refund.
    """
    for name, value in (
        ("original_points", original_points),
        ("original_amount_fen", original_amount_fen),
        ("refund_amount_fen", refund_amount_fen),
        ("already_refunded_fen", already_refunded_fen),
        ("already_refunded_points", already_refunded_points),
    ):
        if value < 0:
            raise ValueError(f"{name} must not be negative")
    refunded_fen = already_refunded_fen + refund_amount_fen
    if refunded_fen > original_amount_fen:
        raise RefundExceedsOriginal(original_fen=original_amount_fen, refunded_fen=refunded_fen)
    if original_amount_fen == 0:
        return max(0, original_points - already_refunded_points)
    due = original_points * refunded_fen // original_amount_fen
    return max(0, due - already_refunded_points)


def _capped(value: int, cap: int | None) -> int:
    return value if cap is None else min(value, cap)


def _as_date(value: object, field: str, tz: ZoneInfo) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidActivity(field, "a date-time must carry a time zone")
        return value.astimezone(tz).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidActivity(field, "must be a date (YYYY-MM-DD)")
