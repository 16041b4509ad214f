"""A member's tier in the database: current state, growth in the period, upgrades, history.

``loyalty_tier_state`` holds each member's tier, since when, and the evaluation period it is
measured in; ``loyalty_tier_history`` (append-only) records every change with the growth it was
decided on. Decisions are the pure ``hub.loyalty.tiers.evaluate``; this module feeds it growth
facts (``loyalty_growth``, signed, summed over the period) and writes what it decides.
Upgrades happen as growth lands (``apply_upgrades``); period ends are ``jobs.evaluate_tiers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.loyalty._sql import driver
from hub.loyalty.model import Program
from hub.loyalty.tiers import TierChange, TierDecision, evaluate, evaluation_period


@dataclass(frozen=True, slots=True)
class TierState:
    member_id: int
    tier: str
    since: datetime
    period_start: datetime
    period_end: datetime


async def tier_states(
    *, session: AsyncSession, program: Program, member_ids: Iterable[int], at: datetime
) -> dict[int, TierState]:
    """Each member's tier state, starting members without one at the lowest tier."""
    ids = sorted(set(member_ids))
    if not ids:
        return {}
    conn = await driver(session)
    lowest = program.tiers[0].code
    period = evaluation_period(program, at=at, tier_since=at)
    created = await conn.fetch(
        """
        INSERT INTO loyalty_tier_state (member_id, tier, since, period_start, period_end)
        SELECT m, $2, $3, $4, $5 FROM unnest($1::bigint[]) AS m ORDER BY m
        ON CONFLICT (member_id) DO NOTHING RETURNING member_id
        """,
        ids,
        lowest,
        at,
        period.start,
        period.end,
    )
    if created:
        new = [r["member_id"] for r in created]
        await conn.execute(
            """
            INSERT INTO loyalty_tier_history (member_id, from_tier, to_tier, change, reason,
              growth, at, key)
            SELECT m, NULL, $2, 'initial', 'first_activity', 0, $3, 'initial:' || m
            FROM unnest($1::bigint[]) AS m
            """,
            new,
            lowest,
            at,
        )
    rows = await conn.fetch(
        "SELECT member_id, tier, since, period_start, period_end FROM loyalty_tier_state "
        "WHERE member_id = ANY($1::bigint[])",
        ids,
    )
    return {r["member_id"]: TierState(**dict(r)) for r in rows}


async def growth_between(
    *, session: AsyncSession, spans: dict[int, tuple[datetime, datetime]]
) -> dict[int, int]:
    """Net growth of each member within its ``[start, end)`` span."""
    if not spans:
        return {}
    conn = await driver(session)
    members = list(spans)
    rows = await conn.fetch(
        """
        SELECT s.m AS member_id, coalesce(sum(g.amount), 0) AS growth
        FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[]) AS s(m, a, b)
        LEFT JOIN loyalty_growth g ON g.member_id = s.m AND g.earned_at >= s.a AND g.earned_at < s.b
        GROUP BY s.m
        """,
        members,
        [spans[m][0] for m in members],
        [spans[m][1] for m in members],
    )
    return {r["member_id"]: max(0, int(r["growth"])) for r in rows}


async def apply_upgrades(
    *, session: AsyncSession, program: Program, member_ids: Iterable[int], at: datetime
) -> list[TierDecision]:
    """Upgrade members whose growth in their current period reached a higher threshold."""
    ids = sorted(set(member_ids))
    if not ids:
        return []
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT member_id, tier, since, period_start, period_end FROM loyalty_tier_state "
        "WHERE member_id = ANY($1::bigint[]) ORDER BY member_id FOR UPDATE",
        ids,
    )
    states = [TierState(**dict(r)) for r in rows]
    growth = await growth_between(
        session=session, spans={s.member_id: (s.period_start, s.period_end) for s in states}
    )
    decisions: list[TierDecision] = []
    changes: list[tuple[TierState, TierDecision]] = []
    for state in states:
        decision = evaluate(
            program,
            current_tier=state.tier,
            growth_in_period=growth.get(state.member_id, 0),
            period_ended=False,
        )
        if decision.change is TierChange.UPGRADE:
            changes.append((state, decision))
            decisions.append(decision)
    # Rolling periods restart at the upgrade; calendar periods stay the calendar year.
    period = evaluation_period(program, at=at, tier_since=at)
    await set_tiers(
        session=session,
        changes=[
            TierUpdate(
                state=state,
                decision=decision,
                since=at,
                period=(period.start, period.end),
                key=f"upgrade:{state.member_id}:{state.period_start.isoformat()}:{decision.tier}",
                at=at,
            )
            for state, decision in changes
        ],
    )
    return decisions


@dataclass(frozen=True, slots=True)
class TierUpdate:
    state: TierState
    decision: TierDecision
    since: datetime
    period: tuple[datetime, datetime]
    key: str  # history idempotency key
    at: datetime
    change: str | None = None  # history label when not the decision's own (e.g. "merge")


async def set_tiers(*, session: AsyncSession, changes: Sequence[TierUpdate]) -> None:
    """Write tier states and their history rows, two statements for any number of members."""
    if not changes:
        return
    conn = await driver(session)
    await conn.execute(
        "UPDATE loyalty_tier_state s SET tier = v.tier, since = v.since, "
        "period_start = v.start, period_end = v.end_, updated_at = now() "
        "FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[], "
        "$5::timestamptz[]) AS v(member, tier, since, start, end_) WHERE s.member_id = v.member",
        [c.state.member_id for c in changes],
        [c.decision.tier for c in changes],
        [c.since for c in changes],
        [c.period[0] for c in changes],
        [c.period[1] for c in changes],
    )
    await conn.execute(
        "INSERT INTO loyalty_tier_history (member_id, from_tier, to_tier, change, reason, growth, "
        "at, key) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], "
        "$5::text[], $6::bigint[], $7::timestamptz[], $8::text[]) ON CONFLICT (key) DO NOTHING",
        [c.state.member_id for c in changes],
        [c.decision.previous for c in changes],
        [c.decision.tier for c in changes],
        [c.change or str(c.decision.change) for c in changes],
        [str(c.decision.reason) for c in changes],
        [c.decision.growth for c in changes],
        [c.at for c in changes],
        [c.key for c in changes],
    )
