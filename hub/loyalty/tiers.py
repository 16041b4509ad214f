"""Tier rules (会员等级): pure functions over a member's tier and growth (成长值) in a period.

- Upgrade at once: as soon as growth in the current evaluation period reaches a higher tier's
  ``growth_threshold``, the member moves to the highest tier that growth reaches (tiers can be
  skipped).
- At the end of a period: a member whose growth in that period reached the current tier's
  ``retention_growth`` keeps it (or moves up if a threshold was reached); otherwise the program's
  ``downgrade`` rule applies: ``one_tier`` drops exactly one tier whatever the growth (the usual
  and gentler rule: a member is never pushed down several tiers by one quiet year), and
  ``to_retained`` drops to the highest lower tier whose retention the growth met.
- Periods: ``calendar_year`` (local 1 Jan – 31 Dec) or ``rolling_12_months`` counted from the
  day the member reached the current tier (see ``evaluation_period``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hub.loyalty.model import DowngradeRule, EvaluationPeriod, Program, Tier
from hub.loyalty.periods import Period, rolling_12_months, year_of


class TierChange(StrEnum):
    UPGRADE = "upgrade"
    KEEP = "keep"
    DOWNGRADE = "downgrade"


class TierReason(StrEnum):
    THRESHOLD_REACHED = "threshold_reached"  # growth reached a higher tier's threshold
    BELOW_NEXT_THRESHOLD = "below_next_threshold"  # mid-period, nothing to do yet
    RETENTION_MET = "retention_met"  # period ended, 保级 reached
    RETENTION_MISSED = "retention_missed"  # period ended, 保级 not reached
    LOWEST_TIER = "lowest_tier"  # period ended at the lowest tier: nothing to lose


@dataclass(frozen=True, slots=True)
class TierDecision:
    change: TierChange
    tier: str  # the tier after the decision
    previous: str
    reason: TierReason
    growth: int  # the growth the decision was made on


def tier_for_growth(tiers: Sequence[Tier], growth: int) -> Tier:
    """The highest tier whose threshold ``growth`` reaches; tiers are lowest first from 0."""
    reached = tiers[0]
    for tier in tiers:
        if growth >= tier.growth_threshold:
            reached = tier
    return reached


def next_tier(program: Program, tier_code: str) -> Tier | None:
    rank = program.tier(tier_code).rank
    return program.tiers[rank + 1] if rank + 1 < len(program.tiers) else None


def growth_to_next(program: Program, tier_code: str, growth_in_period: int) -> int | None:
    """Growth still needed this period for the next tier; ``None`` at the top tier."""
    upper = next_tier(program, tier_code)
    return None if upper is None else max(0, upper.growth_threshold - growth_in_period)


def evaluation_period(program: Program, *, at: datetime, tier_since: datetime) -> Period:
    """The evaluation period holding ``at``; ``tier_since`` anchors rolling twelve-month cycles."""
    tz = program.timezone
    if program.tier_policy.evaluation_period is EvaluationPeriod.CALENDAR_YEAR:
        return year_of(at, tz)
    return rolling_12_months(tier_since, at, tz)


def evaluate(
    program: Program, *, current_tier: str, growth_in_period: int, period_ended: bool
) -> TierDecision:
    """Decide a member's tier.

    Call with ``period_ended=False`` whenever growth changes (upgrades only), and once with
    ``period_ended=True`` and the growth of the period that just closed.
    """
    if growth_in_period < 0:
        raise ValueError("growth_in_period must not be negative")
    current = program.tier(current_tier)
    reached = tier_for_growth(program.tiers, growth_in_period)

    def decide(change: TierChange, tier: Tier, reason: TierReason) -> TierDecision:
        return TierDecision(change, tier.code, current.code, reason, growth_in_period)

    if reached.rank > current.rank:
        return decide(TierChange.UPGRADE, reached, TierReason.THRESHOLD_REACHED)
    if not period_ended:
        return decide(TierChange.KEEP, current, TierReason.BELOW_NEXT_THRESHOLD)
    if current.rank == 0:
        return decide(TierChange.KEEP, current, TierReason.LOWEST_TIER)
    if growth_in_period >= current.retention_growth:
        return decide(TierChange.KEEP, current, TierReason.RETENTION_MET)
    return decide(
        TierChange.DOWNGRADE,
        _downgraded(program, current, growth_in_period),
        TierReason.RETENTION_MISSED,
    )


def _downgraded(program: Program, current: Tier, growth: int) -> Tier:
    lower = program.tiers[: current.rank]
    if program.tier_policy.downgrade is DowngradeRule.ONE_TIER:
        return lower[-1]
    # The lowest tier's retention is 0 (validated), so some lower tier is always retained.
    return next(t for t in reversed(lower) if growth >= t.retention_growth)
