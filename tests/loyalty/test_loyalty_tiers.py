from __future__ import annotations

from datetime import UTC, datetime

import pytest
from loyalty_helpers import shanghai

from hub.loyalty.errors import UnknownTier
from hub.loyalty.tiers import (
    TierChange,
    TierReason,
    evaluate,
    evaluation_period,
    growth_to_next,
    tier_for_growth,
)


@pytest.mark.parametrize(
    ("growth", "tier"), [(0, "V1"), (999, "V1"), (1000, "V2"), (4999, "V2"), (5000, "V3")]
)
def test_tier_for_growth_uses_thresholds_inclusively(program, growth, tier):
    assert tier_for_growth(program.tiers, growth).code == tier


def test_upgrade_happens_at_once_and_may_skip_tiers(program):
    decision = evaluate(program, current_tier="V1", growth_in_period=5200, period_ended=False)
    assert (decision.change, decision.tier, decision.previous) == (TierChange.UPGRADE, "V3", "V1")
    assert decision.reason is TierReason.THRESHOLD_REACHED


def test_no_downgrade_before_the_period_ends(program):
    decision = evaluate(program, current_tier="V3", growth_in_period=0, period_ended=False)
    assert (decision.change, decision.tier) == (TierChange.KEEP, "V3")
    assert decision.reason is TierReason.BELOW_NEXT_THRESHOLD


def test_retention_exactly_met_keeps_the_tier(program):
    decision = evaluate(program, current_tier="V3", growth_in_period=3000, period_ended=True)
    assert (decision.change, decision.tier, decision.reason) == (
        TierChange.KEEP,
        "V3",
        TierReason.RETENTION_MET,
    )


def test_missed_retention_drops_one_tier(program):
    decision = evaluate(program, current_tier="V3", growth_in_period=2999, period_ended=True)
    assert (decision.change, decision.tier, decision.reason) == (
        TierChange.DOWNGRADE,
        "V2",
        TierReason.RETENTION_MISSED,
    )
    # one_tier never drops further, however quiet the year was
    assert evaluate(program, current_tier="V3", growth_in_period=0, period_ended=True).tier == "V2"


def test_to_retained_drops_to_the_tier_the_growth_retains(with_policy):
    program = with_policy(('downgrade = "one_tier"', 'downgrade = "to_retained"'))
    assert (
        evaluate(program, current_tier="V3", growth_in_period=700, period_ended=True).tier == "V2"
    )
    assert (
        evaluate(program, current_tier="V3", growth_in_period=100, period_ended=True).tier == "V1"
    )


def test_period_end_growth_over_a_higher_threshold_upgrades(program):
    decision = evaluate(program, current_tier="V2", growth_in_period=6000, period_ended=True)
    assert (decision.change, decision.tier) == (TierChange.UPGRADE, "V3")


def test_lowest_tier_is_kept_at_period_end(program):
    decision = evaluate(program, current_tier="V1", growth_in_period=0, period_ended=True)
    assert (decision.change, decision.reason) == (TierChange.KEEP, TierReason.LOWEST_TIER)


def test_evaluate_refuses_unknown_tier(program):
    with pytest.raises(UnknownTier):
        evaluate(program, current_tier="V9", growth_in_period=0, period_ended=True)


def test_calendar_year_period_uses_local_new_year(program):
    since = shanghai(2020, 1, 1)
    late = shanghai(2026, 12, 31, 23, 30)
    period = evaluation_period(program, at=late, tier_since=since)
    assert (period.start, period.end) == (shanghai(2026, 1, 1), shanghai(2027, 1, 1))
    assert late in period
    utc_evening = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)  # already 2027 in Shanghai
    assert evaluation_period(program, at=utc_evening, tier_since=since).start == shanghai(
        2027, 1, 1
    )


def test_rolling_period_runs_twelve_months_from_reaching_the_tier(with_policy):
    program = with_policy(
        ('evaluation_period = "calendar_year"', 'evaluation_period = "rolling_12_months"')
    )
    since = shanghai(2026, 3, 15, 18, 0)
    period = evaluation_period(program, at=shanghai(2027, 3, 14, 23, 59), tier_since=since)
    assert (period.start, period.end) == (shanghai(2026, 3, 15), shanghai(2027, 3, 15))
    following = evaluation_period(program, at=shanghai(2027, 3, 15), tier_since=since)
    assert (following.start, following.end) == (shanghai(2027, 3, 15), shanghai(2028, 3, 15))


def test_rolling_period_from_a_leap_day(with_policy):
    program = with_policy(
        ('evaluation_period = "calendar_year"', 'evaluation_period = "rolling_12_months"')
    )
    period = evaluation_period(program, at=shanghai(2025, 3, 1), tier_since=shanghai(2024, 2, 29))
    assert (period.start, period.end) == (shanghai(2025, 2, 28), shanghai(2026, 2, 28))


def test_growth_to_next(program):
    assert growth_to_next(program, "V1", 400) == 600
    assert growth_to_next(program, "V3", 400) is None
