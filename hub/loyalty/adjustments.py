"""Agents adjusting a member's points by hand: bounded, idempotent, audited.

``adjust_points`` adds points as a new lot (issuer ``_group``, expiring like any accrual from
the moment of the adjustment) or takes them from the member's lots FIFO by expiry. Limits from
the program's ``[agent]`` table: ``max_single_adjustment_points`` per call and
``daily_adjustment_cap_points`` per agent per local day (sum of absolute amounts, counted from
the agent's posted adjustment transfers under a per-agent advisory lock, so two concurrent
adjustments cannot both squeeze under the cap). The agent's idempotency key is stored in the
shared ``idempotency_key`` table: a replay returns the first result, the same key with a
different request raises ``IdempotencyConflict``. Every adjustment writes an audit row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.audit import Actor, record_audit
from hub.core.clock import utcnow
from hub.core.errors import IdempotencyConflict, NotFound
from hub.loyalty import expiry
from hub.loyalty._sql import driver
from hub.loyalty.errors import AdjustmentCapExceeded, InsufficientPoints, InvalidAdjustment
from hub.loyalty.holdings import (
    AVAILABLE,
    LotState,
    burn,
    insert_lots,
    load_lots,
    new_lot_ids,
    save_lots,
    spendable,
)
from hub.loyalty.jobs import settle_debts
from hub.loyalty.ledger import (
    GROUP_LINE,
    AccountKind,
    Transfer,
    TransferCode,
    line_accounts,
    lock_accounts,
    member_accounts,
    post_transfers,
)
from hub.loyalty.model import Program
from hub.loyalty.periods import local_date, midnight

MAX_REASON = 500
MAX_KEY = 200
SCOPE = "loyalty.adjust"


@dataclass(frozen=True, slots=True)
class Adjustment:
    member_id: int
    amount: int
    available: int  # the member's available balance right after the adjustment
    replayed: bool = False


async def adjust_points(
    *,
    session: AsyncSession,
    program: Program,
    actor: Actor,
    member_id: int,
    amount: int,
    reason: str,
    idempotency_key: str,
    now: datetime | None = None,
) -> Adjustment:
    at = now or utcnow()
    _validate(program, amount, reason, idempotency_key)
    conn = await driver(session)
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{SCOPE}:{actor.id}")
    request = {"member_id": member_id, "amount": amount, "reason": reason.strip()}
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    inserted = await conn.fetchval(
        "INSERT INTO idempotency_key (scope, key, operation, request_hash, request) "
        "VALUES ($1, $2, 'adjust_points', $3, $4::jsonb) ON CONFLICT DO NOTHING RETURNING key",
        f"{SCOPE}:{actor.id}",
        idempotency_key,
        digest,
        json.dumps(request),
    )
    if inserted is None:
        return await _replay(conn, actor, idempotency_key, digest)

    status = await conn.fetchval("SELECT status FROM member WHERE id = $1", member_id)
    if status != "active":
        raise NotFound(f"member {member_id} is not an active member ({status or 'unknown'})")
    day = local_date(at, program.timezone)
    used = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM loyalty_transfer WHERE agent = $1 "
        "AND code IN ('adjust', 'adjust_debit') AND effective_at >= $2 AND effective_at < $3",
        actor.id,
        midnight(day, program.timezone),
        midnight(day + timedelta(days=1), program.timezone),
    )
    cap = program.agent.daily_adjustment_cap_points
    if used + abs(amount) > cap:
        raise AdjustmentCapExceeded(cap=cap, used=used, requested=abs(amount))

    accounts = (await member_accounts(session=session, member_ids=[member_id]))[member_id]
    pool = (await line_accounts(session=session, kind=AccountKind.ADJUSTMENT, lines=[None]))[None]
    await lock_accounts(session=session, account_ids=accounts.ids())
    key = f"adjust:{actor.id}:{idempotency_key}"
    if amount > 0:
        [lot_id] = await new_lot_ids(session=session, count=1)
        lot = LotState(
            id=lot_id,
            member_id=member_id,
            source_record_id=None,
            activity_id=None,
            issuer_line=GROUP_LINE,
            state=AVAILABLE,
            earned_at=at,
            pending_until=None,
            expires_at=expiry.expires_at(program.expiry, at, tz=program.timezone),
            amount=amount,
            remaining=amount,
        )
        await insert_lots(session=session, lots=[lot])
        await post_transfers(
            session=session,
            transfers=[
                Transfer(
                    debit=pool,
                    credit=accounts.available,
                    amount=amount,
                    code=TransferCode.ADJUST,
                    key=key,
                    effective_at=at,
                    lot_id=lot_id,
                    agent=actor.id,
                    reason=reason.strip(),
                )
            ],
        )
        await settle_debts(session=session, program=program, members=[member_id], at=at)
    else:
        lots = list((await load_lots(session=session, member_ids=[member_id])).values())
        have = spendable(lots, at=at)
        if have < -amount:
            raise InsufficientPoints(requested=-amount, available=have)
        transfers = [
            Transfer(
                debit=accounts.available,
                credit=pool,
                amount=points,
                code=TransferCode.ADJUST_DEBIT,
                key=f"{key}:lot:{lot.id}",
                effective_at=at,
                lot_id=lot.id,
                source_record_id=lot.source_record_id,
                agent=actor.id,
                reason=reason.strip(),
            )
            for lot, points in burn(lots, -amount, at=at)
        ]
        await save_lots(session=session, lots=lots)
        await post_transfers(session=session, transfers=transfers)

    available = await conn.fetchval(
        "SELECT balance FROM loyalty_account WHERE id = $1", accounts.available
    )
    result = Adjustment(member_id=member_id, amount=amount, available=available)
    await conn.execute(
        "UPDATE idempotency_key SET response = $3::jsonb WHERE scope = $1 AND key = $2",
        f"{SCOPE}:{actor.id}",
        idempotency_key,
        json.dumps(asdict(result)),
    )
    await record_audit(
        session=session,
        actor=actor,
        action="loyalty.adjust_points",
        subject=f"member:{member_id}",
        reason=reason.strip(),
        details={"amount": amount, "member_id": member_id},
    )
    return result


def _validate(program: Program, amount: int, reason: str, key: str) -> None:
    limit = program.agent.max_single_adjustment_points
    if amount == 0:
        raise InvalidAdjustment("amount", "must not be zero")
    if abs(amount) > limit:
        raise InvalidAdjustment("amount", f"at most {limit} points in one adjustment")
    if not reason.strip() or len(reason) > MAX_REASON:
        raise InvalidAdjustment("reason", f"must be 1 to {MAX_REASON} characters")
    if not key.strip() or len(key) > MAX_KEY:
        raise InvalidAdjustment("idempotency_key", f"must be 1 to {MAX_KEY} characters")


async def _replay(conn: object, actor: Actor, key: str, digest: str) -> Adjustment:
    row = await conn.fetchrow(  # type: ignore[attr-defined]
        "SELECT request_hash, response FROM idempotency_key WHERE scope = $1 AND key = $2",
        f"{SCOPE}:{actor.id}",
        key,
    )
    if row["request_hash"] != digest:
        raise IdempotencyConflict(key, "request")
    stored = json.loads(row["response"]) if isinstance(row["response"], str) else row["response"]
    return Adjustment(**{**stored, "replayed": True})
