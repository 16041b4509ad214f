"""Claiming benefits (权益): entitlement and quota from ``benefits``, idempotent and audited.

A claim is keyed by the member and the caller's idempotency key: the same key again returns
the first claim (``replayed=True``); the same key for another benefit raises
``IdempotencyConflict``. Claims for one member are serialised on the member's tier-state row
(``FOR UPDATE``), so two concurrent claims cannot both take the last unit of a quota.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.audit import Actor, record_audit
from hub.core.clock import utcnow
from hub.core.errors import IdempotencyConflict, NotFound
from hub.loyalty import benefits
from hub.loyalty._sql import driver
from hub.loyalty.errors import InvalidClaim
from hub.loyalty.model import Benefit, Program
from hub.loyalty.standing import tier_states

MAX_KEY = 200


@dataclass(frozen=True, slots=True)
class Claim:
    member_id: int
    benefit: str
    line: str
    remaining: int  # claims left in the period after this one
    claimed_at: datetime
    replayed: bool = False


async def claim_benefit(
    *,
    session: AsyncSession,
    program: Program,
    actor: Actor,
    member_id: int,
    code: str,
    idempotency_key: str,
    now: datetime | None = None,
) -> Claim:
    at = now or utcnow()
    if not idempotency_key.strip() or len(idempotency_key) > MAX_KEY:
        raise InvalidClaim("idempotency_key", f"must be 1 to {MAX_KEY} characters")
    item = benefits.benefit(program, code)
    conn = await driver(session)
    status = await conn.fetchval("SELECT status FROM member WHERE id = $1", member_id)
    if status != "active":
        raise NotFound(f"member {member_id} is not an active member ({status or 'unknown'})")
    await tier_states(session=session, program=program, member_ids=[member_id], at=at)
    tier = await conn.fetchval(
        "SELECT tier FROM loyalty_tier_state WHERE member_id = $1 FOR UPDATE", member_id
    )
    key = f"{member_id}:{idempotency_key}"
    earlier = await conn.fetchrow(
        "SELECT benefit, claimed_at, period_start FROM loyalty_benefit_claim "
        "WHERE idempotency_key = $1",
        key,
    )
    if earlier is not None:
        if earlier["benefit"] != item.code:
            raise IdempotencyConflict(idempotency_key, "benefit")
        used = await _claims_in(conn, member_id, item, earlier["period_start"])
        return Claim(
            member_id,
            item.code,
            item.line,
            benefits.remaining(item, used),
            earlier["claimed_at"],
            replayed=True,
        )
    period = benefits.quota_period(program, item, at)
    used = await _claims_in(conn, member_id, item, period.start)
    benefits.check_claim(program, code=item.code, tier_code=tier, claims_in_period=used)
    await conn.execute(
        "INSERT INTO loyalty_benefit_claim (member_id, benefit, line, period_start, claimed_at, "
        "idempotency_key, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        member_id,
        item.code,
        item.line,
        period.start,
        at,
        key,
        actor.id,
    )
    await record_audit(
        session=session,
        actor=actor,
        action="loyalty.claim_benefit",
        subject=f"member:{member_id}",
        details={"benefit": item.code, "line": item.line, "tier": tier},
    )
    return Claim(member_id, item.code, item.line, benefits.remaining(item, used + 1), at)


async def _claims_in(conn: object, member_id: int, item: Benefit, start: datetime) -> int:
    count = await conn.fetchval(  # type: ignore[attr-defined]
        "SELECT count(*) FROM loyalty_benefit_claim WHERE member_id = $1 AND benefit = $2 "
        "AND period_start = $3",
        member_id,
        item.code,
        start,
    )
    return int(count)


async def claims_in_periods(
    *, session: AsyncSession, program: Program, member_ids: Iterable[int], at: datetime
) -> dict[tuple[int, str], int]:
    """Claims per (member, benefit) in each benefit's current period, for many members."""
    ids = sorted(set(member_ids))
    starts = {
        item.code: benefits.quota_period(program, item, at).start for item in program.benefits
    }
    if not ids or not starts:
        return {}
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT c.member_id, c.benefit, count(*) AS n FROM loyalty_benefit_claim c "
        "JOIN unnest($2::text[], $3::timestamptz[]) AS p(benefit, start) "
        "ON p.benefit = c.benefit AND p.start = c.period_start "
        "WHERE c.member_id = ANY($1::bigint[]) GROUP BY 1, 2",
        ids,
        list(starts),
        list(starts.values()),
    )
    return {(r["member_id"], r["benefit"]): r["n"] for r in rows}
