"""Redemption and settlement invariants, as named checks (see ``hub.loyalty.invariants``).

Each ``check_*`` takes a session and returns ``Problem``s; ``REDEMPTION_CHECKS`` lists them for
``hub ledger check``. Redemption transfers are keyed ``redeem:<hold>:<event>/<leg>``
(``hub.loyalty.redemption``), which is how these tie postings back to holds.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.loyalty.invariants import MAX_PROBLEMS, Check, Problem


async def _rows(session: AsyncSession, sql: str) -> list[tuple[object, ...]]:
    result = await session.execute(text(sql + f" LIMIT {MAX_PROBLEMS}"))
    return [tuple(r) for r in result]


_LEGS = """
WITH legs AS (
  SELECT split_part(t.idempotency_key, ':', 2)::bigint AS hold_id, t.code, t.amount,
         da.kind AS debit_kind
  FROM loyalty_transfer t JOIN loyalty_account da ON da.id = t.debit_account
  WHERE t.idempotency_key LIKE 'redeem:%'),
per_hold AS (
  SELECT hold_id,
    coalesce(sum(amount) FILTER (WHERE code = 'hold'), 0) AS held,
    count(*) FILTER (WHERE code = 'capture') AS captures,
    coalesce(sum(amount) FILTER (WHERE code = 'capture'), 0) AS captured,
    coalesce(sum(amount) FILTER (WHERE debit_kind = 'redemption_hold'
                                 AND code IN ('void', 'hold_breakage')), 0) AS voided
  FROM legs GROUP BY hold_id)
"""


async def check_holds_resolved_once(session: AsyncSession) -> list[Problem]:
    """Each hold's postings match its state: held once, then captured or voided exactly once."""
    rows = await _rows(
        session,
        _LEGS + "SELECT h.id, h.state, h.points, h.captured_points, coalesce(p.held, 0), "
        "coalesce(p.captures, 0), coalesce(p.captured, 0), coalesce(p.voided, 0) "
        "FROM redemption_hold h LEFT JOIN per_hold p ON p.hold_id = h.id "
        "WHERE coalesce(p.held, 0) <> h.points OR coalesce(p.captures, 0) > 1 "
        "OR coalesce(p.captured, 0) <> h.captured_points "
        "OR coalesce(p.voided, 0) <> CASE WHEN h.state = 'pending' THEN 0 "
        "ELSE h.points - h.captured_points END",
    )
    return [
        Problem(
            "holds_resolved_once",
            f"hold {r[0]} ({r[1]}, {r[2]} points, {r[3]} captured): postings held {r[4]}, "
            f"captured {r[6]} in {r[5]} captures, voided {r[7]}",
        )
        for r in rows
    ]


async def check_holds_match_lots(session: AsyncSession) -> list[Problem]:
    """A hold's lots add up to its points, its captured points and its refunded points."""
    rows = await _rows(
        session,
        "SELECT h.id, h.points, h.captured_points, h.refunded_points, coalesce(sum(l.points), 0), "
        "coalesce(sum(l.captured), 0), coalesce(sum(l.refunded), 0) FROM redemption_hold h "
        "LEFT JOIN redemption_hold_lot l ON l.hold_id = h.id GROUP BY h.id "
        "HAVING coalesce(sum(l.points), 0) <> h.points "
        "OR coalesce(sum(l.captured), 0) <> h.captured_points "
        "OR coalesce(sum(l.refunded), 0) <> h.refunded_points",
    )
    return [
        Problem(
            "holds_match_lots",
            f"hold {r[0]} has {r[1]}/{r[2]}/{r[3]} points held/captured/refunded, "
            f"its lots {r[4]}/{r[5]}/{r[6]}",
        )
        for r in rows
    ]


async def check_hold_accounts(session: AsyncSession) -> list[Problem]:
    """Each line's hold account holds exactly the points of its pending holds."""
    rows = await _rows(
        session,
        """
        WITH posted AS (
          SELECT a.line, coalesce(sum(CASE WHEN t.credit_account = a.id THEN t.amount
                                      ELSE -t.amount END), 0) AS points
          FROM loyalty_account a LEFT JOIN loyalty_transfer t
            ON a.id IN (t.debit_account, t.credit_account)
          WHERE a.kind = 'redemption_hold' GROUP BY a.line),
        pending AS (
          SELECT line, sum(points) AS points FROM redemption_hold WHERE state = 'pending'
          GROUP BY line)
        SELECT coalesce(p.line, q.line), coalesce(p.points, 0), coalesce(q.points, 0)
        FROM posted p FULL JOIN pending q ON q.line = p.line
        WHERE coalesce(p.points, 0) <> coalesce(q.points, 0)
        """,
    )
    return [
        Problem("hold_accounts", f"line {r[0]}: hold account {r[1]}, pending holds {r[2]}")
        for r in rows
    ]


async def check_hold_timers(session: AsyncSession) -> list[Problem]:
    """Every pending hold has its timer, due when the hold is (``hub holds expire`` finds pending
    holds only through their timers, migration 0029)."""
    rows = await _rows(
        session,
        "SELECT h.id, h.expires_at, t.expires_at FROM redemption_hold h "
        "LEFT JOIN redemption_hold_timer t ON t.hold_id = h.id "
        "WHERE h.state = 'pending' AND t.expires_at IS DISTINCT FROM h.expires_at",
    )
    return [
        Problem("hold_timers", f"pending hold {r[0]} expires {r[1]}, its timer: {r[2]}")
        for r in rows
    ]


async def check_settlement_ties_out(session: AsyncSession) -> list[Problem]:
    """Clearing accounts sum to zero and each equals its line's net settlement entries."""
    rows = await _rows(
        session,
        """
        WITH clearing AS (
          SELECT a.line, coalesce(sum(CASE WHEN t.credit_account = a.id THEN t.amount
                                      ELSE -t.amount END), 0) AS points
          FROM loyalty_account a LEFT JOIN loyalty_transfer t
            ON a.id IN (t.debit_account, t.credit_account)
          WHERE a.kind = 'redemption_clearing' GROUP BY a.line),
        entries AS (
          SELECT line, sum(points) AS points FROM (
            SELECT redeeming_line AS line, points FROM settlement_entry
            UNION ALL SELECT issuer_line, -points FROM settlement_entry) x
          GROUP BY line),
        lines AS (
          SELECT coalesce(c.line, e.line) AS line, coalesce(c.points, 0) AS clearing,
                 coalesce(e.points, 0) AS entries
          FROM clearing c FULL JOIN entries e ON e.line = c.line)
        SELECT line, clearing, entries FROM lines WHERE clearing <> entries
        UNION ALL
        SELECT '(all lines)', sum(clearing), 0 FROM lines HAVING sum(clearing) <> 0
        """,
    )
    return [
        Problem("settlement_ties_out", f"{r[0]}: clearing {r[1]} points, entries {r[2]}")
        for r in rows
    ]


async def check_settlement_matches_holds(session: AsyncSession) -> list[Problem]:
    """Per hold and issuing line, net settled points equal captured minus refunded points."""
    rows = await _rows(
        session,
        """
        WITH lots AS (
          SELECT l.hold_id, l.issuer_line, sum(l.captured - l.refunded) AS points
          FROM redemption_hold_lot l JOIN redemption_hold h ON h.id = l.hold_id
          WHERE l.issuer_line <> h.line GROUP BY 1, 2),
        entries AS (
          SELECT hold_id, issuer_line, sum(points) AS points FROM settlement_entry GROUP BY 1, 2)
        SELECT coalesce(l.hold_id, e.hold_id), coalesce(l.issuer_line, e.issuer_line),
               coalesce(l.points, 0), coalesce(e.points, 0)
        FROM lots l FULL JOIN entries e ON e.hold_id = l.hold_id AND e.issuer_line = l.issuer_line
        WHERE coalesce(l.points, 0) <> coalesce(e.points, 0)
        """,
    )
    return [
        Problem(
            "settlement_matches_holds",
            f"hold {r[0]}, issuer {r[1]}: {r[2]} points spent net, {r[3]} settled",
        )
        for r in rows
    ]


async def check_hold_references(session: AsyncSession) -> list[Problem]:
    """Hold lots and settlement entries name an existing hold, and holds an existing member.

    No foreign keys back these (migration 0012: their per-row checks cost each redemption
    three lookups and row locks); the redemption functions write them from ids they have just
    inserted or locked, and holds and members are never deleted.
    """
    rows = await _rows(
        session,
        """
        SELECT 'hold lot', l.hold_id, 'hold' FROM redemption_hold_lot l
        WHERE NOT EXISTS (SELECT 1 FROM redemption_hold h WHERE h.id = l.hold_id)
        UNION ALL
        SELECT 'settlement entry ' || e.id, e.hold_id, 'hold' FROM settlement_entry e
        WHERE NOT EXISTS (SELECT 1 FROM redemption_hold h WHERE h.id = e.hold_id)
        UNION ALL
        SELECT 'hold ' || h.id, h.member_id, 'member' FROM redemption_hold h
        WHERE NOT EXISTS (SELECT 1 FROM member m WHERE m.id = h.member_id)
        """,
    )
    return [Problem("hold_references", f"{r[0]} names missing {r[2]} {r[1]}") for r in rows]


REDEMPTION_CHECKS: tuple[Check, ...] = (
    check_holds_resolved_once,
    check_holds_match_lots,
    check_hold_references,
    check_hold_accounts,
    check_hold_timers,
    check_settlement_ties_out,
    check_settlement_matches_holds,
)


async def run_redemption_checks(session: AsyncSession) -> dict[str, list[Problem]]:
    return {check.__name__: await check(session) for check in REDEMPTION_CHECKS}
