"""The loyalty program's frozen objects; ``hub.loyalty.program`` reads and validates them.

Rates are ``Decimal`` so the file can say ``1.5`` points per yuan; earning turns them into exact
fractions and rounds once (see ``hub.loyalty.earning``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from hub.core.records import ActivityKind
from hub.loyalty.errors import UnknownBusinessLine, UnknownTier


class RefundPolicy(StrEnum):
    WITHIN_BALANCE = "within_balance"  # claw back only what is left; the rest is written off
    ALLOW_NEGATIVE = "allow_negative"  # claw back everything, the balance may go below zero


class PendingFrom(StrEnum):
    OCCURRED_AT = "occurred_at"  # e-commerce: the return window runs from the order
    CHECKOUT = "checkout"  # hotel: from the departure date in the stay's details


class ExpiryKind(StrEnum):
    END_OF_NEXT_YEAR = "end_of_next_year"
    DAYS = "days"
    END_OF_MONTH = "end_of_month"


class EvaluationPeriod(StrEnum):
    CALENDAR_YEAR = "calendar_year"
    ROLLING_12_MONTHS = "rolling_12_months"


class DowngradeRule(StrEnum):
    ONE_TIER = "one_tier"
    TO_RETAINED = "to_retained"


class QuotaPeriod(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class BusinessLine:
    code: str
    name: str
    timezone: ZoneInfo
    pending_days: int
    pending_from: PendingFrom
    refund_policy: RefundPolicy
    redemption_fen_per_point: Decimal | None  # None: members cannot spend points at this line


RATE_SCALE = 10**6  # rates have at most 6 decimal places (validated), so scaled they are ints


def scale_rate(value: Decimal) -> int:
    scaled = value * RATE_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than 6 decimal places")
    return int(scaled)


@dataclass(frozen=True, slots=True)
class ScaledRates:
    """A rule's rates × ``RATE_SCALE`` as integers, so earning never touches decimals."""

    points_per_yuan: int
    points_per_night: int
    growth_per_yuan: int
    growth_per_night: int
    multipliers: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class EarnRule:
    index: int  # position in the file, so errors and provenance can point at it
    line: str
    kind: ActivityKind
    points_per_yuan: Decimal = Decimal(0)
    points_per_night: Decimal = Decimal(0)
    fixed_points: int = 0
    growth_per_yuan: Decimal = Decimal(0)
    growth_per_night: Decimal = Decimal(0)
    fixed_growth: int = 0
    min_amount_fen: int = 0  # below this the per-yuan part earns nothing
    max_points: int | None = None  # cap per activity, after the tier multiplier
    max_growth: int | None = None
    exclude: tuple[str, ...] = ()  # details keys (fen) taken out of amount_fen before earning
    multipliers: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({}))
    scaled: ScaledRates = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scaled = ScaledRates(
            points_per_yuan=scale_rate(self.points_per_yuan),
            points_per_night=scale_rate(self.points_per_night),
            growth_per_yuan=scale_rate(self.growth_per_yuan),
            growth_per_night=scale_rate(self.growth_per_night),
            multipliers=MappingProxyType(
                {tier: scale_rate(m) for tier, m in self.multipliers.items()}
            ),
        )
        object.__setattr__(self, "scaled", scaled)


@dataclass(frozen=True, slots=True)
class ExpiryPolicy:
    kind: ExpiryKind
    days: int = 0  # for DAYS: valid through the end of the local day earned + days
    months: int = 0  # for END_OF_MONTH: 0 = end of the month earned, 1 = end of the next ...


@dataclass(frozen=True, slots=True)
class Tier:
    code: str
    name: str
    rank: int  # 0 = lowest
    growth_threshold: int
    retention_growth: int


@dataclass(frozen=True, slots=True)
class TierPolicy:
    evaluation_period: EvaluationPeriod
    downgrade: DowngradeRule


@dataclass(frozen=True, slots=True)
class Benefit:
    code: str
    line: str
    min_tier: str
    quota: int
    period: QuotaPeriod
    description: str


@dataclass(frozen=True, slots=True)
class AgentPolicy:
    daily_adjustment_cap_points: int  # per agent per local day, sum of absolute adjustments
    max_single_adjustment_points: int


@dataclass(frozen=True, slots=True)
class Program:
    name: str
    version: int
    timezone: ZoneInfo
    lines: Mapping[str, BusinessLine]
    earn_rules: tuple[EarnRule, ...]
    expiry: ExpiryPolicy
    tiers: tuple[Tier, ...]  # lowest first
    tier_policy: TierPolicy
    benefits: tuple[Benefit, ...]
    settlement_fen_per_point: Mapping[str, Decimal]  # what the issuing line pays per point
    agent: AgentPolicy
    _rules: Mapping[tuple[str, str], EarnRule] = field(init=False, repr=False, compare=False)
    _tiers: Mapping[str, Tier] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rules = {(r.line, r.kind.value): r for r in self.earn_rules}
        object.__setattr__(self, "_rules", MappingProxyType(rules))
        object.__setattr__(self, "_tiers", MappingProxyType({t.code: t for t in self.tiers}))

    def line(self, code: str) -> BusinessLine:
        try:
            return self.lines[code]
        except KeyError:
            raise UnknownBusinessLine(code) from None

    def tier(self, code: str) -> Tier:
        try:
            return self._tiers[code]
        except KeyError:
            raise UnknownTier(code) from None

    def rule_for(self, line: str, kind: str) -> EarnRule | None:
        return self._rules.get((line, str(kind)))
