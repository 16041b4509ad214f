"""When points expire: pure functions from the moment points were earned to an expiry instant.

Every function returns the first instant at which the points are no longer usable (aware, in the
program's zone): points are valid while ``at < expires_at``. "Earned" is the moment the points
became available (after any pending period); its year, day and month are read on the local
calendar of the zone, so 2026-12-31 23:30 in Shanghai (15:30 UTC) counts as 2026.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hub.loyalty.model import ExpiryKind, ExpiryPolicy
from hub.loyalty.periods import add_months, local_date, midnight

MAX_DAYS = 3660
MAX_MONTHS = 120


def end_of_next_year(earned_at: datetime, *, tz: ZoneInfo) -> datetime:
    """Earned in local year Y: valid through 31 December Y+1, so gone at 1 January Y+2 0:00."""
    year = local_date(earned_at, tz).year
    return midnight(date(year + 2, 1, 1), tz)


def after_days(earned_at: datetime, days: int, *, tz: ZoneInfo) -> datetime:
    """Valid through the end of the local day ``days`` after the day earned.

    Whole local days rather than ``earned_at + days``: members read a date on their statement,
    and every lot earned on the same day expires together.
    """
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be from 1 to {MAX_DAYS}")
    return midnight(local_date(earned_at, tz) + timedelta(days=days + 1), tz)


def end_of_month(earned_at: datetime, months: int, *, tz: ZoneInfo) -> datetime:
    """Valid through the last day of the month ``months`` after the month earned (0 = this one)."""
    if not 0 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be from 0 to {MAX_MONTHS}")
    first = local_date(earned_at, tz).replace(day=1)
    return midnight(add_months(first, months + 1), tz)


def expires_at(policy: ExpiryPolicy, earned_at: datetime, *, tz: ZoneInfo) -> datetime:
    if policy.kind is ExpiryKind.END_OF_NEXT_YEAR:
        return end_of_next_year(earned_at, tz=tz)
    if policy.kind is ExpiryKind.DAYS:
        return after_days(earned_at, policy.days, tz=tz)
    return end_of_month(earned_at, policy.months, tz=tz)


def is_expired(expires: datetime | None, at: datetime) -> bool:
    """``None`` never expires (e.g. a lot from a program without expiry)."""
    return expires is not None and at >= expires
