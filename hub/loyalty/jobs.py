"""Scheduled ledger jobs: expire, release pending points, evaluate tiers at period ends.

Each job takes ``as_of`` (a local date, meaning its first instant in the program's zone, or an
aware datetime) and is:

- idempotent for that date: it acts only on what is due and not yet done (lots with points
  left, pending lots still pending, tier periods not yet closed), and every transfer it posts has
  a key derived from the lot (``expire:<lot>``, ``release:<lot>``) or period;
- safe to run concurrently: a transaction-scoped advisory lock per job makes a second run wait
  for the first and then find nothing left to do; within a run, member accounts are locked
  before lots, in id order, like every other ledger write;
- bounded: it works in batches of ``BATCH`` lots or members inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.loyalty._sql import driver
from hub.loyalty.holdings import AVAILABLE, PENDING, LotState, load_lots, save_lots
from hub.loyalty.ledger import (
    AccountKind,
    MemberAccounts,
    Transfer,
    TransferCode,
    line_accounts,
    lock_accounts,
    member_accounts,
    post_transfers,
)
from hub.loyalty.model import Program
from hub.loyalty.periods import midnight
from hub.loyalty.reversal import ReversalWork, repay_debts
from hub.loyalty.standing import TierState, TierUpdate, apply_upgrades, growth_between, set_tiers
from hub.loyalty.tiers import TierChange, evaluate, evaluation_period

BATCH = 5_000


@dataclass
class JobResult:
    job: str
    as_of: datetime
    items: int = 0  # lots expired / released, members evaluated
    points: int = 0
    changes: dict[str, int] = field(default_factory=dict)  # tier changes by kind


def instant(as_of: date | datetime, program: Program) -> datetime:
    """A date means its first instant in the program's zone: ``expire --as-of 2027-01-01``
    expires what was valid through 31 December 2026."""
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise ValueError("as_of must carry a time zone")
        return as_of
    return midnight(as_of, program.timezone)


async def _job_lock(session: AsyncSession, name: str) -> None:
    conn = await driver(session)
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"hub.loyalty.{name}")


async def expire(*, session: AsyncSession, program: Program, as_of: date | datetime) -> JobResult:
    """Move what is left of every lot whose expiry has passed into breakage (expiry account)."""
    at = instant(as_of, program)
    result = JobResult("expire", at)
    await _job_lock(session, "expire")
    conn = await driver(session)
    while True:
        due = await conn.fetch(
            "SELECT id, member_id FROM loyalty_lot WHERE state = 'available' AND has_points "
            "AND expires_at <= $1 ORDER BY id LIMIT $2",
            at,
            BATCH,
        )
        if not due:
            return result
        accounts, lots = await _lock(session, due)
        breakage = await line_accounts(
            session=session,
            kind=AccountKind.EXPIRY,
            lines={lot.issuer_line for lot in lots.values()},
        )
        transfers: list[Transfer] = []
        for lot in lots.values():
            if lot.state != AVAILABLE or not lot.remaining:
                continue
            transfers.append(
                Transfer(
                    debit=accounts[lot.member_id].available,
                    credit=breakage[lot.issuer_line],
                    amount=lot.remaining,
                    code=TransferCode.EXPIRE,
                    key=f"expire:{lot.id}",
                    effective_at=at,
                    source_record_id=lot.source_record_id,
                    lot_id=lot.id,
                )
            )
            result.items += 1
            result.points += lot.remaining
            lot.take(lot.remaining)
        await post_transfers(session=session, transfers=transfers)
        await save_lots(session=session, lots=lots.values())


async def release_pending(
    *, session: AsyncSession, program: Program, as_of: date | datetime
) -> JobResult:
    """Make pending lots whose window has closed available (and let them pay off any debt)."""
    at = instant(as_of, program)
    result = JobResult("release_pending", at)
    await _job_lock(session, "release_pending")
    conn = await driver(session)
    while True:
        due = await conn.fetch(
            "SELECT id, member_id FROM loyalty_lot WHERE state = 'pending' AND has_points "
            "AND pending_until <= $1 ORDER BY id LIMIT $2",
            at,
            BATCH,
        )
        if not due:
            return result
        accounts, lots = await _lock(session, due)
        transfers: list[Transfer] = []
        for lot in lots.values():
            if lot.state != PENDING or not lot.remaining:
                continue
            own = accounts[lot.member_id]
            transfers.append(
                Transfer(
                    debit=own.pending,
                    credit=own.available,
                    amount=lot.remaining,
                    code=TransferCode.RELEASE,
                    key=f"release:{lot.id}",
                    effective_at=at,
                    activity_id=lot.activity_id,
                    source_record_id=lot.source_record_id,
                    lot_id=lot.id,
                )
            )
            result.items += 1
            result.points += lot.remaining
            lot.state = AVAILABLE
            lot.dirty = True
        await post_transfers(session=session, transfers=transfers)
        await save_lots(session=session, lots=lots.values())
        await settle_debts(session=session, program=program, members=accounts, at=at)


async def settle_debts(
    *, session: AsyncSession, program: Program, members: Iterable[int], at: datetime
) -> int:
    """Let members' available points pay off their clawback debt; returns points repaid."""
    ids = sorted(set(members))
    accounts = await member_accounts(session=session, member_ids=ids)
    balances = await lock_accounts(
        session=session, account_ids=[i for a in accounts.values() for i in a.ids()]
    )
    work = ReversalWork(program=program, accounts=accounts, issuance={}, balances=balances, at=at)
    if not work.debtors():
        return 0
    await work.load(session=session, members=(), new_lots=())
    transfers = repay_debts(work, ids)
    await save_lots(session=session, lots=work.all_lots())
    await post_transfers(session=session, transfers=transfers)
    return sum(t.amount for t in transfers)


async def _lock(
    session: AsyncSession, due: Sequence[Any]
) -> tuple[dict[int, MemberAccounts], dict[int, LotState]]:
    members = {row["member_id"] for row in due}
    accounts = await member_accounts(session=session, member_ids=members)
    await lock_accounts(
        session=session, account_ids=[i for a in accounts.values() for i in a.ids()]
    )
    lots = await load_lots(session=session, lot_ids=[row["id"] for row in due])
    # A lot re-attributed between the read and the lock belongs to a member not locked yet.
    strays = {lot.member_id for lot in lots.values()} - members
    if strays:
        accounts.update(await member_accounts(session=session, member_ids=strays))
        await lock_accounts(
            session=session, account_ids=[i for m in strays for i in accounts[m].ids()]
        )
    return accounts, lots


async def evaluate_tiers(
    *, session: AsyncSession, program: Program, as_of: date | datetime
) -> JobResult:
    """Close every evaluation period that ended by ``as_of``: keep, downgrade (or upgrade)."""
    at = instant(as_of, program)
    result = JobResult("evaluate_tiers", at)
    await _job_lock(session, "evaluate_tiers")
    conn = await driver(session)
    touched: set[int] = set()
    while True:
        rows = await conn.fetch(
            "SELECT member_id, tier, since, period_start, period_end FROM loyalty_tier_state "
            "WHERE period_end <= $1 ORDER BY member_id LIMIT $2 FOR UPDATE",
            at,
            BATCH,
        )
        if not rows:
            break
        states = [TierState(**dict(r)) for r in rows]
        growth = await growth_between(
            session=session, spans={s.member_id: (s.period_start, s.period_end) for s in states}
        )
        updates: list[TierUpdate] = []
        for state in states:
            decision = evaluate(
                program,
                current_tier=state.tier,
                growth_in_period=growth.get(state.member_id, 0),
                period_ended=True,
            )
            since = state.since if decision.change is TierChange.KEEP else state.period_end
            period = evaluation_period(program, at=state.period_end, tier_since=since)
            updates.append(
                TierUpdate(
                    state=state,
                    decision=decision,
                    since=since,
                    period=(period.start, period.end),
                    key=f"period:{state.member_id}:{state.period_start.isoformat()}",
                    at=state.period_end,
                )
            )
            result.items += 1
            result.changes[str(decision.change)] = result.changes.get(str(decision.change), 0) + 1
            touched.add(state.member_id)
        await set_tiers(session=session, changes=updates)
    # Growth already earned in the new period may reach a threshold at once.
    await apply_upgrades(session=session, program=program, member_ids=touched, at=at)
    return result
