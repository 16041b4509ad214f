"""Settlement between business lines: points issued by line A and spent at line B mean A owes B.

Every capture that consumes lots issued by A at B (A ≠ B) writes a ``settlement_entry`` A → B
with the points and A's price (``[settlement_fen_per_point]`` of the program, read at capture
time and kept on the entry); a refund of the redemption writes the negative entry at the same
price. Points spent at the line that issued them owe nobody. Points an agent added by hand are
issued by the group (``_group``), which pays the redeeming line its own redemption rate.

Rounding (declared): money is whole fen, rounded half up, once per redemption and issuer on the
running net points — an entry's fen is ``R(net after) − R(net before)`` with ``R(n) =
round_half_up(n × price)`` — so partial refunds never give back more than the capture cost and
a full refund gives back exactly what it cost.

Periods are local calendar months of the program's zone (``2026-10``). An entry lands in the
first period at or after its effective month that is not closed (at most 120 months on), so a
refund arriving after a close lands in the next open period. ``close_period`` takes an
exclusive advisory lock (``settlement_lock_key()``) that every entry insert takes shared: no
entry slips into a period while it closes. A trigger rejects entries into closed periods and
any change of a closed period (the backstop). Entries are written in the database, in two
places: ``settlement_record`` (0008), called by partial captures (inside ``redemption_capture``)
and by refunds (``record_entries`` here), and a whole capture's postings statement
(``redemption_capture_all``, 0025). Both take the lock and the period rule from
``settlement_period_for`` (0025) and round as ``draft`` here (half up on points × price,
before = 0).

Clearing accounts (``redemption_clearing`` per line) tie out: a capture credits the redeeming
line's clearing and debits the issuer's (which credits its issuance: the points are used up),
so each line's clearing balance is its net settlement position in points and all of them sum
to zero. ``settle`` checks, for the period's events, that each line's clearing postings equal
its net entries.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.loyalty._sql import driver
from hub.loyalty.ledger import GROUP_LINE
from hub.loyalty.model import Program
from hub.loyalty.periods import add_months, local_date, midnight
from hub.loyalty.redemption_errors import InvalidRedemption

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class EntryDraft:
    issuer_line: str
    points: int  # signed: + capture, − refund
    amount_fen: int
    fen_per_point: Decimal


def period_of(at: datetime, program: Program) -> str:
    day = local_date(at, program.timezone)
    return f"{day.year:04d}-{day.month:02d}"


def parse_period(period: str) -> date:
    match = _PERIOD.match(period.strip())
    if not match:
        raise InvalidRedemption("period", "must be a month like 2026-10")
    return date(int(match[1]), int(match[2]), 1)


def price_per_point(program: Program, *, issuer: str, redeeming_rate: Decimal) -> Decimal:
    if issuer == GROUP_LINE:
        return redeeming_rate
    return program.settlement_fen_per_point.get(issuer, Decimal(0))


def running_fen(points: int, price: Decimal) -> int:
    return int((Decimal(points) * price).to_integral_value(rounding=ROUND_HALF_UP))


def draft(*, issuer: str, before: int, after: int, price: Decimal) -> EntryDraft:
    """The entry moving (hold, issuer)'s net captured points from ``before`` to ``after``."""
    return EntryDraft(
        issuer_line=issuer,
        points=after - before,
        amount_fen=running_fen(after, price) - running_fen(before, price),
        fen_per_point=price,
    )


async def record_entries(
    conn: Any,
    *,
    program: Program,
    hold_id: int,
    redeeming_line: str,
    event: str,
    drafts: Iterable[EntryDraft],
    at: datetime,
) -> None:
    rows = [d for d in drafts if d.issuer_line != redeeming_line and d.points]
    if not rows:
        return
    await conn.execute(
        "SELECT settlement_record($1, $2, $3, $4, $5, $6::text[], $7::bigint[], $8::bigint[], "
        "$9::numeric[])",
        hold_id,
        redeeming_line,
        event,
        at,
        parse_period(period_of(at, program)),
        [d.issuer_line for d in rows],
        [d.points for d in rows],
        [d.amount_fen for d in rows],
        [d.fen_per_point for d in rows],
    )


@dataclass(frozen=True, slots=True)
class PairTotal:
    issuer_line: str
    redeeming_line: str
    points: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class NetObligation:
    payer_line: str
    payee_line: str
    points: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class LinePosition:
    line: str
    net_points: int  # received − owed: + means the line is owed
    net_fen: int
    clearing_points: int  # the line's clearing postings for this period's events

    @property
    def ties_out(self) -> bool:
        return self.net_points == self.clearing_points


@dataclass(frozen=True, slots=True)
class SettlementReport:
    period: str
    state: str  # open | closed
    pairs: tuple[PairTotal, ...]
    netted: tuple[NetObligation, ...]
    lines: tuple[LinePosition, ...] = field(default=())

    @property
    def clearing_sum(self) -> int:
        return sum(p.clearing_points for p in self.lines)

    @property
    def ties_out(self) -> bool:
        return self.clearing_sum == 0 and all(p.ties_out for p in self.lines)


async def settle(*, session: AsyncSession, period: str) -> SettlementReport:
    """The period's gross obligations per pair of lines, netted, and tied out to clearing."""
    month = parse_period(period)
    key = f"{month.year:04d}-{month.month:02d}"
    conn = await driver(session)
    state = await conn.fetchval("SELECT state FROM settlement_period WHERE period = $1", key)
    gross = await conn.fetch(
        "SELECT issuer_line, redeeming_line, sum(points) AS points, sum(amount_fen) AS fen "
        "FROM settlement_entry WHERE period = $1 GROUP BY 1, 2 ORDER BY 1, 2",
        key,
    )
    clearing = await conn.fetch(
        """
        SELECT a.line, sum(CASE WHEN t.credit_account = a.id THEN t.amount ELSE -t.amount END)
          AS points
        FROM loyalty_transfer t
        JOIN loyalty_account a ON a.kind = 'redemption_clearing'
          AND a.id IN (t.debit_account, t.credit_account)
        WHERE t.idempotency_key LIKE 'redeem:%'
          AND split_part(t.idempotency_key, '/', 1) IN
            (SELECT DISTINCT event FROM settlement_entry WHERE period = $1)
        GROUP BY a.line
        """,
        key,
    )
    pairs = tuple(
        PairTotal(r["issuer_line"], r["redeeming_line"], int(r["points"]), int(r["fen"]))
        for r in gross
    )
    return SettlementReport(
        period=key,
        state=state or "open",
        pairs=pairs,
        netted=_net(pairs),
        lines=_positions(pairs, {r["line"]: int(r["points"]) for r in clearing}),
    )


def _net(pairs: Iterable[PairTotal]) -> tuple[NetObligation, ...]:
    owed: dict[tuple[str, str], tuple[int, int]] = {}
    for p in pairs:
        a, b = sorted((p.issuer_line, p.redeeming_line))
        sign = 1 if (a, b) == (p.issuer_line, p.redeeming_line) else -1
        points, fen = owed.get((a, b), (0, 0))
        owed[(a, b)] = (points + sign * p.points, fen + sign * p.amount_fen)
    result: list[NetObligation] = []
    for (a, b), (points, fen) in sorted(owed.items()):
        if fen > 0 or (fen == 0 and points > 0):
            result.append(NetObligation(a, b, points, fen))
        elif fen < 0 or points < 0:
            result.append(NetObligation(b, a, -points, -fen))
    return tuple(result)


def _positions(pairs: Iterable[PairTotal], clearing: dict[str, int]) -> tuple[LinePosition, ...]:
    points: dict[str, int] = {}
    fen: dict[str, int] = {}
    for p in pairs:
        points[p.redeeming_line] = points.get(p.redeeming_line, 0) + p.points
        points[p.issuer_line] = points.get(p.issuer_line, 0) - p.points
        fen[p.redeeming_line] = fen.get(p.redeeming_line, 0) + p.amount_fen
        fen[p.issuer_line] = fen.get(p.issuer_line, 0) - p.amount_fen
    lines = sorted(set(points) | set(clearing))
    return tuple(
        LinePosition(line, points.get(line, 0), fen.get(line, 0), clearing.get(line, 0))
        for line in lines
    )


async def close_period(
    *, session: AsyncSession, program: Program, period: str, actor: str, now: datetime
) -> bool:
    """Close a month that has ended; ``False`` if it was already closed. Never reopens."""
    month = parse_period(period)
    key = f"{month.year:04d}-{month.month:02d}"
    if now < midnight(add_months(month, 1), program.timezone):
        raise InvalidRedemption("period", f"{key} has not ended yet")
    conn = await driver(session)
    await conn.execute("SELECT pg_advisory_xact_lock(settlement_lock_key())")
    closed = await conn.fetchval(
        "INSERT INTO settlement_period (period, state, closed_at, closed_by) "
        "VALUES ($1, 'closed', $2, $3) ON CONFLICT (period) DO NOTHING RETURNING period",
        key,
        now,
        actor,
    )
    return closed is not None


def export_csv(report: SettlementReport) -> str:
    """Finance's file: gross obligations per pair, then the netted ones (UTF-8, header row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kind", "period", "from_line", "to_line", "points", "amount_fen"])
    for p in report.pairs:
        writer.writerow(
            ["gross", report.period, p.issuer_line, p.redeeming_line, p.points, p.amount_fen]
        )
    for n in report.netted:
        writer.writerow(["net", report.period, n.payer_line, n.payee_line, n.points, n.amount_fen])
    return out.getvalue()
