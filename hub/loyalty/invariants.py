"""Ledger invariants as named checks (beancount's ``ops/validation.py`` style).

Each ``check_*`` takes a session and returns a list of ``Problem`` (empty when the rule holds).
They run after every ledger test and as ``hub ledger check``. Each is one set-based query so the
whole list stays cheap enough to run on a production database off-peak.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MAX_PROBLEMS = 20  # per check: enough to diagnose, bounded output


@dataclass(frozen=True, slots=True)
class Problem:
    check: str
    detail: str


async def _rows(session: AsyncSession, sql: str) -> list[tuple[object, ...]]:
    result = await session.execute(text(sql + f" LIMIT {MAX_PROBLEMS}"))
    return [tuple(r) for r in result]


_POSTED = """
WITH posted AS (
  SELECT account, sum(delta) AS posted FROM (
    SELECT credit_account AS account, amount AS delta FROM loyalty_transfer
    UNION ALL SELECT debit_account, -amount FROM loyalty_transfer) x
  GROUP BY account)
"""


async def check_double_entry(session: AsyncSession) -> list[Problem]:
    """Every transfer moves a positive amount between two different, existing accounts."""
    rows = await _rows(
        session,
        "SELECT t.id FROM loyalty_transfer t "
        "LEFT JOIN loyalty_account d ON d.id = t.debit_account "
        "LEFT JOIN loyalty_account c ON c.id = t.credit_account "
        "WHERE t.amount <= 0 OR t.debit_account = t.credit_account OR d.id IS NULL "
        "OR c.id IS NULL",
    )
    return [Problem("double_entry", f"transfer {r[0]} is not a valid double entry") for r in rows]


async def check_accounts_sum_to_zero(session: AsyncSession) -> list[Problem]:
    """The balances of all accounts (stored for members, posted for lines) sum to zero."""
    rows = await _rows(
        session,
        _POSTED + "SELECT total FROM (SELECT coalesce(sum(coalesce(a.balance, p.posted)), 0) "
        "AS total FROM loyalty_account a LEFT JOIN posted p ON p.account = a.id) s "
        "WHERE total <> 0",
    )
    return [Problem("accounts_sum_to_zero", f"all accounts sum to {r[0]}") for r in rows]


async def check_balances_match_postings(session: AsyncSession) -> list[Problem]:
    """Each member account's stored balance equals the sum of its postings."""
    rows = await _rows(
        session,
        _POSTED + "SELECT a.id, a.kind, a.member_id, a.balance, coalesce(p.posted, 0) "
        "FROM loyalty_account a LEFT JOIN posted p ON p.account = a.id "
        "WHERE a.balance IS NOT NULL AND a.balance <> coalesce(p.posted, 0)",
    )
    return [
        Problem(
            "balances_match_postings",
            f"account {r[0]} ({r[1]} of member {r[2]}) holds {r[3]} but postings sum to {r[4]}",
        )
        for r in rows
    ]


async def check_no_negative_balance(session: AsyncSession) -> list[Problem]:
    """No account below zero unless its policy allows it (debt, line accounts)."""
    rows = await _rows(
        session,
        _POSTED + "SELECT a.id, a.kind, coalesce(a.balance, p.posted) FROM loyalty_account a "
        "LEFT JOIN posted p ON p.account = a.id "
        "WHERE NOT a.allow_negative AND coalesce(a.balance, p.posted, 0) < 0",
    )
    return [Problem("no_negative_balance", f"account {r[0]} ({r[1]}) is at {r[2]}") for r in rows]


async def check_lots_match_balances(session: AsyncSession) -> list[Problem]:
    """A member's available (pending) balance is the sum of its available (pending) lots."""
    rows = await _rows(
        session,
        """
        SELECT a.member_id, a.kind, a.balance, coalesce(l.held, 0)
        FROM loyalty_account a
        LEFT JOIN (SELECT member_id, state, sum(remaining) AS held FROM loyalty_lot
                   GROUP BY member_id, state) l
          ON l.member_id = a.member_id AND 'member_' || l.state = a.kind
        WHERE a.kind IN ('member_available', 'member_pending')
          AND a.balance <> coalesce(l.held, 0)
        """,
    )
    problems = [
        Problem("lots_match_balances", f"member {r[0]} {r[1]} is {r[2]} but its lots hold {r[3]}")
        for r in rows
    ]
    orphans = await _rows(
        session,
        "SELECT l.member_id, l.state, sum(l.remaining) FROM loyalty_lot l "
        "LEFT JOIN loyalty_account a ON a.member_id = l.member_id "
        "AND a.kind = 'member_' || l.state WHERE a.id IS NULL GROUP BY 1, 2 "
        "HAVING sum(l.remaining) > 0",
    )
    problems += [
        Problem("lots_match_balances", f"member {r[0]} has {r[2]} {r[1]} points in lots only")
        for r in orphans
    ]
    return problems


async def check_lots_follow_records(session: AsyncSession) -> list[Problem]:
    """Lots, accruals and growth sit with the member that owns the record that earned them."""
    rows = await _rows(
        session,
        """
        SELECT 'lot', l.id, l.member_id, sr.member_id FROM loyalty_lot l
          JOIN source_record sr ON sr.id = l.source_record_id
          WHERE sr.member_id IS NOT NULL AND sr.member_id <> l.member_id
        UNION ALL
        SELECT 'growth', g.id, g.member_id, sr.member_id FROM loyalty_growth g
          JOIN source_record sr ON sr.id = g.source_record_id
          WHERE sr.member_id IS NOT NULL AND sr.member_id <> g.member_id
        UNION ALL
        SELECT 'accrual', c.activity_id, c.member_id, sr.member_id FROM loyalty_accrual c
          JOIN source_record sr ON sr.id = c.source_record_id
          WHERE sr.member_id IS NOT NULL AND sr.member_id <> c.member_id
        """,
    )
    return [
        Problem("lots_follow_records", f"{r[0]} {r[1]} is with member {r[2]}, record with {r[3]}")
        for r in rows
    ]


async def check_reversals_within_accruals(session: AsyncSession) -> list[Problem]:
    """Refunds never take back more points, growth or money than the activity earned."""
    rows = await _rows(
        session,
        "SELECT a.activity_id, sum(r.points), a.points FROM loyalty_reversal r "
        "JOIN loyalty_accrual a ON a.activity_id = r.activity_id GROUP BY a.activity_id, "
        "a.points, a.growth, a.amount_fen HAVING sum(r.points) > a.points "
        "OR sum(r.growth) > a.growth OR sum(r.amount_fen) > a.amount_fen",
    )
    return [
        Problem("reversals_within_accruals", f"activity {r[0]}: reversed {r[1]} of {r[2]} points")
        for r in rows
    ]


async def check_lot_transfers(session: AsyncSession) -> list[Problem]:
    """Each lot's issued amount equals the accrual or adjustment transfer that created it."""
    rows = await _rows(
        session,
        "SELECT l.id, l.amount, t.amount FROM loyalty_lot l LEFT JOIN loyalty_transfer t "
        "ON t.lot_id = l.id AND t.code IN ('accrue', 'accrue_pending', 'adjust') "
        "WHERE t.id IS NULL OR t.amount <> l.amount",
    )
    return [
        Problem("lot_transfers", f"lot {r[0]} holds {r[1]} but was issued {r[2]}") for r in rows
    ]


Check = Callable[[AsyncSession], Awaitable[list[Problem]]]

CHECKS: tuple[Check, ...] = (
    check_double_entry,
    check_accounts_sum_to_zero,
    check_balances_match_postings,
    check_no_negative_balance,
    check_lots_match_balances,
    check_lots_follow_records,
    check_reversals_within_accruals,
    check_lot_transfers,
)


async def run_checks(session: AsyncSession) -> dict[str, list[Problem]]:
    """Every check by name, in order, with its problems."""
    return {check.__name__: await check(session) for check in CHECKS}
