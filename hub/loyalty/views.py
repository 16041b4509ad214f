"""Read models for a member's loyalty page, batched over many members (one query each).

Every function takes a list of member ids and answers for all of them with a fixed number of
statements, so GraphQL DataLoaders can resolve any number of members in constant round trips.
Each runs its statements through a ``fetch(sql, *args)`` the caller gives (asyncpg ``$n``
parameters; the GraphQL layer's is ``schema.context.RequestReads.fetch``, one connection per
request, every statement announced to SQLAlchemy's events so statement counting sees it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hub.loyalty import benefits as rules
from hub.loyalty.model import Benefit, Program
from hub.loyalty.tiers import evaluation_period, next_tier

EXPIRING_SOON = timedelta(days=90)
MAX_EXPIRING = 12  # expiry dates listed per member
MAX_PAGE = 100

Fetch = Callable[..., Awaitable[Sequence[Any]]]  # fetch(sql, *args) -> rows


@dataclass(frozen=True, slots=True)
class Expiring:
    amount: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LineBalance:
    line: str
    available: int


@dataclass(frozen=True, slots=True)
class PointsView:
    available: int  # spendable, net of any clawback debt (may be negative)
    pending: int
    debt: int
    expiring_soon: list[Expiring] = field(default_factory=list)
    by_business_line: list[LineBalance] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TierView:
    code: str
    name: str
    growth: int  # in the current evaluation period
    next_tier: str | None
    progress: float  # toward the next tier, 0..1 (1 at the top tier)
    retention: int  # growth still needed this period to keep the tier (0: kept)
    period_end: datetime


@dataclass(frozen=True, slots=True)
class BenefitView:
    code: str
    line: str
    description: str
    period: str
    remaining: int


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    at: datetime
    code: str
    delta: int  # change of available + debt for the member
    pending_delta: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class LedgerPage:
    entries: list[LedgerEntry]
    has_next: bool


_EXISTING = "SELECT id FROM member WHERE id = ANY($1::bigint[])"


async def existing_members(*, fetch: Fetch, member_ids: Sequence[int]) -> set[int]:
    rows = await fetch(_EXISTING, list(member_ids))
    return {r[0] for r in rows}


@dataclass(frozen=True, slots=True)
class SummaryView:
    """What the profile shows above the ledger: points, tier and benefits."""

    points: PointsView
    tier: TierView
    benefits: list[BenefitView]


# One statement, one round trip: each part is a tagged row set over the same member ids. The
# lot parts are index scans of ``loyalty_lot_member_live`` (migrations 0007 and 0020: a
# member's live lots only; ``remaining`` is read from the lot, so a hold's lot update stays
# HOT) and growth an index-only scan of ``loyalty_growth_member_amount``, so the cost follows
# what a member holds now, not their history. ``{m}`` is the members' condition: ``= ANY($1::bigint[])`` here,
# ``= <an outer column>`` where a caller folds one member's parts into a larger statement;
# $2 is ``at``, $3 the end of "expiring soon", $4/$5 the benefits' codes and period starts
# (``summary_args``).
def summary_sql(m: str) -> str:
    return f"""
    SELECT member_id, 'account' AS part, kind AS label, balance::numeric AS amount,
           NULL::timestamptz AS at
      FROM loyalty_account WHERE member_id {m}
    UNION ALL
    SELECT member_id, 'line', issuer_line, sum(remaining), NULL FROM loyalty_lot
      WHERE member_id {m} AND state = 'available' AND has_points
        AND (expires_at IS NULL OR expires_at > $2::timestamptz)
      GROUP BY member_id, issuer_line
    UNION ALL
    SELECT member_id, 'expiring', NULL, sum(remaining), expires_at FROM loyalty_lot
      WHERE member_id {m} AND state = 'available' AND has_points
        AND expires_at > $2::timestamptz AND expires_at <= $3::timestamptz
      GROUP BY member_id, expires_at
    UNION ALL
    SELECT s.member_id, 'tier', s.tier,
           coalesce((SELECT sum(g.amount) FROM loyalty_growth g WHERE g.member_id = s.member_id
                       AND g.earned_at >= s.period_start AND g.earned_at < s.period_end), 0),
           s.period_end
      FROM loyalty_tier_state s WHERE s.member_id {m}
    UNION ALL
    SELECT c.member_id, 'claims', c.benefit, count(*), NULL FROM loyalty_benefit_claim c
      JOIN unnest($4::text[], $5::timestamptz[]) AS p(benefit, start)
        ON p.benefit = c.benefit AND p.start = c.period_start
      WHERE c.member_id {m} GROUP BY c.member_id, c.benefit
    """


_SUMMARY = summary_sql("= ANY($1::bigint[])")


# The benefits' quota periods hold for a month or more: remembered (per program) until the
# first of them ends, instead of working out each one's local calendar period per request.
# Both memos hold the programs they were built for: bounded, so code that reloads its program
# does not keep every earlier one alive.
_PROGRAMS_REMEMBERED = 8
_quota_starts: dict[int, tuple[Program, datetime, datetime, list[str], list[datetime]]] = {}


def summary_args(program: Program, at: datetime) -> tuple[Any, ...]:
    """$2..$5 of ``summary_sql``."""
    found = _quota_starts.get(id(program))
    if found is None or found[0] is not program or not found[1] <= at < found[2]:
        periods = {i.code: rules.quota_period(program, i, at) for i in program.benefits}
        starts, ends = [p.start for p in periods.values()], [p.end for p in periods.values()]
        found = (program, max(starts, default=at), min(ends, default=at), list(periods), starts)
        _quota_starts[id(program)] = found
        _bound(_quota_starts, _PROGRAMS_REMEMBERED)
    return (at, at + EXPIRING_SOON, found[3], found[4])


_entitled: dict[tuple[int, str], tuple[Program, list[Benefit]]] = {}


def _benefits_for(program: Program, tier_code: str) -> list[Benefit]:
    found = _entitled.get((id(program), tier_code))
    if found is None or found[0] is not program:
        found = (program, rules.benefits_for(program, tier_code=tier_code))
        _entitled[(id(program), tier_code)] = found
        _bound(_entitled, _PROGRAMS_REMEMBERED * 16)  # tiers per program: a handful
    return found[1]


def _bound(memo: dict[Any, Any], size: int) -> None:
    while len(memo) > size:
        del memo[next(iter(memo))]  # the oldest entry: dicts keep insertion order


async def summaries(
    *, fetch: Fetch, program: Program, member_ids: Sequence[int], at: datetime
) -> dict[int, SummaryView]:
    """Points, tier and benefits (with claims left this period) of each member."""
    result = await fetch(_SUMMARY, list(member_ids), *summary_args(program, at))
    return build_summaries(program, member_ids, at, result)


def build_summaries(
    program: Program, member_ids: Sequence[int], at: datetime, result: Iterable[Sequence[Any]]
) -> dict[int, SummaryView]:
    """``SummaryView``s from the rows of ``summary_sql``."""
    accounts: dict[int, dict[str, int]] = {}
    lines: dict[int, list[LineBalance]] = {}
    expiring: dict[int, list[Expiring]] = {}
    tier_rows: dict[int, tuple[str, datetime, int]] = {}
    used: dict[tuple[int, str], int] = {}
    for member, part, label, amount, when in result:
        if part == "account":
            accounts.setdefault(member, {})[label] = int(amount)
        elif part == "line":
            lines.setdefault(member, []).append(LineBalance(label, int(amount)))
        elif part == "expiring":
            expiring.setdefault(member, []).append(Expiring(int(amount), when))
        elif part == "tier":
            tier_rows[member] = (label, when, max(0, int(amount)))
        else:
            used[(member, label)] = int(amount)
    views: dict[int, SummaryView] = {}
    for member in member_ids:
        acc = accounts.get(member, {})
        debt = acc.get("member_debt", 0)
        points = PointsView(
            available=acc.get("member_available", 0) + debt,
            pending=acc.get("member_pending", 0),
            debt=debt,
            expiring_soon=sorted(expiring.get(member, []), key=lambda e: e.expires_at)[
                :MAX_EXPIRING
            ],
            by_business_line=sorted(lines.get(member, []), key=lambda b: b.line),
        )
        found = tier_rows.get(member)
        if found is None:  # no tier state yet: the lowest tier, a period starting now
            found = (program.tiers[0].code, evaluation_period(program, at=at, tier_since=at).end, 0)
        code, period_end, growth = found
        tier = _tier_view(program, code, period_end, growth)
        benefits = [
            BenefitView(
                code=item.code,
                line=item.line,
                description=item.description,
                period=str(item.period),
                remaining=rules.remaining(item, used.get((member, item.code), 0)),
            )
            for item in _benefits_for(program, tier.code)
        ]
        views[member] = SummaryView(points, tier, benefits)
    return views


def _tier_view(program: Program, code: str, period_end: datetime, growth: int) -> TierView:
    tier = program.tier(code)
    upper = next_tier(program, code)
    progress = 1.0 if upper is None else min(1.0, growth / upper.growth_threshold)
    return TierView(
        code=tier.code,
        name=tier.name,
        growth=growth,
        next_tier=upper.code if upper else None,
        progress=round(progress, 4),
        retention=max(0, tier.retention_growth - growth),
        period_end=period_end,
    )


def ledger_sql(member: str, size: str, after: str) -> str:
    """One member's newest ``size + 1`` transfers before ``after`` (SQL expressions), with the
    member's change of available and pending points: (id, at, code, reason, delta, pending)."""
    return f"""
    SELECT t.id, t.effective_at AS at, t.code, t.reason,
      (CASE WHEN c.kind IN ('member_available', 'member_debt') THEN t.amount ELSE 0 END)
      - (CASE WHEN d.kind IN ('member_available', 'member_debt') THEN t.amount ELSE 0 END)
        AS delta,
      (CASE WHEN c.kind = 'member_pending' THEN t.amount ELSE 0 END)
      - (CASE WHEN d.kind = 'member_pending' THEN t.amount ELSE 0 END) AS pending
    FROM (
      -- per account, so each side is one backward range scan of (account, id)
      SELECT DISTINCT ON (u.id) u.* FROM loyalty_account acc
      CROSS JOIN LATERAL (
        (SELECT x.* FROM loyalty_transfer x WHERE x.debit_account = acc.id
           AND x.id < coalesce({after}, 9223372036854775807)
         ORDER BY x.id DESC LIMIT {size} + 1)
        UNION ALL
        (SELECT x.* FROM loyalty_transfer x WHERE x.credit_account = acc.id
           AND x.id < coalesce({after}, 9223372036854775807)
         ORDER BY x.id DESC LIMIT {size} + 1)
      ) u
      WHERE acc.member_id = {member}
      ORDER BY u.id DESC LIMIT {size} + 1) t
    JOIN loyalty_account d ON d.id = t.debit_account
    JOIN loyalty_account c ON c.id = t.credit_account
    """


_LEDGER = f"""
    SELECT k.ord, l.id, l.at, l.code, l.reason, l.delta, l.pending
    FROM unnest($1::bigint[], $2::int[], $3::bigint[]) WITH ORDINALITY AS k(member, size, after, ord)
    CROSS JOIN LATERAL ({ledger_sql("k.member", "k.size", "k.after")}) l
    ORDER BY k.ord, l.id DESC
    """


def ledger_size(first: int) -> int:
    return min(max(first, 0), MAX_PAGE)


def ledger_page(rows: Iterable[Sequence[Any]], first: int) -> LedgerPage:
    """A page from ``ledger_sql`` rows (id, at, code, reason, delta, pending), newest first."""
    size = ledger_size(first)
    found = [LedgerEntry(r[0], r[1], r[2], int(r[4]), int(r[5]), r[3]) for r in rows]
    return LedgerPage(found[:size], len(found) > size)


async def ledger_pages(
    *, fetch: Fetch, requests: Sequence[tuple[int, int, int | None]]
) -> list[LedgerPage]:
    """Newest-first pages of members' transfers for ``(member, first, after id)`` requests."""
    if not requests:
        return []
    result = await fetch(
        _LEDGER,
        [r[0] for r in requests],
        [ledger_size(r[1]) for r in requests],
        [r[2] for r in requests],
    )
    rows: dict[int, list[Sequence[Any]]] = {}
    for r in result:
        rows.setdefault(r[0], []).append(r[1:])
    return [ledger_page(rows.get(i, []), r[1]) for i, r in enumerate(requests, start=1)]
