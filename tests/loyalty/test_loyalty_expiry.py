from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loyalty_helpers import SHANGHAI, shanghai

from hub.loyalty.expiry import after_days, end_of_month, end_of_next_year, expires_at, is_expired
from hub.loyalty.model import ExpiryKind, ExpiryPolicy

NEW_YORK = ZoneInfo("America/New_York")
# hypothesis takes naive bounds and attaches the zone itself
EARNED = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2090, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


def test_new_year_eve_in_shanghai_counts_as_that_year():
    earned = shanghai(2026, 12, 31, 23, 30)
    assert end_of_next_year(earned, tz=SHANGHAI) == shanghai(2028, 1, 1)
    # The same instant written in UTC (15:30 on 31 Dec) gives the same answer.
    assert end_of_next_year(earned.astimezone(UTC), tz=SHANGHAI) == shanghai(2028, 1, 1)


def test_utc_new_year_eve_evening_is_already_next_year_in_shanghai():
    earned = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 Jan 2027 in Shanghai
    assert end_of_next_year(earned, tz=SHANGHAI) == shanghai(2029, 1, 1)


def test_program_zone_decides_the_year_not_the_timestamp_zone():
    earned = datetime(2027, 1, 1, 1, 0, tzinfo=UTC)  # 20:00 on 31 Dec 2026 in New York
    assert end_of_next_year(earned, tz=NEW_YORK) == datetime(2028, 1, 1, tzinfo=NEW_YORK)


def test_points_are_valid_until_the_last_instant_of_next_year():
    expiry = end_of_next_year(shanghai(2026, 1, 1), tz=SHANGHAI)
    assert not is_expired(expiry, shanghai(2027, 12, 31, 23, 59, 59))
    assert is_expired(expiry, shanghai(2028, 1, 1))
    assert is_expired(expiry, datetime(2027, 12, 31, 16, 0, tzinfo=UTC))
    assert not is_expired(None, shanghai(2100, 1, 1))


def test_days_keep_whole_local_days_across_the_year_end():
    earned = shanghai(2026, 12, 31, 23, 30)
    assert after_days(earned, 1, tz=SHANGHAI) == shanghai(2027, 1, 2)
    assert after_days(earned, 365, tz=SHANGHAI) == shanghai(2028, 1, 1)
    assert after_days(earned.astimezone(UTC), 1, tz=SHANGHAI) == shanghai(2027, 1, 2)


def test_days_out_of_range_are_refused():
    with pytest.raises(ValueError, match="days"):
        after_days(shanghai(2026, 1, 1), 0, tz=SHANGHAI)


def test_end_of_month_zero_is_this_month():
    assert end_of_month(shanghai(2026, 12, 31, 23, 30), 0, tz=SHANGHAI) == shanghai(2027, 1, 1)


def test_end_of_month_counts_months_over_short_months_and_years():
    assert end_of_month(shanghai(2026, 1, 31), 1, tz=SHANGHAI) == shanghai(2026, 3, 1)
    assert end_of_month(shanghai(2026, 11, 15), 2, tz=SHANGHAI) == shanghai(2027, 2, 1)
    assert end_of_month(shanghai(2026, 12, 1), 12, tz=SHANGHAI) == shanghai(2028, 1, 1)


def test_end_of_month_reads_the_month_in_the_program_zone():
    earned = datetime(2026, 4, 30, 16, 30, tzinfo=UTC)  # 00:30 on 1 May in Shanghai
    assert end_of_month(earned, 0, tz=SHANGHAI) == shanghai(2026, 6, 1)


def test_expires_at_follows_the_policy():
    earned = shanghai(2026, 6, 15, 12, 0)
    assert expires_at(ExpiryPolicy(ExpiryKind.END_OF_NEXT_YEAR), earned, tz=SHANGHAI) == shanghai(
        2028, 1, 1
    )
    assert expires_at(ExpiryPolicy(ExpiryKind.DAYS, days=30), earned, tz=SHANGHAI) == shanghai(
        2026, 7, 16
    )
    policy = ExpiryPolicy(ExpiryKind.END_OF_MONTH, months=6)
    assert expires_at(policy, earned, tz=SHANGHAI) == shanghai(2027, 1, 1)


def test_naive_earned_at_is_a_bug():
    with pytest.raises(ValueError, match="time zone"):
        end_of_next_year(datetime(2026, 1, 1), tz=SHANGHAI)  # noqa: DTZ001


@given(EARNED)
def test_end_of_next_year_is_new_year_midnight_two_local_years_on(earned):
    expiry = end_of_next_year(earned, tz=SHANGHAI)
    local = earned.astimezone(SHANGHAI)
    assert expiry == shanghai(local.year + 2, 1, 1)
    assert timedelta(days=365) < expiry - earned <= timedelta(days=731)


@given(EARNED, st.integers(0, 120))
def test_end_of_month_is_a_first_of_month_after_earning(earned, months):
    expiry = end_of_month(earned, months, tz=SHANGHAI).astimezone(SHANGHAI)
    local = earned.astimezone(SHANGHAI).date()
    assert expiry.day == 1
    assert (expiry.hour, expiry.minute) == (0, 0)
    assert (expiry.year * 12 + expiry.month) - (local.year * 12 + local.month) == months + 1
    assert expiry.date() > local
