"""Resolving holds exactly once: capture (all or part), cancel, expiry by TTL.

See ``hub.loyalty.redemption`` for the postings and ``redemption_store`` for the lock order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.audit import Actor
from hub.core.clock import utcnow
from hub.loyalty import settlement
from hub.loyalty._sql import driver
from hub.loyalty.errors import LoyaltyError
from hub.loyalty.holdings import load_lots, save_lots
from hub.loyalty.ledger import AccountKind, MemberAccounts, Transfer, TransferCode, post_transfers
from hub.loyalty.model import Program
from hub.loyalty.redemption_errors import (
    AlreadyCancelled,
    AlreadyCaptured,
    HoldExpired,
    InvalidRedemption,
)
from hub.loyalty.redemption_keys import idempotent
from hub.loyalty.redemption_store import (
    ANY,
    CANCELLED,
    CAPTURED,
    EXPIRED,
    PENDING,
    REFUNDED,
    HoldRow,
    HoldScope,
    accounts_for,
    lock_hold,
    return_to_lots,
    save_hold_lots,
)
from hub.loyalty.redemption_views import (
    HoldLot,
    Redemption,
    value_fen,
)

EXPIRE_BATCH = 500


def _already(hold: HoldRow) -> LoyaltyError:
    if hold.state in (CAPTURED, REFUNDED):
        return AlreadyCaptured(hold.id)
    if hold.state == CANCELLED:
        return AlreadyCancelled(hold.id)
    return HoldExpired(hold.id)


async def capture(
    *,
    session: AsyncSession,
    program: Program,
    actor: Actor,
    hold_id: int,
    points: int | None = None,
    idempotency_key: str | None = None,
    scope: HoldScope = ANY,
    now: datetime | None = None,
) -> Redemption:
    """Spend all of a pending hold, or part of it (the rest goes back to its lots)."""
    at = now or utcnow()
    conn = await driver(session)

    async def run() -> Redemption | LoyaltyError:
        hold, accounts = await lock_hold(conn, hold_id, scope)
        if hold.state != PENDING:
            raise _already(hold)
        if hold.expires_at <= at:
            await _void(conn, session, hold, accounts, EXPIRED, at)
            return HoldExpired(hold.id)
        n = hold.points if points is None else points
        if not 0 < n <= hold.points:
            raise InvalidRedemption("points", f"must be from 1 to the {hold.points} held")
        left = n
        for item in hold.lots:  # FIFO: the lots that expire first are the ones spent
            item.captured = min(item.points, left)
            left -= item.captured
        by_issuer: dict[str, int] = {}
        for item in hold.lots:
            if item.captured:
                by_issuer[item.issuer_line] = by_issuer.get(item.issuer_line, 0) + item.captured
        wanted = [
            (AccountKind.REDEMPTION_HOLD, hold.line),
            (AccountKind.REDEMPTION_CLEARING, hold.line),
        ]
        wanted += [
            (k, a)
            for a in by_issuer
            for k in (AccountKind.REDEMPTION_CLEARING, AccountKind.ISSUANCE)
        ]
        acc = await accounts_for(conn, session, wanted)
        event = f"redeem:{hold.id}:capture"
        transfers = [
            Transfer(
                debit=acc[(AccountKind.REDEMPTION_HOLD, hold.line)],
                credit=acc[(AccountKind.REDEMPTION_CLEARING, hold.line)],
                amount=n,
                code=TransferCode.CAPTURE,
                key=f"{event}/spent",
                effective_at=at,
            )
        ] + [
            Transfer(
                debit=acc[(AccountKind.REDEMPTION_CLEARING, issuer)],
                credit=acc[(AccountKind.ISSUANCE, issuer)],
                amount=pts,
                code=TransferCode.REDEEM,
                key=f"{event}/issuer:{issuer}",
                effective_at=at,
            )
            for issuer, pts in sorted(by_issuer.items())
        ]
        if n < hold.points:
            await give_back(
                conn,
                session,
                hold,
                acc[(AccountKind.REDEMPTION_HOLD, hold.line)],
                accounts,
                f"redeem:{hold.id}:void",
                at,
                [(x.lot_id, x.issuer_line, x.points - x.captured) for x in hold.lots],
            )
        await post_transfers(session=session, transfers=transfers)
        await conn.execute(
            "UPDATE redemption_hold SET state = 'captured', captured_points = $2, "
            "resolved_at = $3 WHERE id = $1",
            hold.id,
            n,
            at,
        )
        await save_hold_lots(conn, hold)
        await settlement.record_entries(
            conn,
            program=program,
            hold_id=hold.id,
            redeeming_line=hold.line,
            event=event,
            drafts=[
                settlement.draft(
                    issuer=issuer,
                    before=0,
                    after=pts,
                    price=settlement.price_per_point(
                        program, issuer=issuer, redeeming_rate=hold.fen_per_point
                    ),
                )
                for issuer, pts in by_issuer.items()
            ],
            at=at,
        )
        hold.state, hold.captured_points, hold.resolved_at = CAPTURED, n, at
        return view_of(hold, await available_of(conn, accounts.available))

    return await _once(conn, actor, idempotency_key, "capture", hold_id, points, run)


async def cancel(
    *,
    session: AsyncSession,
    program: Program,
    actor: Actor,
    hold_id: int,
    idempotency_key: str | None = None,
    scope: HoldScope = ANY,
    now: datetime | None = None,
) -> Redemption:
    """Void a pending hold: every point goes back to the lot it came from."""
    at = now or utcnow()
    conn = await driver(session)

    async def run() -> Redemption | LoyaltyError:
        hold, accounts = await lock_hold(conn, hold_id, scope)
        if hold.state != PENDING:
            raise _already(hold)
        state = EXPIRED if hold.expires_at <= at else CANCELLED
        await _void(conn, session, hold, accounts, state, at)
        if state == EXPIRED:
            return HoldExpired(hold.id)
        return view_of(hold, await available_of(conn, accounts.available))

    return await _once(conn, actor, idempotency_key, "cancel", hold_id, None, run)


async def _once(
    conn: Any,
    actor: Actor,
    key: str | None,
    operation: str,
    hold_id: int,
    points: int | None,
    run: Callable[[], Awaitable[Redemption | LoyaltyError]],
) -> Redemption:
    return await idempotent(
        conn,
        actor=actor,
        key=key,
        operation=operation,
        request={"redemption_id": hold_id, "points": points},
        run=run,
        encode=Redemption.to_json,
        decode=Redemption.from_json,
    )


async def _void(
    conn: Any,
    session: AsyncSession,
    hold: HoldRow,
    accounts: MemberAccounts,
    state: str,
    at: datetime,
) -> int:
    held = (await accounts_for(conn, session, [(AccountKind.REDEMPTION_HOLD, hold.line)]))[
        (AccountKind.REDEMPTION_HOLD, hold.line)
    ]
    back = await give_back(
        conn,
        session,
        hold,
        held,
        accounts,
        f"redeem:{hold.id}:void",
        at,
        [(x.lot_id, x.issuer_line, x.points) for x in hold.lots],
    )
    await conn.execute(
        "UPDATE redemption_hold SET state = $2, resolved_at = $3 WHERE id = $1", hold.id, state, at
    )
    hold.state, hold.resolved_at = state, at
    return back


async def give_back(
    conn: Any,
    session: AsyncSession,
    hold: HoldRow,
    source: int,
    accounts: MemberAccounts,
    event: str,
    at: datetime,
    pieces: list[tuple[int, str, int]],
    code: TransferCode = TransferCode.VOID,
) -> int:
    """Return pieces to their lots from ``source``; the points the hold's member got back."""
    pieces = [p for p in pieces if p[2] > 0]
    lots = await load_lots(session=session, lot_ids=[lot for lot, _, _ in pieces], with_empty=True)
    locked = {hold.member_id: accounts}
    result = await return_to_lots(
        conn,
        session,
        pieces=pieces,
        lots=lots,
        source=source,
        code=code,
        event=event,
        at=at,
        locked=locked,
    )
    await save_lots(session=session, lots=lots.values())
    await post_transfers(session=session, transfers=result.transfers)
    return result.to_member.get(hold.member_id, 0)


async def available_of(conn: Any, account: int) -> int:
    return int(await conn.fetchval("SELECT balance FROM loyalty_account WHERE id = $1", account))


def view_of(hold: HoldRow, available: int) -> Redemption:
    return Redemption(
        id=hold.id,
        member_id=hold.member_id,
        line=hold.line,
        points=hold.points,
        order_ref=hold.order_ref,
        state=hold.state,
        captured_points=hold.captured_points,
        refunded_points=hold.refunded_points,
        amount_fen=value_fen(hold.captured_points or hold.points, hold.fen_per_point),
        created_at=hold.created_at,
        expires_at=hold.expires_at,
        resolved_at=hold.resolved_at,
        available=available,
        lots=tuple(
            HoldLot(x.lot_id, x.issuer_line, x.points, x.captured, x.refunded) for x in hold.lots
        ),
    )


@dataclass(frozen=True, slots=True)
class ExpiryRun:
    holds: int
    points: int


async def expire_holds(
    *, session: AsyncSession, program: Program, as_of: datetime, limit: int = EXPIRE_BATCH
) -> ExpiryRun:
    """Expire up to ``limit`` pending holds whose TTL passed by ``as_of`` (members in id order).

    Concurrent runs and captures are safe: each hold is re-checked under its lock, and one
    that a capture resolved first is skipped.
    """
    conn = await driver(session)
    due = await conn.fetch(
        "SELECT id FROM redemption_hold WHERE state = 'pending' AND expires_at <= $1 "
        "ORDER BY member_id, id LIMIT $2",
        as_of,
        min(limit, EXPIRE_BATCH),
    )
    holds = points = 0
    for row in due:
        hold, accounts = await lock_hold(conn, row["id"], ANY)
        if hold.state != PENDING or hold.expires_at > as_of:
            continue
        await _void(conn, session, hold, accounts, EXPIRED, as_of)
        holds += 1
        points += hold.points
    return ExpiryRun(holds=holds, points=points)
