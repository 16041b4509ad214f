"""Benefit entitlement rules (权益): which benefits a tier has at a line, and what is left.

A benefit belongs to one business line, is open to members at ``min_tier`` or above, and may be
claimed ``quota`` times per local calendar ``period`` (month, quarter or year in the program's
zone). Claims themselves (idempotent, audited) live in the ledger; these functions only decide.
"""

from __future__ import annotations

from datetime import datetime

from hub.loyalty.errors import NotEntitled, QuotaExhausted, UnknownBenefit
from hub.loyalty.model import Benefit, Program, QuotaPeriod
from hub.loyalty.periods import Period, month_of, quarter_of, year_of


def benefit(program: Program, code: str) -> Benefit:
    for item in program.benefits:
        if item.code == code:
            return item
    raise UnknownBenefit(code)


def is_entitled(program: Program, item: Benefit, tier_code: str) -> bool:
    return program.tier(tier_code).rank >= program.tier(item.min_tier).rank


def benefits_for(program: Program, *, tier_code: str, line: str | None = None) -> list[Benefit]:
    """The benefits a member at ``tier_code`` has, at one line or (``line=None``) at all lines."""
    if line is not None:
        program.line(line)
    return [
        item
        for item in program.benefits
        if (line is None or item.line == line) and is_entitled(program, item, tier_code)
    ]


def quota_period(program: Program, item: Benefit, at: datetime) -> Period:
    """The local calendar period whose claims count against the quota at ``at``."""
    tz = program.timezone
    if item.period is QuotaPeriod.MONTH:
        return month_of(at, tz)
    if item.period is QuotaPeriod.QUARTER:
        return quarter_of(at, tz)
    return year_of(at, tz)


def remaining(item: Benefit, claims_in_period: int) -> int:
    """Claims left this period; never negative even if a quota was lowered after claims."""
    if claims_in_period < 0:
        raise ValueError("claims_in_period must not be negative")
    return max(0, item.quota - claims_in_period)


def check_claim(program: Program, *, code: str, tier_code: str, claims_in_period: int) -> Benefit:
    """The benefit if a member at ``tier_code`` may claim it once more; raises otherwise."""
    item = benefit(program, code)
    if not is_entitled(program, item, tier_code):
        raise NotEntitled(benefit=item.code, tier=tier_code, min_tier=item.min_tier)
    if remaining(item, claims_in_period) == 0:
        raise QuotaExhausted(benefit=item.code, quota=item.quota)
    return item
