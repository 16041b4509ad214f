"""The points ledger: accounts and append-only, double-entry transfers (TigerBeetle-style).

Every change of points is one ``loyalty_transfer`` row: ``amount`` (> 0) moves from
``debit_account`` to ``credit_account`` with a ``code`` saying why, a unique idempotency key and
its provenance (activity, source record, lot, agent, reason). Rows are never updated or deleted
(a trigger rejects it); a correction is a new transfer the other way. An account's balance is
credits − debits, so the balances of all accounts sum to zero.

Accounts:

    member_available  per member   spendable points; never negative (CHECK)
    member_pending    per member   points waiting for a return window / check-out; never negative
    member_debt       per member   clawback of spent points under ``allow_negative``; may go < 0
    issuance          per line     the line's liability: debited when it issues points
    redemption_clearing per line   points spent at the line (redemption, settlement)
    expiry            per line     breakage: expired points, by issuing line
    adjustment        one          agents' manual adjustments

Member balances are a column kept in step under a row lock (the CHECK is the backstop); line
balances are computed from postings (see migration 0004 for why).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.errors import IdempotencyConflict
from hub.loyalty._sql import Tx, driver
from hub.loyalty.errors import InsufficientPoints

GROUP_LINE = "_group"  # issuer of adjustment lots: not a business line (line codes start a-z)
MAX_TRANSFERS_PER_CALL = 200_000
_TRANSFER_COLUMNS = (
    "debit_account",
    "credit_account",
    "amount",
    "code",
    "idempotency_key",
    "activity_id",
    "source_record_id",
    "lot_id",
    "agent",
    "reason",
    "effective_at",
)


class AccountKind(StrEnum):
    MEMBER_AVAILABLE = "member_available"
    MEMBER_PENDING = "member_pending"
    MEMBER_DEBT = "member_debt"
    ISSUANCE = "issuance"
    REDEMPTION_CLEARING = "redemption_clearing"
    EXPIRY = "expiry"
    ADJUSTMENT = "adjustment"
    REDEMPTION_HOLD = "redemption_hold"  # per redeeming line: points held, not yet spent


class TransferCode(StrEnum):
    ACCRUE = "accrue"  # issuance → available
    ACCRUE_PENDING = "accrue_pending"  # issuance → pending
    RELEASE = "release"  # pending → available, the window closed
    REVERSE = "reverse"  # available/pending → issuance: a refund or cancellation
    CLAWBACK_DEBT = "clawback_debt"  # debt → issuance: clawback beyond the balance
    REPAY_DEBT = "repay_debt"  # available → debt: new points pay a clawback off
    EXPIRE = "expire"  # available → expiry (breakage)
    ADJUST = "adjust"  # adjustment → available: an agent adds points (a lot)
    ADJUST_DEBIT = "adjust_debit"  # available → adjustment: an agent takes points
    REATTRIBUTE = "reattribute"  # member → member: unmerge / merge follows the source record
    # Redemption (hub.loyalty.redemption): available → hold → clearing, or back.
    HOLD = "hold"  # available → redemption_hold of the redeeming line
    VOID = "void"  # redemption_hold → available: cancelled, expired or not captured
    CAPTURE = "capture"  # redemption_hold → redemption_clearing of the redeeming line
    REDEEM = "redeem"  # redemption_clearing → issuance of the issuing line: its points used up
    HOLD_BREAKAGE = "hold_breakage"  # hold/clearing → expiry: returned to a lot that expired
    REFUND_REDEMPTION = "refund_redemption"  # clearing → available, issuance → clearing


@dataclass(frozen=True, slots=True)
class MemberAccounts:
    available: int
    pending: int
    debt: int

    def ids(self) -> tuple[int, int, int]:
        return (self.available, self.pending, self.debt)


@dataclass(frozen=True, slots=True)
class Transfer:
    debit: int
    credit: int
    amount: int
    code: TransferCode
    key: str
    effective_at: datetime
    activity_id: int | None = None
    source_record_id: int | None = None
    lot_id: int | None = None
    agent: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("a transfer moves a positive number of points")
        if self.debit == self.credit:
            raise ValueError("a transfer needs two different accounts")


async def member_accounts(*, session: Tx, member_ids: Iterable[int]) -> dict[int, MemberAccounts]:
    """The three accounts of each member, created on first use."""
    ids = sorted(set(member_ids))
    if not ids:
        return {}
    conn = await driver(session)
    kinds = [AccountKind.MEMBER_AVAILABLE, AccountKind.MEMBER_PENDING, AccountKind.MEMBER_DEBT]
    # Inserted in (member, kind) order so two imports creating the same accounts wait on each
    # other in the same order instead of deadlocking.
    await conn.execute(
        """
        INSERT INTO loyalty_account (kind, member_id, balance, allow_negative)
        SELECT k, m, 0, k = 'member_debt'
        FROM unnest($1::bigint[]) AS m CROSS JOIN unnest($2::text[]) AS k
        ORDER BY m, k
        ON CONFLICT (kind, coalesce(member_id, 0), coalesce(line, '')) DO NOTHING
        """,
        ids,
        [str(k) for k in kinds],
    )
    rows = await conn.fetch(
        "SELECT id, kind, member_id FROM loyalty_account WHERE member_id = ANY($1::bigint[])",
        ids,
    )
    found: dict[int, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["member_id"], {})[row["kind"]] = row["id"]
    return {
        m: MemberAccounts(
            available=found[m][AccountKind.MEMBER_AVAILABLE],
            pending=found[m][AccountKind.MEMBER_PENDING],
            debt=found[m][AccountKind.MEMBER_DEBT],
        )
        for m in ids
    }


async def line_accounts(
    *, session: Tx, kind: AccountKind, lines: Iterable[str | None]
) -> dict[str | None, int]:
    """One system account per (kind, line), created on first use; ``None`` is no line."""
    wanted = sorted(set(lines), key=lambda v: v or "")
    if not wanted:
        return {}
    conn = await driver(session)
    await conn.execute(
        """
        INSERT INTO loyalty_account (kind, line, allow_negative)
        SELECT $1, l, true FROM unnest($2::text[]) AS l ORDER BY l
        ON CONFLICT (kind, coalesce(member_id, 0), coalesce(line, '')) DO NOTHING
        """,
        str(kind),
        wanted,
    )
    rows = await conn.fetch(
        "SELECT id, line FROM loyalty_account WHERE kind = $1 AND member_id IS NULL "
        "AND coalesce(line, '') = ANY($2::text[])",
        str(kind),
        [w or "" for w in wanted],
    )
    return {row["line"]: row["id"] for row in rows}


async def lock_accounts(*, session: Tx, account_ids: Iterable[int]) -> dict[int, int]:
    """Lock member accounts and return their balances.

    Always in ascending id order: two transactions touching the same accounts (an accrual and an
    expiry run, or two refunds moving points between two merged members in opposite
    directions) then queue on the lowest id instead of each holding one row the other wants,
    which would deadlock. Every ledger write locks accounts before it locks any lot.
    """
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT id, balance FROM loyalty_account WHERE id = ANY($1::bigint[]) "
        "AND balance IS NOT NULL ORDER BY id FOR UPDATE",
        ids,
    )
    return {row["id"]: row["balance"] for row in rows}


async def post_transfers(*, session: Tx, transfers: Sequence[Transfer]) -> int:
    """Post transfers atomically; returns how many were new.

    A transfer whose idempotency key was posted before is skipped when it is the same transfer
    (accounts, amount, code) and raises ``IdempotencyConflict`` when it is not. Raises
    ``InsufficientPoints`` when a member account without ``allow_negative`` would go below zero
    (the database CHECK would refuse it too; this names the amounts).
    """
    if not transfers:
        return 0
    if len(transfers) > MAX_TRANSFERS_PER_CALL:
        raise ValueError(f"at most {MAX_TRANSFERS_PER_CALL} transfers per call")
    conn = await driver(session)
    balances = await lock_accounts(
        session=session, account_ids={a for t in transfers for a in (t.debit, t.credit)}
    )
    # After the locks, so a concurrent post of the same key has committed and is visible here.
    fresh = await _unposted(conn, transfers)
    if not fresh:
        return 0
    deltas: dict[int, int] = {}
    for t in fresh:
        if t.debit in balances:
            deltas[t.debit] = deltas.get(t.debit, 0) - t.amount
        if t.credit in balances:
            deltas[t.credit] = deltas.get(t.credit, 0) + t.amount
    await _check_cover(conn, balances, deltas)
    # COPY: a batch of accruals is thousands of rows, and COPY is the cheapest way in.
    await conn.copy_records_to_table(
        "loyalty_transfer",
        columns=_TRANSFER_COLUMNS,
        records=[
            (
                t.debit,
                t.credit,
                t.amount,
                str(t.code),
                t.key,
                t.activity_id,
                t.source_record_id,
                t.lot_id,
                t.agent,
                t.reason,
                t.effective_at,
            )
            for t in fresh
        ],
    )
    changed = [(a, d) for a, d in deltas.items() if d]
    if changed:
        await conn.execute(
            "UPDATE loyalty_account a SET balance = a.balance + d.delta "
            "FROM unnest($1::bigint[], $2::bigint[]) AS d(id, delta) WHERE a.id = d.id",
            [a for a, _ in changed],
            [d for _, d in changed],
        )
    return len(fresh)


async def post_transfer(*, session: Tx, transfer: Transfer) -> bool:
    """Post one transfer; ``False`` when its idempotency key was already posted (a replay)."""
    return await post_transfers(session=session, transfers=[transfer]) == 1


async def _unposted(conn: Any, transfers: Sequence[Transfer]) -> list[Transfer]:
    keys = [t.key for t in transfers]
    if len(set(keys)) != len(keys):
        raise ValueError("idempotency keys repeat within one call")
    rows = await conn.fetch(
        "SELECT idempotency_key, debit_account, credit_account, amount, code "
        "FROM loyalty_transfer WHERE idempotency_key = ANY($1::text[])",
        keys,
    )
    posted = {r["idempotency_key"]: r for r in rows}
    fresh: list[Transfer] = []
    for t in transfers:
        row = posted.get(t.key)
        if row is None:
            fresh.append(t)
            continue
        for name, mine, theirs in (
            ("debit_account", t.debit, row["debit_account"]),
            ("credit_account", t.credit, row["credit_account"]),
            ("amount", t.amount, row["amount"]),
            ("code", str(t.code), row["code"]),
        ):
            if mine != theirs:
                raise IdempotencyConflict(t.key, name)
    return fresh


async def _check_cover(conn: Any, balances: dict[int, int], deltas: dict[int, int]) -> None:
    short = [a for a, d in deltas.items() if balances[a] + d < 0]
    if not short:
        return
    rows = await conn.fetch(
        "SELECT id FROM loyalty_account WHERE id = ANY($1::bigint[]) AND NOT allow_negative",
        short,
    )
    for row in rows:
        account = row["id"]
        raise InsufficientPoints(requested=-deltas[account], available=balances[account])


async def member_balances(
    *, session: AsyncSession, member_ids: Iterable[int]
) -> dict[int, dict[AccountKind, int]]:
    """Current balances of members' accounts (members without accounts are absent)."""
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT member_id, kind, balance FROM loyalty_account WHERE member_id = ANY($1::bigint[])",
        sorted(set(member_ids)),
    )
    result: dict[int, dict[AccountKind, int]] = {}
    for row in rows:
        result.setdefault(row["member_id"], {})[AccountKind(row["kind"])] = row["balance"]
    return result
