from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources

import pytest
from loyalty_helpers import shanghai

from hub.loyalty.benefits import benefit, benefits_for, check_claim, quota_period, remaining
from hub.loyalty.errors import NotEntitled, QuotaExhausted, UnknownBenefit, UnknownBusinessLine
from hub.loyalty.program import default_program


def codes(items):
    return [item.code for item in items]


def test_benefits_open_from_the_minimum_tier_at_their_line():
    program = default_program()
    assert benefits_for(program, tier_code="V1", line="store") == []
    assert codes(benefits_for(program, tier_code="V2", line="store")) == ["store_birthday_gift"]
    assert codes(benefits_for(program, tier_code="V6", line="hotel")) == [
        "hotel_late_checkout",
        "hotel_breakfast",
        "hotel_room_upgrade",
    ]


def test_benefits_across_all_lines():
    program = default_program()
    everything = codes(benefits_for(program, tier_code="V8"))
    assert everything == [b.code for b in program.benefits]
    assert "app_free_shipping" in codes(benefits_for(program, tier_code="V3"))


def test_unknown_line_is_refused(program):
    with pytest.raises(UnknownBusinessLine):
        benefits_for(program, tier_code="V2", line="cinema")


def test_remaining_counts_down_and_never_below_zero(program):
    gift = benefit(program, "store_gift")
    assert [remaining(gift, n) for n in range(4)] == [2, 1, 0, 0]


def test_check_claim_enforces_tier_and_quota(program):
    assert (
        check_claim(program, code="store_gift", tier_code="V3", claims_in_period=1).code
        == "store_gift"
    )
    with pytest.raises(NotEntitled, match="needs tier V2"):
        check_claim(program, code="store_gift", tier_code="V1", claims_in_period=0)
    with pytest.raises(QuotaExhausted):
        check_claim(program, code="store_gift", tier_code="V2", claims_in_period=2)
    with pytest.raises(UnknownBenefit):
        check_claim(program, code="no_such_benefit", tier_code="V2", claims_in_period=0)


def test_monthly_quota_period_follows_the_local_month(program):
    gift = benefit(program, "store_gift")
    period = quota_period(program, gift, shanghai(2026, 12, 31, 23, 30))
    assert (period.start, period.end) == (shanghai(2026, 12, 1), shanghai(2027, 1, 1))


def test_quarter_and_year_periods_at_a_utc_boundary():
    program = default_program()
    late_checkout = benefit(program, "hotel_late_checkout")  # quarterly
    at = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 April in Shanghai
    quarter = quota_period(program, late_checkout, at)
    assert (quarter.start, quarter.end) == (shanghai(2026, 4, 1), shanghai(2026, 7, 1))
    upgrade = benefit(program, "hotel_room_upgrade")  # yearly
    year = quota_period(program, upgrade, shanghai(2026, 12, 31, 23, 59))
    assert (year.start, year.end) == (shanghai(2026, 1, 1), shanghai(2027, 1, 1))


def test_view_memos_answer_per_program_and_forget_old_programs():
    # The profile views remember quota periods and entitlements per program object; a caller
    # that reloads its program must get answers for the new one and not keep every old one.
    from hub.loyalty import views
    from hub.loyalty.program import parse_program

    text = resources.files("hub.loyalty").joinpath("default_program.toml").read_bytes()
    at = datetime(2026, 3, 15, 4, tzinfo=UTC)
    tier = default_program().tiers[-1].code
    expected_args = views.summary_args(default_program(), at)
    expected_benefits = views._benefits_for(default_program(), tier)
    for _ in range(3 * views._PROGRAMS_REMEMBERED):
        reloaded = parse_program(text, source="reloaded.toml")
        assert views.summary_args(reloaded, at) == expected_args
        assert views._benefits_for(reloaded, tier) == expected_benefits
    assert len(views._quota_starts) <= views._PROGRAMS_REMEMBERED
    assert len(views._entitled) <= views._PROGRAMS_REMEMBERED * 16
