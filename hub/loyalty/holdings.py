"""Lots as the ledger stores them: load (locked), change in memory, write back in one statement.

A lot is what one accrual (or adjustment) issued: ``amount`` points from ``issuer_line`` for the
member who owns ``source_record_id``, ``remaining`` of them still held. While ``state`` is
``pending`` the remainder sits in the member's pending account, afterwards in available; so for
every member, available balance = Σ remaining of available lots and pending balance = Σ
remaining of pending lots (``invariants.check_lots_match_balances``). Transfers are the facts;
``remaining`` is their running allocation, updated only in the transaction that posts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.loyalty._sql import driver
from hub.loyalty.lots import Lot, allocate, usable

PENDING = "pending"
AVAILABLE = "available"

_COLUMNS = (
    "id, member_id, source_record_id, activity_id, issuer_line, state, earned_at, "
    "pending_until, expires_at, amount, remaining"
)


@dataclass(slots=True)
class LotState:
    id: int
    member_id: int
    source_record_id: int | None
    activity_id: int | None
    issuer_line: str
    state: str
    earned_at: datetime
    pending_until: datetime | None
    expires_at: datetime | None
    amount: int
    remaining: int
    dirty: bool = field(default=False, compare=False)

    def take(self, points: int) -> None:
        if not 0 < points <= self.remaining:
            raise ValueError("a lot gives at most what it holds")
        self.remaining -= points
        self.dirty = True

    def as_lot(self) -> Lot:
        return Lot(self.id, self.issuer_line, self.earned_at, self.expires_at, self.remaining)


def spendable(lots: Iterable[LotState], *, at: datetime, skip: int | None = None) -> int:
    """Points a burn could take now from available, unexpired lots (optionally but one)."""
    return sum(
        lot.remaining
        for lot in usable(
            (x.as_lot() for x in lots if x.state == AVAILABLE and x.id != skip), at=at
        )
    )


def burn(
    lots: Sequence[LotState], points: int, *, at: datetime, skip: int | None = None
) -> list[tuple[LotState, int]]:
    """Take up to ``points`` FIFO by expiry from available lots; returns (lot, taken) pairs."""
    want = min(points, spendable(lots, at=at, skip=skip))
    if want <= 0:
        return []
    by_id = {lot.id: lot for lot in lots}
    candidates = [x.as_lot() for x in lots if x.state == AVAILABLE and x.id != skip]
    taken: list[tuple[LotState, int]] = []
    for b in allocate(candidates, want, at=at):
        lot = by_id[int(b.lot_id)]
        lot.take(b.points)
        taken.append((lot, b.points))
    return taken


async def load_lots(
    *,
    session: AsyncSession,
    member_ids: Iterable[int] = (),
    lot_ids: Iterable[int] = (),
    with_empty: bool = False,
) -> dict[int, LotState]:
    """Lots of the members (with points left, unless ``with_empty``) and the named lots,
    locked ``FOR UPDATE`` in id order. Lock member accounts first (``ledger.lock_accounts``)."""
    members = sorted(set(member_ids))
    ids = sorted(set(lot_ids))
    if not members and not ids:
        return {}
    conn = await driver(session)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM loyalty_lot WHERE "
        "(member_id = ANY($1::bigint[]) AND ($3 OR has_points)) OR id = ANY($2::bigint[]) "
        "ORDER BY id FOR UPDATE",
        members,
        ids,
        with_empty,
    )
    return {row["id"]: LotState(**dict(row)) for row in rows}


async def new_lot_ids(*, session: AsyncSession, count: int) -> list[int]:
    if count <= 0:
        return []
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT nextval(pg_get_serial_sequence('loyalty_lot', 'id')) AS id "
        "FROM generate_series(1, $1)",
        count,
    )
    return [row["id"] for row in rows]


async def insert_lots(*, session: AsyncSession, lots: Sequence[LotState]) -> None:
    if not lots:
        return
    conn = await driver(session)
    await conn.copy_records_to_table(
        "loyalty_lot", columns=[c.strip() for c in _COLUMNS.split(",")], records=_rows(lots)
    )


async def save_lots(*, session: AsyncSession, lots: Iterable[LotState]) -> None:
    """Write back the lots changed in memory (remaining, state, owner)."""
    changed = [lot for lot in lots if lot.dirty]
    if not changed:
        return
    conn = await driver(session)
    await conn.execute(
        "UPDATE loyalty_lot l SET remaining = v.remaining, state = v.state, member_id = v.member "
        "FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[]) "
        "AS v(id, remaining, state, member) WHERE l.id = v.id",
        [lot.id for lot in changed],
        [lot.remaining for lot in changed],
        [lot.state for lot in changed],
        [lot.member_id for lot in changed],
    )
    for lot in changed:
        lot.dirty = False


def _rows(lots: Sequence[LotState]) -> list[tuple[object, ...]]:
    return [
        (
            lot.id,
            lot.member_id,
            lot.source_record_id,
            lot.activity_id,
            lot.issuer_line,
            lot.state,
            lot.earned_at,
            lot.pending_until,
            lot.expires_at,
            lot.amount,
            lot.remaining,
        )
        for lot in lots
    ]
