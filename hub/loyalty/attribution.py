"""Points follow identity: merges and unmerges move lots, pending points and growth by provenance.

The contract with identity resolution (``hub.flows`` calls these in the same transaction as the
partition change, after ``source_record.member_id`` holds the new owners):

- ``reattribute(session=, source_record_ids=)`` — after an unmerge or a move. Every lot, accrual
  and growth fact earned by those records goes to the member that now owns each record: the
  lot's remaining points move with a ``reattribute`` transfer between the two members' available
  (or pending) accounts, growth and accrual rows change owner. Records without a member are left
  where they are. Calling it again is a no-op.
- ``follow_merge(session=, absorbed=, survivor=)`` — after a merge pointed ``absorbed``'s records
  at ``survivor``. Everything ``absorbed`` holds moves to ``survivor`` — lots from its records,
  lots no record earned (agent adjustments), growth, and any clawback debt — and the survivor
  keeps the higher of the two tiers. Idempotent.

Points are never created or destroyed: each move is a transfer of a lot's remaining points from
one member account to another, so every total (issued, spent, expired, breakage) is unchanged
and ``hub ledger check`` holds before and after. Debt stays with the member who owed it on an
unmerge (a clawback is owed by the person, not by the record). Tiers: members receiving growth
are upgraded when it reaches a threshold; a member losing growth keeps its tier until the period
ends, like any member whose growth was refunded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.clock import utcnow
from hub.loyalty._sql import driver
from hub.loyalty.holdings import PENDING, load_lots, save_lots
from hub.loyalty.ledger import (
    MemberAccounts,
    Transfer,
    TransferCode,
    lock_accounts,
    member_accounts,
    post_transfers,
)
from hub.loyalty.model import Program
from hub.loyalty.standing import TierUpdate, apply_upgrades, set_tiers, tier_states
from hub.loyalty.tiers import TierChange, TierDecision, TierReason


@dataclass(frozen=True, slots=True)
class Moved:
    lots: int
    points: int
    growth_facts: int


async def reattribute(
    *,
    session: AsyncSession,
    program: Program,
    source_record_ids: Iterable[int],
    now: datetime | None = None,
) -> Moved:
    """Move what the records earned to the members that own them now (see module docstring)."""
    records = sorted(set(source_record_ids))
    if not records:
        return Moved(0, 0, 0)
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT l.id, l.member_id, sr.member_id AS owner FROM loyalty_lot l "
        "JOIN source_record sr ON sr.id = l.source_record_id "
        "WHERE sr.id = ANY($1::bigint[]) AND sr.member_id IS NOT NULL "
        "AND l.member_id <> sr.member_id",
        records,
    )
    targets = {r["id"]: r["owner"] for r in rows}
    members = {r["member_id"] for r in rows} | set(targets.values())
    moved = await _move_lots(session, targets, members, now or utcnow())
    growth = await _follow_records(conn, records)
    await apply_upgrades(
        session=session, program=program, member_ids=set(targets.values()), at=now or utcnow()
    )
    return Moved(moved[0], moved[1], growth)


async def follow_merge(
    *,
    session: AsyncSession,
    program: Program,
    absorbed: int,
    survivor: int,
    now: datetime | None = None,
) -> Moved:
    """Move everything ``absorbed`` holds to ``survivor`` (see module docstring)."""
    if absorbed == survivor:
        raise ValueError("a member cannot be merged into itself")
    at = now or utcnow()
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT l.id, coalesce(sr.member_id, $2) AS owner FROM loyalty_lot l "
        "LEFT JOIN source_record sr ON sr.id = l.source_record_id WHERE l.member_id = $1",
        absorbed,
        survivor,
    )
    targets = {r["id"]: r["owner"] for r in rows if r["owner"] != absorbed}
    members = {absorbed, survivor} | set(targets.values())
    accounts = await member_accounts(session=session, member_ids=members)
    lots, points = await _move_lots(session, targets, members, at, accounts=accounts)
    await _move_debt(session, accounts[absorbed], accounts[survivor], at)
    growth = await _follow_records(conn, None, absorbed=absorbed, survivor=survivor)
    await _keep_higher_tier(session, program, absorbed, survivor, at)
    await apply_upgrades(session=session, program=program, member_ids=members, at=at)
    return Moved(lots, points, growth)


async def _move_lots(
    session: AsyncSession,
    targets: Mapping[int, int],
    members: set[int],
    at: datetime,
    *,
    accounts: Mapping[int, MemberAccounts] | None = None,
) -> tuple[int, int]:
    if not targets:
        return 0, 0
    accounts = accounts or await member_accounts(session=session, member_ids=members)
    await lock_accounts(
        session=session, account_ids=[i for a in accounts.values() for i in a.ids()]
    )
    lots = await load_lots(session=session, lot_ids=targets)
    conn = await driver(session)
    moves = {
        r["lot_id"]: r["n"]
        for r in await conn.fetch(
            "SELECT lot_id, count(*) AS n FROM loyalty_transfer WHERE lot_id = ANY($1::bigint[]) "
            "AND code = 'reattribute' GROUP BY lot_id",
            sorted(targets),
        )
    }
    transfers: list[Transfer] = []
    points = 0
    for lot_id, owner in sorted(targets.items()):
        lot = lots[lot_id]
        if lot.member_id == owner:
            continue  # moved by a concurrent call between our read and our lock
        if lot.remaining:
            pending = lot.state == PENDING
            src, dst = accounts[lot.member_id], accounts[owner]
            transfers.append(
                Transfer(
                    debit=src.pending if pending else src.available,
                    credit=dst.pending if pending else dst.available,
                    amount=lot.remaining,
                    code=TransferCode.REATTRIBUTE,
                    key=f"reattribute:{lot.id}:{moves.get(lot.id, 0) + 1}",
                    effective_at=at,
                    activity_id=lot.activity_id,
                    source_record_id=lot.source_record_id,
                    lot_id=lot.id,
                )
            )
            points += lot.remaining
        lot.member_id = owner
        lot.dirty = True
    await post_transfers(session=session, transfers=transfers)
    await save_lots(session=session, lots=lots.values())
    return len(targets), points


async def _follow_records(
    conn: object,
    records: list[int] | None,
    *,
    absorbed: int | None = None,
    survivor: int | None = None,
) -> int:
    """Point accrual and growth rows at their record's owner (or the survivor when none)."""
    moved = 0
    for table, key in (("loyalty_growth", "id"), ("loyalty_accrual", "activity_id")):
        if records is not None:
            sql = (
                f"UPDATE {table} t SET member_id = sr.member_id FROM source_record sr "
                "WHERE sr.id = t.source_record_id AND sr.id = ANY($1::bigint[]) "
                f"AND sr.member_id IS NOT NULL AND t.member_id <> sr.member_id RETURNING t.{key}"
            )
            result = await conn.fetch(sql, records)  # type: ignore[attr-defined]
        else:
            owner = (
                "coalesce((SELECT sr.member_id FROM source_record sr "
                "WHERE sr.id = t.source_record_id), $2)"
            )
            sql = (
                f"UPDATE {table} t SET member_id = {owner} "
                f"WHERE t.member_id = $1 AND {owner} <> $1 RETURNING t.{key}"
            )
            result = await conn.fetch(sql, absorbed, survivor)  # type: ignore[attr-defined]
        if table == "loyalty_growth":
            moved = len(result)
    return moved


async def _move_debt(
    session: AsyncSession, absorbed: MemberAccounts, survivor: MemberAccounts, at: datetime
) -> None:
    balances = await lock_accounts(session=session, account_ids=[absorbed.debt, survivor.debt])
    owed = -balances[absorbed.debt]
    if owed <= 0:
        return
    conn = await driver(session)
    n = await conn.fetchval(
        "SELECT count(*) FROM loyalty_transfer WHERE credit_account = $1 AND code = 'reattribute'",
        absorbed.debt,
    )
    await post_transfers(
        session=session,
        transfers=[
            Transfer(
                debit=survivor.debt,
                credit=absorbed.debt,
                amount=owed,
                code=TransferCode.REATTRIBUTE,
                key=f"merge-debt:{absorbed.debt}:{n + 1}",
                effective_at=at,
            )
        ],
    )


async def _keep_higher_tier(
    session: AsyncSession, program: Program, absorbed: int, survivor: int, at: datetime
) -> None:
    states = await tier_states(
        session=session, program=program, member_ids=[absorbed, survivor], at=at
    )
    mine, theirs = states[survivor], states[absorbed]
    if program.tier(theirs.tier).rank <= program.tier(mine.tier).rank:
        return
    decision = TierDecision(
        TierChange.UPGRADE, theirs.tier, mine.tier, TierReason.THRESHOLD_REACHED, 0
    )
    await set_tiers(
        session=session,
        changes=[
            TierUpdate(
                state=mine,
                decision=decision,
                since=theirs.since,
                period=(theirs.period_start, theirs.period_end),
                key=f"merge:{absorbed}:{survivor}:{at.isoformat()}",
                at=at,
                change="merge",
            )
        ],
    )
