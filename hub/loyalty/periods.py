"""Local calendar periods (month, quarter, year, rolling twelve months) as half-open instants.

Members live by local dates: a purchase at 23:30 on 31 December in Shanghai belongs to that year
even though it is already 1 January nowhere and 15:30 UTC. Every period here is computed on the
local calendar of a given zone and returned as aware datetimes ``[start, end)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Period:
    """``start`` inclusive, ``end`` exclusive, both aware."""

    start: datetime
    end: datetime

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end


def require_aware(value: datetime, name: str) -> None:
    # A naive datetime here is a bug in the caller, not bad member data: records are aware.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a time zone")


def local_date(at: datetime, tz: ZoneInfo) -> date:
    require_aware(at, "at")
    return at.astimezone(tz).date()


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of a local day (zoneinfo resolves the rare midnight DST gap forward)."""
    return datetime.combine(day, time(0), tzinfo=tz)


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's length (31 Jan + 1 → 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    first_of_next = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    last = (first_of_next - timedelta(days=1)).day
    return date(year, month + 1, min(day.day, last))


def month_of(at: datetime, tz: ZoneInfo) -> Period:
    first = local_date(at, tz).replace(day=1)
    return Period(midnight(first, tz), midnight(add_months(first, 1), tz))


def quarter_of(at: datetime, tz: ZoneInfo) -> Period:
    day = local_date(at, tz)
    first = date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return Period(midnight(first, tz), midnight(add_months(first, 3), tz))


def year_of(at: datetime, tz: ZoneInfo) -> Period:
    year = local_date(at, tz).year
    return Period(midnight(date(year, 1, 1), tz), midnight(date(year + 1, 1, 1), tz))


def rolling_12_months(anchor: datetime, at: datetime, tz: ZoneInfo) -> Period:
    """The twelve-month cycle, counted from the local date of ``anchor``, that holds ``at``.

    Cycles start at ``anchor``'s local day 0:00 and repeat every twelve months; an ``at`` before
    the anchor falls in the first cycle's predecessor, so the result always contains ``at``.
    """
    start_day = local_date(anchor, tz)
    at_day = local_date(at, tz)
    years = at_day.year - start_day.year
    if add_months(start_day, 12 * years) > at_day:
        years -= 1
    begin = add_months(start_day, 12 * years)
    return Period(midnight(begin, tz), midnight(add_months(start_day, 12 * (years + 1)), tz))
