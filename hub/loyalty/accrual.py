"""Accrual: what landed activities earn, and what their refunds and cancellations take back.

``accrue_activities(session=, program=, activity_ids=)`` is set-based and idempotent: an
activity accrues once (``loyalty_accrual`` is keyed by it), a refund reverses once (keyed
``refund:<refund activity id>``), a cancellation once (``cancel:<activity id>``). Activities
whose source record has no member yet are skipped; ``accrue_for_records`` picks them up when
identity attaches the record.

- Earning is ``earning.points_for`` at the member's current tier. Points go to the member's
  pending account while the line's window is open (``jobs.release_pending`` moves them later)
  and straight to available otherwise. Each accrual is a lot; growth is a signed fact.
- Activities with status ``pending`` or ``confirmed`` earn; ``cancelled`` ones earn nothing,
  and a cancellation of an accrued activity reverses what is left of it.
- A refund reverses pro rata on the running total (``earning.refund_points``), so partial
  refunds never take more than was earned and the last one takes exactly the rest. Points come
  from the activity's own lot first, then (when it was spent) from the member's other available
  lots FIFO by expiry; what is still missing follows the line's refund policy: written off
  (``within_balance``) or booked on the member's debt account (``allow_negative``), which later
  points pay off first.
- Later changes to an accrued activity's amount do not re-earn: corrections arrive as refunds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.clock import utcnow
from hub.core.db import Database
from hub.core.records import ActivityKind, ActivityStatus
from hub.loyalty import earning
from hub.loyalty._sql import as_json, driver, has_sqlstate
from hub.loyalty.errors import LoyaltyError
from hub.loyalty.holdings import AVAILABLE, PENDING, LotState, insert_lots, new_lot_ids, save_lots
from hub.loyalty.ledger import (
    AccountKind,
    Transfer,
    TransferCode,
    line_accounts,
    lock_accounts,
    member_accounts,
    post_transfers,
)
from hub.loyalty.model import Program
from hub.loyalty.reversal import Reversal, ReversalWork, repay_debts, reverse
from hub.loyalty.standing import apply_upgrades, tier_states

BATCH = 5_000

_LOAD = """
SELECT a.id, a.source, a.kind, a.status, a.business_line, a.amount_fen, a.quantity,
       a.occurred_at, a.details, sr.id AS source_record_id, sr.member_id,
       (acc.activity_id IS NOT NULL) AS accrued, o.id AS original_id
FROM activity a
LEFT JOIN source_record sr ON sr.source = a.source AND sr.source_key = a.source_key
LEFT JOIN loyalty_accrual acc ON acc.activity_id = a.id
LEFT JOIN activity o ON a.kind = 'refund' AND o.source = a.source
  AND o.external_id = a.original_external_id
WHERE a.id = ANY($1::bigint[])
"""

_REFUNDS_OF = """
SELECT r.id, r.status, r.amount_fen, o.id AS original_id
FROM activity o
JOIN activity r ON r.source = o.source AND r.original_external_id = o.external_id
  AND r.kind = 'refund'
WHERE o.id = ANY($1::bigint[])
"""


@dataclass(frozen=True, slots=True)
class StoredActivity:
    """An ``activity`` row in the shape ``earning.ActivityLike`` reads."""

    id: int
    business_line: str
    kind: ActivityKind
    status: ActivityStatus
    amount_fen: int
    quantity: int
    occurred_at: datetime
    details: Mapping[str, Any]
    source_record_id: int | None
    member_id: int | None


@dataclass
class AccrualReport:
    accrued: int = 0  # activities that accrued now (an accrual row each)
    points: int = 0
    pending_points: int = 0
    growth: int = 0
    reversed: int = 0  # refunds and cancellations applied now
    points_reversed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def add(self, other: AccrualReport) -> None:
        for name in ("accrued", "points", "pending_points", "growth", "reversed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.points_reversed += other.points_reversed
        for reason, n in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n


async def accrue_activities(
    *,
    session: AsyncSession,
    program: Program,
    activity_ids: Iterable[int],
    now: datetime | None = None,
) -> AccrualReport:
    """Accrue, reverse and re-check tiers for the given activities (any kinds, any order)."""
    ids = sorted(set(activity_ids))
    at = now or utcnow()
    report = AccrualReport()
    for start in range(0, len(ids), BATCH):
        report.add(await _accrue_batch(session, program, ids[start : start + BATCH], at))
    return report


async def accrue_for_records(
    *,
    session: AsyncSession,
    program: Program,
    source_record_ids: Iterable[int],
    now: datetime | None = None,
) -> AccrualReport:
    """Accrue everything the records' activities still owe (call after identity attaches them)."""
    return await accrue_activities(
        session=session,
        program=program,
        activity_ids=await activities_of(session=session, source_record_ids=source_record_ids),
        now=now,
    )


_ATTEMPTS = 3
_RETRY_SQLSTATES = frozenset({"23505", "40001", "40P01"})  # unique key, serialization, deadlock

# Activities that may still owe the ledger something, after ``$1`` in id order: a refund not yet
# applied, an accrued activity cancelled since and not yet reversed, any other activity not yet
# accrued (among them those whose record has no member yet, or whose line earns nothing:
# ``accrue_activities`` skips and counts them). Each test is one index probe.
_OWED = """
SELECT a.id FROM activity a
WHERE a.id > $1 AND CASE
  WHEN a.kind = 'refund' THEN a.status <> 'cancelled' AND NOT EXISTS (
    SELECT 1 FROM loyalty_reversal r WHERE r.key = 'refund:' || a.id)
  WHEN EXISTS (SELECT 1 FROM loyalty_accrual c WHERE c.activity_id = a.id) THEN
    a.status = 'cancelled' AND NOT EXISTS (
      SELECT 1 FROM loyalty_reversal r WHERE r.key = 'cancel:' || a.id)
  ELSE a.status <> 'cancelled'
END
ORDER BY a.id
LIMIT $2
"""


async def accrue_owed(
    *,
    db: Database,
    program: Program,
    batch: int = BATCH,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AccrualReport:
    """Accrue everything the landed activities still owe, in id order, ``batch`` activities
    per transaction: the catch-up after a bulk import (``hub import --bulk``, then
    ``hub identity resolve``), which lands activities without accruing them.

    Safe to stop and run again, and beside live imports: each batch takes the catch-up's lock,
    and accrual is keyed (an activity accrues once, a refund or cancellation reverses once); a
    batch that met an activity an import's hooks accrued first is rolled back and done again.
    Activities whose record has no member yet are skipped and counted (``no_member_yet``), and
    looked at again by the next run. ``progress(last id done, last id)``."""
    report = AccrualReport()
    async with db.read() as session:
        last = int(await session.scalar(text("SELECT coalesce(max(id), 0) FROM activity")) or 0)
    after = 0
    while True:
        for attempt in range(1, _ATTEMPTS + 1):
            done = AccrualReport()
            try:
                async with db.unit_of_work() as session:
                    conn = await driver(session)
                    # jit: the look-up's estimate crosses ``jit_above_cost`` on a large table,
                    # and compiling it cost more than running it (as in ``ingest.store``).
                    await conn.execute(
                        "SET LOCAL jit = off; "
                        "SELECT pg_advisory_xact_lock(hashtext('hub.loyalty.accrue'))"
                    )
                    ids = [r["id"] for r in await conn.fetch(_OWED, after, batch)]
                    if ids:
                        done = await accrue_activities(
                            session=session, program=program, activity_ids=ids, now=now
                        )
                break
            except Exception as exc:
                # An import's hooks accrued one of these activities first (its key is taken),
                # or a deadlock: the batch rolled back, and is looked for again.
                if attempt == _ATTEMPTS or not has_sqlstate(exc, _RETRY_SQLSTATES):
                    raise
        report.add(done)
        if not ids:
            break
        after = ids[-1]
        if progress is not None:
            progress(min(after, last), max(last, after))
    if progress is not None:
        progress(last, last)
    return report


# A nested loop from the records into ``activity_person`` (a hash index on ``source_key``,
# migration 0023), ``source`` checked on the row.
ACTIVITIES_OF = (
    "SELECT a.id FROM source_record sr JOIN activity a ON a.source = sr.source "
    "AND a.source_key = sr.source_key WHERE sr.id = ANY($1::bigint[]) "
    "AND sr.member_id IS NOT NULL"
)


async def activities_of(*, session: AsyncSession, source_record_ids: Iterable[int]) -> list[int]:
    """Ids of the activities made by the records' people (records with a member only)."""
    records = sorted(set(source_record_ids))
    if not records:
        return []
    conn = await driver(session)
    rows = await conn.fetch(ACTIVITIES_OF, records)
    return [r["id"] for r in rows]


async def _accrue_batch(
    session: AsyncSession, program: Program, ids: Sequence[int], at: datetime
) -> AccrualReport:
    conn = await driver(session)
    report = AccrualReport()
    earners: list[StoredActivity] = []
    reversals: list[Reversal] = []
    for row in await conn.fetch(_LOAD, ids):
        kind = row["kind"]
        if kind == ActivityKind.REFUND:
            if row["original_id"] is None:
                report.skip("refund_of_unknown_original")
            elif row["status"] != ActivityStatus.CANCELLED:
                reversals.append(
                    Reversal(
                        f"refund:{row['id']}", row["original_id"], row["id"], row["amount_fen"]
                    )
                )
        elif row["accrued"]:
            if row["status"] == ActivityStatus.CANCELLED:
                reversals.append(Reversal(f"cancel:{row['id']}", row["id"], None, None))
        elif row["member_id"] is None:
            report.skip("no_member_yet")
        elif row["status"] == ActivityStatus.CANCELLED:
            report.skip("cancelled")
        elif row["business_line"] not in program.lines:
            report.skip("unknown_business_line")
        else:
            earners.append(_stored(row))
    # Refunds that landed before their original could accrue (no member yet) apply now.
    if earners:
        known = {r.key for r in reversals}
        for row in await conn.fetch(_REFUNDS_OF, [a.id for a in earners]):
            key = f"refund:{row['id']}"
            if key not in known and row["status"] != ActivityStatus.CANCELLED:
                reversals.append(Reversal(key, row["original_id"], row["id"], row["amount_fen"]))
    if not earners and not reversals:
        return report

    owners = await _owners(conn, [r.original_id for r in reversals])
    members = {a.member_id for a in earners if a.member_id is not None} | set(owners.values())
    accounts = await member_accounts(session=session, member_ids=members)
    lines = {a.business_line for a in earners} | set(program.lines)
    issuance = await line_accounts(session=session, kind=AccountKind.ISSUANCE, lines=lines)
    balances = await lock_accounts(
        session=session, account_ids=[i for m in accounts.values() for i in m.ids()]
    )
    tiers = await tier_states(session=session, program=program, member_ids=members, at=at)

    new_lots, transfers, accruals, growth = await _earn(
        session, program, earners, tiers, accounts, issuance, at, report
    )
    await _insert_accruals(conn, accruals)
    await insert_lots(session=session, lots=new_lots)
    work = ReversalWork(
        program=program, accounts=accounts, issuance=issuance, balances=balances, at=at
    )
    earner_of = {a.id: a.member_id for a in earners}
    book = set(owners.values()) | {
        m for r in reversals if (m := earner_of.get(r.original_id)) is not None
    }
    await work.load(session=session, members=book, new_lots=new_lots)
    await work.prepare(session=session, reversals=reversals)
    for reversal in sorted(reversals, key=lambda r: (r.original_id, r.key)):
        taken = reverse(work, reversal)
        if taken is not None:
            report.reversed += 1
            report.points_reversed += taken
    transfers.extend(work.transfers)
    transfers.extend(repay_debts(work, members))
    await save_lots(session=session, lots=work.all_lots())
    await post_transfers(session=session, transfers=transfers)
    growth.extend(work.growth)
    await insert_growth(session=session, facts=growth)
    await work.flush(session=session)
    grew = {g[0] for g in growth if g[4] > 0}
    await apply_upgrades(session=session, program=program, member_ids=grew, at=at)
    return report


def _stored(row: Any) -> StoredActivity:
    return StoredActivity(
        id=row["id"],
        business_line=row["business_line"],
        kind=ActivityKind(row["kind"]),
        status=ActivityStatus(row["status"]),
        amount_fen=row["amount_fen"],
        quantity=row["quantity"],
        occurred_at=row["occurred_at"],
        details=as_json(row["details"]),
        source_record_id=row["source_record_id"],
        member_id=row["member_id"],
    )


async def _owners(conn: Any, original_ids: Sequence[int]) -> dict[int, int]:
    if not original_ids:
        return {}
    rows = await conn.fetch(
        "SELECT activity_id, member_id FROM loyalty_accrual WHERE activity_id = ANY($1::bigint[])",
        sorted(set(original_ids)),
    )
    return {r["activity_id"]: r["member_id"] for r in rows}


GrowthFact = tuple[int, int | None, int | None, str, int, datetime, str]


async def _earn(
    session: AsyncSession,
    program: Program,
    earners: Sequence[StoredActivity],
    tiers: Mapping[int, Any],
    accounts: Mapping[int, Any],
    issuance: Mapping[str | None, int],
    at: datetime,
    report: AccrualReport,
) -> tuple[list[LotState], list[Transfer], list[tuple[Any, ...]], list[GrowthFact]]:
    results: list[tuple[StoredActivity, earning.Earning, str]] = []
    for activity in earners:
        assert activity.member_id is not None
        tier = tiers[activity.member_id].tier
        try:
            earned = earning.points_for(activity, program, tier)
        except LoyaltyError as exc:
            report.skip(exc.code.lower())
            continue
        results.append((activity, earned, tier))
    lot_ids = iter(
        await new_lot_ids(session=session, count=sum(1 for _, e, _ in results if e.points))
    )
    lots: list[LotState] = []
    transfers: list[Transfer] = []
    accruals: list[tuple[Any, ...]] = []
    growth: list[GrowthFact] = []
    for activity, earned, tier in results:
        member = activity.member_id
        assert member is not None
        lot_id: int | None = None
        if earned.points:
            lot_id = next(lot_ids)
            pending = earned.pending_until is not None and earned.pending_until > at
            own = accounts[member]
            lots.append(
                LotState(
                    id=lot_id,
                    member_id=member,
                    source_record_id=activity.source_record_id,
                    activity_id=activity.id,
                    issuer_line=activity.business_line,
                    state=PENDING if pending else AVAILABLE,
                    earned_at=activity.occurred_at,
                    pending_until=earned.pending_until,
                    expires_at=earned.expires_at,
                    amount=earned.points,
                    remaining=earned.points,
                )
            )
            transfers.append(
                Transfer(
                    debit=issuance[activity.business_line],
                    credit=own.pending if pending else own.available,
                    amount=earned.points,
                    code=TransferCode.ACCRUE_PENDING if pending else TransferCode.ACCRUE,
                    key=f"accrue:{activity.id}",
                    effective_at=activity.occurred_at,
                    activity_id=activity.id,
                    source_record_id=activity.source_record_id,
                    lot_id=lot_id,
                )
            )
            report.points += earned.points
            if pending:
                report.pending_points += earned.points
        if earned.growth:
            growth.append(
                (
                    member,
                    activity.source_record_id,
                    activity.id,
                    activity.business_line,
                    earned.growth,
                    activity.occurred_at,
                    f"growth:{activity.id}",
                )
            )
            report.growth += earned.growth
        accruals.append(
            (
                activity.id,
                member,
                activity.source_record_id,
                activity.business_line,
                lot_id,
                earned.points,
                earned.growth,
                activity.amount_fen,
                tier,
                activity.occurred_at,
            )
        )
        report.accrued += 1
    return lots, transfers, accruals, growth


async def _insert_accruals(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        "INSERT INTO loyalty_accrual (activity_id, member_id, source_record_id, line, lot_id, "
        "points, growth, amount_fen, tier, occurred_at) SELECT * FROM unnest($1::bigint[], "
        "$2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], "
        "$8::bigint[], $9::text[], $10::timestamptz[])",
        *[list(c) for c in columns],
    )


async def insert_growth(*, session: AsyncSession, facts: Sequence[GrowthFact]) -> None:
    """Insert growth facts ``(member, record, activity, line, amount, earned_at, key)``."""
    facts = [f for f in facts if f[4] != 0]
    if not facts:
        return
    conn = await driver(session)
    columns = list(zip(*facts, strict=True))
    await conn.execute(
        "INSERT INTO loyalty_growth (member_id, source_record_id, activity_id, line, amount, "
        "earned_at, key) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], "
        "$4::text[], $5::bigint[], $6::timestamptz[], $7::text[]) ON CONFLICT (key) DO NOTHING",
        *[list(c) for c in columns],
    )
