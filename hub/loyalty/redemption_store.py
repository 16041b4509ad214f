"""Rows and locks behind ``hub.loyalty.redemption``: holds, their lots, line accounts.

Lock order, the same for every redemption write (and the ledger's other writers): the member's
accounts (ascending id), then the hold row, then lots (ascending id). Two redemptions of one
member queue on the member's available account instead of each holding a row the other wants;
the expiry job takes members in ascending order. A lot re-attributed to another member while it
was held (an unmerge) makes a return lock that member's accounts after the lots: rare, and a
deadlock there is retried by ``redemption.run_redemption``.

Hold, capture, cancel and expiry follow this order inside their database functions (migrations
0008 and 0010); of the member's accounts they lock only ``member_available``, the balance they
move (every other writer of the member's balances or lots locks it too, so they still queue on
it), and a whole capture in time locks the hold alone, as it changes nothing of the member. Refunds
use the helpers here, and ``give_back`` calls the same database function the others use to
return points to their lots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hub.loyalty._sql import Tx
from hub.loyalty.ledger import AccountKind, MemberAccounts, TransferCode, line_accounts
from hub.loyalty.redemption_errors import HoldNotFound

PENDING = "pending"
CAPTURED = "captured"
CANCELLED = "cancelled"
EXPIRED = "expired"
REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class HoldScope:
    """Whose holds a caller may act on: ``None`` means any (agents, admins)."""

    member_id: int | None = None
    line: str | None = None


ANY = HoldScope()


@dataclass(slots=True)
class HoldLotRow:
    seq: int
    lot_id: int
    issuer_line: str
    points: int
    captured: int
    refunded: int


@dataclass(slots=True)
class HoldRow:
    id: int
    member_id: int
    line: str
    points: int
    order_ref: str
    state: str
    captured_points: int
    refunded_points: int
    fen_per_point: Decimal
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None
    lots: list[HoldLotRow]


async def lock_hold(conn: Any, hold_id: int, scope: HoldScope) -> tuple[HoldRow, MemberAccounts]:
    # The member's accounts first (found through the hold), then the hold row: see module doc.
    rows = await conn.fetch(
        "SELECT a.id, a.kind FROM loyalty_account a JOIN redemption_hold h "
        "ON h.member_id = a.member_id WHERE h.id = $1 ORDER BY a.id FOR UPDATE OF a",
        hold_id,
    )
    row = await conn.fetchrow(
        "SELECT h.*, (SELECT coalesce(json_agg(json_build_array(l.seq, l.lot_id, l.issuer_line, "
        "l.points, l.captured, l.refunded) ORDER BY l.seq), '[]') FROM redemption_hold_lot l "
        "WHERE l.hold_id = h.id) AS lots FROM redemption_hold h WHERE h.id = $1 FOR UPDATE",
        hold_id,
    )
    if row is None or not rows or not _in_scope(row, scope):
        raise HoldNotFound(hold_id)
    found = {r["kind"]: r["id"] for r in rows}
    accounts = MemberAccounts(
        available=found[AccountKind.MEMBER_AVAILABLE],
        pending=found[AccountKind.MEMBER_PENDING],
        debt=found[AccountKind.MEMBER_DEBT],
    )
    return _hold(row), accounts


def _in_scope(row: Any, scope: HoldScope) -> bool:
    if scope.member_id is not None and row["member_id"] != scope.member_id:
        return False
    return scope.line is None or row["line"] == scope.line


def _hold(row: Any) -> HoldRow:
    import json

    lots = row["lots"]
    items = json.loads(lots) if isinstance(lots, str) else lots
    return HoldRow(
        id=row["id"],
        member_id=row["member_id"],
        line=row["line"],
        points=row["points"],
        order_ref=row["order_ref"],
        state=row["state"],
        captured_points=row["captured_points"],
        refunded_points=row["refunded_points"],
        fen_per_point=row["fen_per_point"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        resolved_at=row["resolved_at"],
        lots=[HoldLotRow(*item) for item in items],
    )


async def accounts_for(
    conn: Any, session: Tx, wanted: Iterable[tuple[AccountKind, str]]
) -> dict[tuple[AccountKind, str], int]:
    """Line accounts by (kind, line): one read when they exist, created on first use."""
    keys = sorted(set(wanted))
    rows = await conn.fetch(
        "SELECT a.id, a.kind, a.line FROM loyalty_account a "
        "JOIN unnest($1::text[], $2::text[]) AS w(kind, line) "
        "ON a.kind = w.kind AND a.line = w.line WHERE a.member_id IS NULL",
        [str(k) for k, _ in keys],
        [line for _, line in keys],
    )
    found = {(AccountKind(r["kind"]), r["line"]): r["id"] for r in rows}
    for kind in sorted({k for k, _ in keys if (k, _) not in found}):
        missing = [line for k, line in keys if k == kind and (k, line) not in found]
        made = await line_accounts(session=session, kind=kind, lines=missing)
        found.update({(kind, str(line)): i for line, i in made.items()})
    return found


async def save_hold_lots(conn: Any, hold: HoldRow) -> None:
    await conn.execute(
        "UPDATE redemption_hold_lot l SET captured = v.captured, refunded = v.refunded "
        "FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS v(seq, captured, refunded) "
        "WHERE l.hold_id = $1 AND l.seq = v.seq",
        hold.id,
        [x.seq for x in hold.lots],
        [x.captured for x in hold.lots],
        [x.refunded for x in hold.lots],
    )


async def give_back(
    conn: Any,
    *,
    member_id: int,
    source: int,
    event: str,
    code: TransferCode,
    at: datetime,
    pieces: Sequence[tuple[int, str, int]],
) -> int:
    """Give ``(lot id, issuer, points)`` back to their lots from account ``source``; returns
    the points ``member_id`` (whose accounts the caller locked) got back.

    A lot still valid at ``at`` takes its points back and its owner's available balance grows;
    a lot that expired meanwhile (or no longer exists) sends them to its issuer's expiry
    account: the member never gets back points that would already have expired. One database
    function (``redemption_give_back``), shared with void and partial capture.
    """
    back = await conn.fetchval(
        "SELECT redemption_give_back($1, $2, $3, $4, $5, $6::bigint[], $7::text[], $8::bigint[])",
        member_id,
        source,
        event,
        str(code),
        at,
        [lot for lot, _, _ in pieces],
        [issuer for _, issuer, _ in pieces],
        [points for _, _, points in pieces],
    )
    return int(back)
