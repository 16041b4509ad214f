"""The fixed calendar every generated data set lives in, and the text forms sources write.

The period is pinned (never "now") so the same seed gives the same bytes on any day.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from hub.core.clock import SHANGHAI

# Recent enough that a demo today shows live points: what was earned in 2025 is still spendable
# until the end of 2026 (and shows as expiring soon), 2026's until the end of 2027.
PERIOD_START = datetime(2025, 1, 1, tzinfo=SHANGHAI)
PERIOD_END = datetime(2026, 10, 31, 23, 59, 59, tzinfo=SHANGHAI)
EXPORT_AT = datetime(2026, 11, 1, 9, 30, tzinfo=SHANGHAI)
_PERIOD_S = int((PERIOD_END - PERIOD_START).total_seconds())

# Orders this close to the export are still open (in transit / inside the return window).
RETURN_WINDOW = timedelta(days=12)

BIRTH_FIRST = date(1955, 1, 1)
BIRTH_SPAN_DAYS = (date(2006, 12, 31) - BIRTH_FIRST).days


def moment(rng: random.Random, after: datetime | None = None) -> datetime:
    """A second inside the period, later than ``after`` when given (clamped to the period end)."""
    start = PERIOD_START if after is None else min(after, PERIOD_END)
    span = int((PERIOD_END - start).total_seconds())
    return _waking(start + timedelta(seconds=rng.randint(0, max(span, 0))))


def later(rng: random.Random, base: datetime, lo_s: int, hi_s: int) -> datetime:
    """``base`` plus a delay, never past the period end (nothing happens after the export)."""
    return max(base, _waking(base + timedelta(seconds=rng.randint(lo_s, hi_s))))


def _waking(when: datetime) -> datetime:
    """Fold the small hours into the day (people shop 08:00-24:00), never past the period."""
    if when.hour < 8:
        when += timedelta(hours=9)
    return min(when, PERIOD_END)


def birthday(rng: random.Random) -> date:
    return BIRTH_FIRST + timedelta(days=rng.randint(0, BIRTH_SPAN_DAYS))


def dt_text(value: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` wall-clock Shanghai time, what every source here writes."""
    return value.strftime("%Y-%m-%d %H:%M:%S")


def date_text(value: date) -> str:
    return value.strftime("%Y-%m-%d")


def yuan(fen: int) -> str:
    """Integer fen as export text in yuan with two decimals (``12900`` → ``129.00``)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
