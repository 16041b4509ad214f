from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loyalty_helpers import shanghai

from hub.loyalty.errors import InsufficientPoints
from hub.loyalty.lots import Burn, Lot, allocate, burned_by_line, expired

NOW = shanghai(2027, 6, 1, 12, 0)


def lot(lot_id, remaining, expires, earned=None, line="store"):
    return Lot(
        id=lot_id,
        issuer_line=line,
        earned_at=earned or shanghai(2026, 1, 1),
        expires_at=expires,
        remaining=remaining,
    )


def test_burns_the_first_to_expire_first_whatever_the_input_order():
    lots = [
        lot(1, 100, shanghai(2029, 1, 1), line="hotel"),
        lot(2, 50, shanghai(2028, 1, 1)),
        lot(3, 70, shanghai(2028, 7, 1), line="taobao"),
    ]
    assert allocate(lots, 130, at=NOW) == [
        Burn(2, "store", 50),
        Burn(3, "taobao", 70),
        Burn(1, "hotel", 10),
    ]


def test_ties_break_by_earned_at_then_id():
    expires = shanghai(2028, 1, 1)
    lots = [
        lot(9, 10, expires, earned=shanghai(2026, 5, 1)),
        lot(7, 10, expires, earned=shanghai(2026, 5, 1)),
        lot(8, 10, expires, earned=shanghai(2026, 4, 1)),
    ]
    assert [b.lot_id for b in allocate(lots, 30, at=NOW)] == [8, 7, 9]


def test_lots_without_expiry_burn_last():
    lots = [lot(1, 10, None), lot(2, 10, shanghai(2030, 1, 1))]
    assert [b.lot_id for b in allocate(lots, 15, at=NOW)] == [2, 1]


def test_expired_and_empty_lots_are_skipped():
    lots = [
        lot(1, 100, NOW),
        lot(2, 0, shanghai(2028, 1, 1)),
        lot(3, 20, NOW + timedelta(seconds=1)),
    ]
    assert allocate(lots, 20, at=NOW) == [Burn(3, "store", 20)]
    assert [x.id for x in expired(lots, at=NOW)] == [1]


def test_insufficient_points_reports_what_is_available():
    with pytest.raises(InsufficientPoints) as info:
        allocate([lot(1, 30, None), lot(2, 500, NOW)], 31, at=NOW)
    assert (info.value.requested, info.value.available) == (31, 30)


def test_amount_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        allocate([lot(1, 30, None)], 0, at=NOW)


def test_burned_by_line_totals_per_issuer():
    burns = [Burn(1, "store", 5), Burn(2, "hotel", 7), Burn(3, "store", 1)]
    assert burned_by_line(burns) == {"store": 6, "hotel": 7}


lot_strategy = st.builds(
    lot,
    lot_id=st.integers(1, 10**6),
    remaining=st.integers(0, 10_000),
    expires=st.one_of(st.none(), st.integers(-400, 800).map(lambda d: NOW + timedelta(days=d))),
    earned=st.integers(0, 900).map(lambda d: shanghai(2025, 1, 1) + timedelta(days=d)),
    line=st.sampled_from(["store", "app", "hotel"]),
)


@given(
    lots=st.lists(lot_strategy, max_size=12, unique_by=lambda x: x.id),
    amount=st.integers(1, 50_000),
)
def test_allocation_sums_to_amount_and_never_overdraws_a_lot(lots, amount):
    by_id = {x.id: x for x in lots}
    usable_total = sum(x.remaining for x in lots if x.expires_at is None or x.expires_at > NOW)
    if usable_total < amount:
        with pytest.raises(InsufficientPoints):
            allocate(lots, amount, at=NOW)
        return
    burns = allocate(lots, amount, at=NOW)
    assert sum(b.points for b in burns) == amount
    assert len({b.lot_id for b in burns}) == len(burns)
    for burn in burns:
        source = by_id[burn.lot_id]
        assert 0 < burn.points <= source.remaining
        assert source.expires_at is None or source.expires_at > NOW
    # Only the last lot touched may be partly burned: everything before it is emptied.
    assert all(b.points == by_id[b.lot_id].remaining for b in burns[:-1])
