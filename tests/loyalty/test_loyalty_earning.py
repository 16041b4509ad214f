from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loyalty_helpers import SHANGHAI, shanghai

from hub.core.records import Activity, ActivityKind, ActivityStatus
from hub.loyalty.earning import NOTHING, points_for, refund_points
from hub.loyalty.errors import (
    InvalidActivity,
    RefundExceedsOriginal,
    UnknownBusinessLine,
    UnknownTier,
)
from hub.loyalty.program import default_program


def activity(
    line: str = "store",
    kind: ActivityKind = ActivityKind.PURCHASE,
    amount_fen: int = 0,
    quantity: int = 0,
    at: datetime | None = None,
    status: ActivityStatus = ActivityStatus.CONFIRMED,
    **details: object,
) -> Activity:
    return Activity(
        source=line if line != "store" else "pos",
        external_id="测试-0001",
        kind=kind,
        business_line=line,
        occurred_at=at or shanghai(2026, 3, 1, 10, 0),
        status=status,
        source_key="sample-key-1",
        amount_fen=amount_fen,
        quantity=quantity,
        details=details,
    )


def test_points_per_yuan_floor_whole_yuan(program):
    earning = points_for(activity(amount_fen=12_399), program, "V1")
    assert (earning.points, earning.growth) == (123, 123)
    assert earning.rule is program.rule_for("store", "purchase")


def test_decimal_rate_rounds_down(program):
    # 1.5 points per yuan on 0.99 yuan is 1.485 points: floor gives 1.
    assert points_for(activity("taobao", amount_fen=99), program, "V1").points == 1


def test_tier_multiplier_applies_before_the_single_rounding(program):
    # 0.50 yuan × 1.5 × 2 = 1.5 → 1; rounding before the multiplier would have given 0.
    assert points_for(activity("taobao", amount_fen=50), program, "V2").points == 1
    assert points_for(activity("taobao", amount_fen=10_000), program, "V2").points == 300
    assert points_for(activity("taobao", amount_fen=10_000), program, "V1").points == 150


def test_growth_ignores_the_tier_multiplier(program):
    assert points_for(activity("taobao", amount_fen=10_000), program, "V2").growth == 100


def test_cap_limits_points_per_activity(program):
    earning = points_for(activity("taobao", amount_fen=1_000_000), program, "V2")
    assert earning.points == 1000
    assert earning.growth == 10_000  # the cap is on points only


def test_shipping_fee_in_details_is_excluded(program):
    earning = points_for(activity("taobao", amount_fen=10_000, shipping_fen=1_000), program, "V1")
    assert earning.points == 135  # 90 yuan × 1.5


def test_exclusion_larger_than_amount_earns_nothing(program):
    earning = points_for(activity("taobao", amount_fen=500, shipping_fen=800), program, "V1")
    assert (earning.points, earning.growth, earning.expires_at) == (0, 0, None)


def test_unreadable_shipping_detail_is_an_invalid_activity(program):
    with pytest.raises(InvalidActivity, match=r"details.shipping_fen"):
        points_for(activity("taobao", amount_fen=500, shipping_fen="8.00"), program, "V1")


def test_hotel_earns_per_night_and_per_yuan(program):
    stay = activity("hotel", ActivityKind.STAY, amount_fen=50_000, quantity=2)
    earning = points_for(stay, program, "V1")
    assert earning.points == 2 * 100 + 500 * 2
    assert earning.growth == 2 * 10


def test_hotel_multiplier_for_gold_tier(program):
    stay = activity("hotel", ActivityKind.STAY, amount_fen=1, quantity=1)
    # (100 nights-points + 0.02) × 1.5 = 150.03 → 150
    assert points_for(stay, program, "V3").points == 150


def test_default_program_hotel_stay_and_app_signup():
    program = default_program()
    stay = activity("hotel", ActivityKind.STAY, amount_fen=158_000, quantity=2)
    assert points_for(stay, program, "V1").points == 1580 * 2 + 2 * 50
    signup = activity("app", ActivityKind.SIGNUP)
    assert (points_for(signup, program, "V1").points, points_for(signup, program, "V1").growth) == (
        200,
        10,
    )


def test_amount_below_minimum_earns_nothing_per_yuan():
    assert points_for(activity(amount_fen=99), default_program(), "V1").points == 0


def test_cancelled_activity_or_missing_rule_earns_nothing(program):
    cancelled = activity(amount_fen=10_000, status=ActivityStatus.CANCELLED)
    assert points_for(cancelled, program, "V1") == NOTHING
    assert points_for(activity(kind=ActivityKind.SIGNUP), program, "V1") == NOTHING


def test_refund_activity_is_not_earned_on(program):
    refund = Activity(
        source="pos",
        external_id="测试-0002",
        kind=ActivityKind.REFUND,
        business_line="store",
        occurred_at=shanghai(2026, 3, 2),
        status=ActivityStatus.CONFIRMED,
        amount_fen=100,
        original_external_id="测试-0001",
    )
    with pytest.raises(InvalidActivity, match="refund"):
        points_for(refund, program, "V1")


def test_unknown_tier_or_line_is_refused(program):
    with pytest.raises(UnknownTier):
        points_for(activity(amount_fen=100), program, "V9")
    with pytest.raises(UnknownBusinessLine):
        points_for(activity("douyin", amount_fen=100), program, "V1")


def test_store_points_are_available_at_once(program):
    assert points_for(activity(amount_fen=100), program, "V1").pending_until is None


def test_ecommerce_points_pend_through_the_return_window(program):
    at = shanghai(2026, 3, 1, 10, 0)
    earning = points_for(activity("taobao", amount_fen=100, at=at), program, "V1")
    assert earning.pending_until == at + timedelta(days=15)


def test_hotel_points_pend_until_the_day_after_checkout(program):
    stay = activity(
        "hotel",
        ActivityKind.STAY,
        quantity=2,
        at=shanghai(2026, 7, 1, 14, 0),
        departure="2026-07-03",
    )
    assert points_for(stay, program, "V1").pending_until == shanghai(2026, 7, 4)


def test_hotel_without_departure_pends_from_the_activity(program):
    at = shanghai(2026, 7, 3, 12, 0)
    stay = activity("hotel", ActivityKind.STAY, quantity=1, at=at)
    assert points_for(stay, program, "V1").pending_until == at + timedelta(days=1)


def test_unreadable_departure_is_an_invalid_activity(program):
    stay = activity("hotel", ActivityKind.STAY, quantity=1, departure="07/03/2026")
    with pytest.raises(InvalidActivity, match="details.departure"):
        points_for(stay, program, "V1")


def test_late_new_year_eve_purchase_expires_end_of_next_year(program):
    # 23:30 on 31 Dec in Shanghai is 15:30 UTC: still year 2026 for the member.
    at = shanghai(2026, 12, 31, 23, 30).astimezone(UTC)
    earning = points_for(activity(amount_fen=100, at=at), program, "V1")
    assert earning.expires_at == shanghai(2028, 1, 1)


def test_expiry_counts_from_the_end_of_the_pending_period(program):
    at = shanghai(2026, 12, 20, 9, 0)  # pending until 2027-01-04
    earning = points_for(activity("taobao", amount_fen=100, at=at), program, "V1")
    assert earning.expires_at == shanghai(2029, 1, 1)
    assert earning.expires_at.tzinfo == SHANGHAI


def test_partial_refund_takes_back_pro_rata_and_the_last_takes_the_rest():
    first = refund_points(original_points=101, original_amount_fen=1000, refund_amount_fen=500)
    assert first == 50
    rest = refund_points(
        original_points=101,
        original_amount_fen=1000,
        refund_amount_fen=500,
        already_refunded_fen=500,
        already_refunded_points=first,
    )
    assert first + rest == 101


def test_thirds_of_a_refund_return_exactly_the_original():
    taken = 0
    for i in range(3):
        taken += refund_points(
            original_points=10,
            original_amount_fen=300,
            refund_amount_fen=100,
            already_refunded_fen=100 * i,
            already_refunded_points=taken,
        )
        assert taken <= 10
    assert taken == 10


def test_refund_beyond_the_original_amount_is_refused():
    with pytest.raises(RefundExceedsOriginal):
        refund_points(
            original_points=10,
            original_amount_fen=300,
            refund_amount_fen=200,
            already_refunded_fen=200,
        )


def test_refund_of_amountless_original_reverses_it_whole():
    assert refund_points(original_points=200, original_amount_fen=0, refund_amount_fen=0) == 200


@given(
    original_points=st.integers(0, 1_000_000),
    amount=st.integers(1, 10_000_000),
    cuts=st.lists(st.floats(0, 1), max_size=8),
)
def test_partial_refunds_never_exceed_and_a_full_set_returns_exactly(original_points, amount, cuts):
    marks = sorted({int(amount * c) for c in cuts} | {amount})
    refunded_fen = taken = 0
    for mark in marks:
        step = refund_points(
            original_points=original_points,
            original_amount_fen=amount,
            refund_amount_fen=mark - refunded_fen,
            already_refunded_fen=refunded_fen,
            already_refunded_points=taken,
        )
        assert step >= 0
        refunded_fen, taken = mark, taken + step
        assert taken <= original_points
    assert taken == original_points


@given(
    amount_fen=st.integers(0, 10**9),
    nights=st.integers(0, 60),
    tier=st.sampled_from(["V1", "V2", "V3"]),
)
def test_integer_earning_matches_exact_rational_arithmetic(program, amount_fen, nights, tier):
    stay = activity("hotel", ActivityKind.STAY, amount_fen=amount_fen, quantity=nights)
    rule = program.rule_for("hotel", "stay")
    multiplier = Fraction(rule.multipliers.get(tier, 1))
    exact = (
        Fraction(amount_fen, 100) * Fraction(rule.points_per_yuan)
        + nights * Fraction(rule.points_per_night)
    ) * multiplier
    assert points_for(stay, program, tier).points == math.floor(exact)
