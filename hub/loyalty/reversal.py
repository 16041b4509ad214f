"""Refunds and cancellations: take back what an accrual earned, once, in memory, then write.

The caller (``accrual``) has locked the members' accounts; ``ReversalWork.load`` locks their lots.
Each ``Reversal`` is keyed (``refund:<id>`` / ``cancel:<id>``) and recorded in the append-only
``loyalty_reversal`` with where its points came from: ``points_taken`` (lots), ``points_debt``
(the member's debt account, ``allow_negative`` lines) and ``points_written_off``
(``within_balance`` lines, points already spent). Growth is reversed pro rata the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.loyalty import earning
from hub.loyalty._sql import driver
from hub.loyalty.errors import RefundExceedsOriginal
from hub.loyalty.holdings import PENDING, LotState, burn, load_lots
from hub.loyalty.ledger import MemberAccounts, Transfer, TransferCode
from hub.loyalty.model import Program, RefundPolicy


@dataclass(frozen=True, slots=True)
class Reversal:
    key: str
    original_id: int
    refund_activity_id: int | None
    amount_fen: int | None  # None: a cancellation takes whatever is not yet refunded


@dataclass(frozen=True, slots=True)
class _Accrued:
    member_id: int
    source_record_id: int
    line: str
    lot_id: int | None
    points: int
    growth: int
    amount_fen: int


@dataclass
class ReversalWork:
    program: Program
    accounts: Mapping[int, MemberAccounts]
    issuance: Mapping[str | None, int]
    balances: dict[int, int]  # locked member account balances, kept current as work is done
    at: datetime
    lots: dict[int, LotState] = field(default_factory=dict)
    by_member: dict[int, list[LotState]] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)
    growth: list[tuple[int, int | None, int | None, str, int, datetime, str]] = field(
        default_factory=list
    )
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    accrued: dict[int, _Accrued] = field(default_factory=dict)
    totals: dict[int, list[int]] = field(default_factory=dict)  # fen, points, growth so far
    done: set[str] = field(default_factory=set)

    def debtors(self) -> set[int]:
        return {m for m, a in self.accounts.items() if self.balances.get(a.debt, 0) < 0}

    async def load(
        self, *, session: AsyncSession, members: Iterable[int], new_lots: Iterable[LotState]
    ) -> None:
        """Lock and hold the lots of ``members`` (and debtors); add the batch's new lots."""
        wanted = set(members) | self.debtors()
        for lot in (await load_lots(session=session, member_ids=wanted)).values():
            self._hold(lot)
        for lot in new_lots:
            self._hold(lot)

    def _hold(self, lot: LotState) -> None:
        if lot.id not in self.lots:
            self.lots[lot.id] = lot
            self.by_member.setdefault(lot.member_id, []).append(lot)

    async def prepare(self, *, session: AsyncSession, reversals: Iterable[Reversal]) -> None:
        items = list(reversals)
        if not items:
            return
        conn = await driver(session)
        originals = sorted({r.original_id for r in items})
        for row in await conn.fetch(
            "SELECT activity_id, member_id, source_record_id, line, lot_id, points, growth, "
            "amount_fen FROM loyalty_accrual WHERE activity_id = ANY($1::bigint[])",
            originals,
        ):
            values = dict(row)
            activity = values.pop("activity_id")
            self.accrued[activity] = _Accrued(**values)
        for row in await conn.fetch(
            "SELECT activity_id, sum(amount_fen) AS fen, sum(points) AS points, "
            "sum(growth) AS growth FROM loyalty_reversal WHERE activity_id = ANY($1::bigint[]) "
            "GROUP BY activity_id",
            originals,
        ):
            self.totals[row["activity_id"]] = [row["fen"], row["points"], row["growth"]]
        rows = await conn.fetch(
            "SELECT key FROM loyalty_reversal WHERE key = ANY($1::text[])", [r.key for r in items]
        )
        self.done.update(r["key"] for r in rows)

    def all_lots(self) -> Iterable[LotState]:
        return self.lots.values()

    async def flush(self, *, session: AsyncSession) -> None:
        if not self.rows:
            return
        conn = await driver(session)
        await conn.executemany(
            "INSERT INTO loyalty_reversal (activity_id, key, refund_activity_id, amount_fen, "
            "points, growth, points_taken, points_debt, points_written_off) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            self.rows,
        )
        self.rows.clear()


def reverse(work: ReversalWork, reversal: Reversal) -> int | None:
    """Apply one reversal in memory; the points it took back, or ``None`` if it does not apply
    (already applied, original never accrued, or refunds beyond the original amount)."""
    acc = work.accrued.get(reversal.original_id)
    if acc is None or reversal.key in work.done:
        return None
    fen, points_so_far, growth_so_far = work.totals.get(reversal.original_id, [0, 0, 0])
    amount = acc.amount_fen - fen if reversal.amount_fen is None else reversal.amount_fen
    try:
        due = earning.refund_points(
            original_points=acc.points,
            original_amount_fen=acc.amount_fen,
            refund_amount_fen=amount,
            already_refunded_fen=fen,
            already_refunded_points=points_so_far,
        )
        growth_due = earning.refund_points(
            original_points=acc.growth,
            original_amount_fen=acc.amount_fen,
            refund_amount_fen=amount,
            already_refunded_fen=fen,
            already_refunded_points=growth_so_far,
        )
    except RefundExceedsOriginal:
        return None
    taken, debt, written_off = _take(work, acc, reversal, due)
    work.done.add(reversal.key)
    work.totals[reversal.original_id] = [
        fen + amount,
        points_so_far + due,
        growth_so_far + growth_due,
    ]
    work.rows.append(
        (
            reversal.original_id,
            reversal.key,
            reversal.refund_activity_id,
            amount,
            due,
            growth_due,
            taken,
            debt,
            written_off,
        )
    )
    if growth_due:
        work.growth.append(
            (
                acc.member_id,
                acc.source_record_id,
                reversal.original_id,
                acc.line,
                -growth_due,
                work.at,
                f"growth:{reversal.key}",
            )
        )
    return due


def _take(work: ReversalWork, acc: _Accrued, reversal: Reversal, due: int) -> tuple[int, int, int]:
    if due == 0:
        return 0, 0, 0
    member = acc.member_id
    own = work.accounts[member]
    credit = work.issuance[acc.line]
    lot = work.lots.get(acc.lot_id) if acc.lot_id is not None else None
    left = due
    taken = 0

    def book(source: LotState, points: int, suffix: str) -> None:
        debit = own.pending if source.state == PENDING else own.available
        work.balances[debit] -= points
        work.transfers.append(
            Transfer(
                debit=debit,
                credit=credit,
                amount=points,
                code=TransferCode.REVERSE,
                key=f"{reversal.key}:{suffix}",
                effective_at=work.at,
                activity_id=reversal.refund_activity_id or reversal.original_id,
                source_record_id=source.source_record_id,
                lot_id=source.id,
            )
        )

    if lot is not None and lot.remaining:
        first = min(left, lot.remaining)
        lot.take(first)
        book(lot, first, f"lot:{lot.id}")
        left -= first
        taken += first
    if left and (lot is None or lot.state != PENDING):
        for other, points in burn(work.by_member.get(member, []), left, at=work.at):
            book(other, points, f"lot:{other.id}")
            left -= points
            taken += points
    if not left:
        return taken, 0, 0
    if work.program.line(acc.line).refund_policy is RefundPolicy.ALLOW_NEGATIVE:
        work.balances[own.debt] = work.balances.get(own.debt, 0) - left
        work.transfers.append(
            Transfer(
                debit=own.debt,
                credit=credit,
                amount=left,
                code=TransferCode.CLAWBACK_DEBT,
                key=f"{reversal.key}:debt",
                effective_at=work.at,
                activity_id=reversal.refund_activity_id or reversal.original_id,
                source_record_id=acc.source_record_id,
            )
        )
        return taken, left, 0
    return taken, 0, left


def repay_debts(work: ReversalWork, members: Iterable[int]) -> list[Transfer]:
    """Available points of members in debt pay the debt off first, FIFO by expiry."""
    transfers: list[Transfer] = []
    for member in sorted(set(members) & work.debtors()):
        own = work.accounts[member]
        owed = -work.balances[own.debt]
        for lot, points in burn(work.by_member.get(member, []), owed, at=work.at):
            before = lot.remaining + points
            work.balances[own.available] -= points
            work.balances[own.debt] += points
            transfers.append(
                Transfer(
                    debit=own.available,
                    credit=own.debt,
                    amount=points,
                    code=TransferCode.REPAY_DEBT,
                    key=f"repay:{lot.id}@{before}",
                    effective_at=work.at,
                    source_record_id=lot.source_record_id,
                    lot_id=lot.id,
                )
            )
    return transfers
