"""Cross-business redemption, two-phase: quote → hold → capture / cancel / expire → refund.

Postings (every transfer keyed ``redeem:<hold>:<event>/<leg>``):

    hold      member available → redemption_hold[B]        points leave ``available`` at once
    capture   redemption_hold[B] → redemption_clearing[B]  B took the points as payment
              redemption_clearing[A] → issuance[A]         per issuing line A: its points used up
    void      redemption_hold[B] → member available        cancel, expiry, uncaptured remainder
    refund    redemption_clearing[B] → member available    the points go back to their lots
              issuance[A] → redemption_clearing[A]

Lots: a hold takes points from the member's lots FIFO by expiry across issuers and remembers
how much from each (``redemption_hold_lot``); whatever comes back goes to the very same lots,
or to the issuer's expiry account when the lot expired in the meantime. So available = Σ lots
still holds, and every hold's points are accounted for in exactly one place.

Exactly once: the hold row is locked and its state checked before anything moves; a second
resolve is a typed error (``AlreadyCaptured``, ``AlreadyCancelled``, ``HoldExpired``) and a
trigger refuses any illegal state change. Capture or cancel of a pending hold past its TTL
expires it (the points come back) and reports ``HoldExpired``.

Concurrency: rows are locked in one order (``redemption_store``); the member's available
balance is checked under its row lock and a CHECK constraint backs it up, so N concurrent holds
on one balance succeed exactly as far as it goes. ``run_redemption`` runs a service in its own
unit of work, retries deadlock and serialization failures a bounded number of times, and
commits typed errors so the idempotency key remembers them (``redemption_keys``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.audit import Actor, record_audit
from hub.core.clock import utcnow
from hub.core.db import Database
from hub.core.errors import IdempotencyConflict
from hub.core.pii import KeyRing
from hub.loyalty import settlement
from hub.loyalty._sql import driver
from hub.loyalty.errors import InsufficientPoints, LoyaltyError
from hub.loyalty.holdings import burn, load_lots, save_lots, spendable
from hub.loyalty.ledger import AccountKind, MemberAccounts, Transfer, TransferCode, post_transfers
from hub.loyalty.lots import Lot, allocate, usable
from hub.loyalty.model import Program
from hub.loyalty.redemption_codes import code_hash, use_redemption_code
from hub.loyalty.redemption_errors import (
    AlreadyCancelled,
    AlreadyCaptured,
    HoldExpired,
    InvalidRedemption,
    InvalidRedemptionCode,
    NotCaptured,
    NotRedeemableHere,
    RefundExceedsCaptured,
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
    lock_member,
    return_to_lots,
    save_hold_lots,
)
from hub.loyalty.redemption_views import HoldLot, LotUse, Quote, Redemption

__all__ = [
    "HoldLot",
    "HoldScope",
    "LotUse",
    "Quote",
    "Redemption",
    "cancel",
    "capture",
    "expire_holds",
    "place_hold",
    "quote_redemption",
    "refund_redemption",
    "run_redemption",
]

DEFAULT_HOLD_TTL_S = 900
MIN_HOLD_TTL_S = 10
MAX_HOLD_TTL_S = 86_400
MAX_POINTS = 10_000_000
MAX_ORDER_REF = 128
MAX_REASON = 500
MAX_ATTEMPTS = 6
EXPIRE_BATCH = 500
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
R = TypeVar("R")


def rate_of(program: Program, line: str) -> Decimal:
    rate = program.line(line).redemption_fen_per_point
    if rate is None or rate <= 0:
        raise NotRedeemableHere(line)
    return rate


def value_fen(points: int, rate: Decimal) -> int:
    """What ``points`` pay for at a line: rounded down, a member never gets more than they spend."""
    return int((Decimal(points) * rate).to_integral_value(rounding=ROUND_FLOOR))


def points_for_fen(amount_fen: int, rate: Decimal) -> int:
    """Points needed to pay ``amount_fen``: rounded up, so they always cover the amount."""
    return int((Decimal(amount_fen) / rate).to_integral_value(rounding=ROUND_CEILING))


async def quote_redemption(
    *,
    session: AsyncSession,
    program: Program,
    member_id: int,
    line: str,
    points: int | None = None,
    amount_fen: int | None = None,
    now: datetime | None = None,
) -> Quote:
    """Points for a value (or the value of points) at ``line``, and the lots a hold would use."""
    at = now or utcnow()
    rate = rate_of(program, line)
    if (points is None) == (amount_fen is None):
        raise InvalidRedemption("points", "give either points or amountFen")
    if amount_fen is not None:
        if not 0 < amount_fen <= value_fen(MAX_POINTS, rate):
            raise InvalidRedemption("amount_fen", "must be positive and within the points cap")
        points = points_for_fen(amount_fen, rate)
    assert points is not None
    _check_points(points)
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT id, issuer_line, earned_at, expires_at, remaining FROM loyalty_lot "
        "WHERE member_id = $1 AND state = 'available' AND remaining > 0",
        member_id,
    )
    lots = usable(
        (
            Lot(r["id"], r["issuer_line"], r["earned_at"], r["expires_at"], r["remaining"])
            for r in rows
        ),
        at=at,
    )
    have = sum(lot.remaining for lot in lots)
    take = min(points, have)
    expires = {lot.id: lot.expires_at for lot in lots}
    uses = allocate(lots, take, at=at) if take else []
    return Quote(
        line=line,
        points=points,
        amount_fen=value_fen(points, rate),
        fen_per_point=rate,
        available=have,
        enough=have >= points,
        lots=tuple(LotUse(int(b.lot_id), b.issuer_line, b.points, expires[b.lot_id]) for b in uses),
    )


def _check_points(points: int) -> None:
    if not 0 < points <= MAX_POINTS:
        raise InvalidRedemption("points", f"must be from 1 to {MAX_POINTS}")


async def place_hold(
    *,
    session: AsyncSession,
    program: Program,
    actor: Actor,
    line: str,
    points: int,
    order_ref: str,
    idempotency_key: str,
    member_id: int | None = None,
    redemption_code: str | None = None,
    keyring: KeyRing | None = None,
    hold_ttl_s: int | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> Redemption:
    """Reserve ``points`` of a member (named, or by its one-time code) for an order at ``line``."""
    at = now or utcnow()
    ttl = DEFAULT_HOLD_TTL_S if hold_ttl_s is None else hold_ttl_s
    rate = rate_of(program, line)
    _check_points(points)
    if not MIN_HOLD_TTL_S <= ttl <= MAX_HOLD_TTL_S:
        raise InvalidRedemption("hold_ttl_s", f"must be from {MIN_HOLD_TTL_S} to {MAX_HOLD_TTL_S}")
    if not order_ref.strip() or len(order_ref) > MAX_ORDER_REF:
        raise InvalidRedemption("order_ref", f"must be 1 to {MAX_ORDER_REF} characters")
    if reason is not None and not (reason.strip() and len(reason) <= MAX_REASON):
        raise InvalidRedemption("reason", f"must be 1 to {MAX_REASON} characters")
    if redemption_code is not None and keyring is None:
        raise ValueError("a redemption code needs the keyring to look it up")
    conn = await driver(session)
    request = {
        "line": line,
        "points": points,
        "order_ref": order_ref,
        "hold_ttl_s": ttl,
        "member_id": member_id,
        "redemption_code": code_hash(keyring, redemption_code)
        if redemption_code and keyring
        else None,
        "reason": reason,
    }

    async def run() -> Redemption:
        member = member_id
        if redemption_code is not None and keyring is not None:
            owner = await use_redemption_code(
                conn, keyring=keyring, code=redemption_code, used_by=actor.id, at=at
            )
            if member is not None and member != owner:
                raise InvalidRedemptionCode("belongs to another member")
            member = owner
        if member is None:
            raise InvalidRedemption("member_id", "name the member or give its redemption code")
        hold = await _hold(
            conn,
            session,
            program=program,
            actor=actor,
            member_id=member,
            line=line,
            rate=rate,
            points=points,
            order_ref=order_ref,
            expires_at=at + timedelta(seconds=ttl),
            reason=reason,
            at=at,
        )
        if reason is not None:
            await record_audit(
                session=session,
                actor=actor,
                action="loyalty.redeem_points",
                subject=f"member:{member}",
                reason=reason.strip(),
                details={"hold_id": hold.id, "points": points, "line": line},
            )
        return hold

    return await idempotent(
        conn,
        actor=actor,
        key=idempotency_key,
        operation="redeem_points",
        request=request,
        run=run,
        encode=Redemption.to_json,
        decode=Redemption.from_json,
    )


async def _hold(
    conn: Any,
    session: AsyncSession,
    *,
    program: Program,
    actor: Actor,
    member_id: int,
    line: str,
    rate: Decimal,
    points: int,
    order_ref: str,
    expires_at: datetime,
    reason: str | None,
    at: datetime,
) -> Redemption:
    held = (await accounts_for(conn, session, [(AccountKind.REDEMPTION_HOLD, line)]))[
        (AccountKind.REDEMPTION_HOLD, line)
    ]
    accounts = await lock_member(conn, member_id)
    if accounts is None:
        raise InsufficientPoints(requested=points, available=0)
    lots = list((await load_lots(session=session, member_ids=[member_id])).values())
    have = spendable(lots, at=at)
    if have < points:
        raise InsufficientPoints(requested=points, available=have)
    taken = burn(lots, points, at=at)
    row = await conn.fetchrow(
        "INSERT INTO redemption_hold (member_id, line, points, order_ref, state, fen_per_point, "
        "actor, actor_role, reason, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10) RETURNING id",
        member_id,
        line,
        points,
        order_ref,
        rate,
        actor.id,
        actor.role,
        reason,
        at,
        expires_at,
    )
    hold_id = int(row["id"])
    await conn.execute(
        "INSERT INTO redemption_hold_lot (hold_id, seq, lot_id, issuer_line, points) "
        "SELECT $1, s - 1, v.lot, v.issuer, v.points "
        "FROM unnest($2::bigint[], $3::text[], $4::bigint[]) WITH ORDINALITY AS v(lot, issuer, "
        "points, s)",
        hold_id,
        [lot.id for lot, _ in taken],
        [lot.issuer_line for lot, _ in taken],
        [n for _, n in taken],
    )
    await save_lots(session=session, lots=lots)
    await post_transfers(
        session=session,
        transfers=[
            Transfer(
                debit=accounts.available,
                credit=held,
                amount=points,
                code=TransferCode.HOLD,
                key=f"redeem:{hold_id}:hold/available",
                effective_at=at,
                agent=actor.id if reason else None,
                reason=reason,
            )
        ],
    )
    return Redemption(
        id=hold_id,
        member_id=member_id,
        line=line,
        points=points,
        order_ref=order_ref,
        state=PENDING,
        captured_points=0,
        refunded_points=0,
        amount_fen=value_fen(points, rate),
        created_at=at,
        expires_at=expires_at,
        resolved_at=None,
        available=have - points,
        lots=tuple(HoldLot(lot.id, lot.issuer_line, n, 0, 0) for lot, n in taken),
    )


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
        back = 0
        if n < hold.points:
            back = await _give_back(
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
        return _view(hold, await _available(conn, accounts.available), back)

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
        return _view(hold, await _available(conn, accounts.available), 0)

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
    back = await _give_back(
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


async def _give_back(
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


async def _available(conn: Any, account: int) -> int:
    return int(await conn.fetchval("SELECT balance FROM loyalty_account WHERE id = $1", account))


def _view(hold: HoldRow, available: int, _back: int) -> Redemption:
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


async def refund_redemption(
    *,
    session: AsyncSession,
    program: Program,
    actor: Actor,
    hold_id: int,
    idempotency_key: str,
    points: int | None = None,
    scope: HoldScope = ANY,
    now: datetime | None = None,
) -> Redemption:
    """Give captured points back (all, or ``points`` of them) to the lots they came from.

    The last lots spent come back first (the reverse of the FIFO burn). Lots that expired since
    send their share to expiry; the settlement entries reverse at the capture's price.
    """
    at = now or utcnow()
    conn = await driver(session)

    async def run() -> Redemption:
        hold, accounts = await lock_hold(conn, hold_id, scope)
        if hold.state not in (CAPTURED, REFUNDED):
            raise NotCaptured(hold.id, hold.state)
        if points is not None and not 0 < points <= MAX_POINTS:
            raise InvalidRedemption("points", f"must be from 1 to {MAX_POINTS}")
        open_points = hold.captured_points - hold.refunded_points
        n = open_points if points is None else points
        if n <= 0 or n > open_points:
            raise RefundExceedsCaptured(
                hold_id=hold.id,
                captured=hold.captured_points,
                refunded=hold.refunded_points,
                requested=max(n, 1) if points is None else points,
            )
        pieces: list[tuple[int, str, int]] = []
        by_issuer: dict[str, tuple[int, int]] = {}  # issuer → (net before, refunded now)
        left = n
        for item in reversed(hold.lots):
            take = min(item.captured - item.refunded, left)
            before, now_back = by_issuer.get(item.issuer_line, (0, 0))
            by_issuer[item.issuer_line] = (before + item.captured - item.refunded, now_back + take)
            if take:
                item.refunded += take
                left -= take
                pieces.append((item.lot_id, item.issuer_line, take))
        event = f"redeem:{hold.id}:refund{hold.refunded_points}"
        wanted = [(AccountKind.REDEMPTION_CLEARING, hold.line)]
        wanted += [
            (k, a)
            for a in by_issuer
            for k in (AccountKind.REDEMPTION_CLEARING, AccountKind.ISSUANCE)
        ]
        acc = await accounts_for(conn, session, wanted)
        await _give_back(
            conn,
            session,
            hold,
            acc[(AccountKind.REDEMPTION_CLEARING, hold.line)],
            accounts,
            event,
            at,
            pieces,
            code=TransferCode.REFUND_REDEMPTION,
        )
        await post_transfers(
            session=session,
            transfers=[
                Transfer(
                    debit=acc[(AccountKind.ISSUANCE, issuer)],
                    credit=acc[(AccountKind.REDEMPTION_CLEARING, issuer)],
                    amount=back,
                    code=TransferCode.REFUND_REDEMPTION,
                    key=f"{event}/issuer:{issuer}",
                    effective_at=at,
                )
                for issuer, (_, back) in sorted(by_issuer.items())
                if back
            ],
        )
        hold.refunded_points += n
        hold.state = REFUNDED if hold.refunded_points == hold.captured_points else CAPTURED
        await conn.execute(
            "UPDATE redemption_hold SET state = $2, refunded_points = $3 WHERE id = $1",
            hold.id,
            hold.state,
            hold.refunded_points,
        )
        await save_hold_lots(conn, hold)
        prices = await _capture_prices(conn, hold.id)
        await settlement.record_entries(
            conn,
            program=program,
            hold_id=hold.id,
            redeeming_line=hold.line,
            event=event,
            drafts=[
                settlement.draft(
                    issuer=issuer,
                    before=before,
                    after=before - back,
                    price=prices.get(issuer, Decimal(0)),
                )
                for issuer, (before, back) in by_issuer.items()
                if back
            ],
            at=at,
        )
        return _view(hold, await _available(conn, accounts.available), 0)

    return await idempotent(
        conn,
        actor=actor,
        key=idempotency_key,
        operation="refund",
        request={"redemption_id": hold_id, "points": points},
        run=run,
        encode=Redemption.to_json,
        decode=Redemption.from_json,
    )


async def _capture_prices(conn: Any, hold_id: int) -> dict[str, Decimal]:
    rows = await conn.fetch(
        "SELECT issuer_line, fen_per_point FROM settlement_entry WHERE hold_id = $1 "
        "AND kind = 'capture'",
        hold_id,
    )
    return {r["issuer_line"]: r["fen_per_point"] for r in rows}


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


def _retryable(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        for candidate in (seen, getattr(seen, "orig", None)):
            if getattr(candidate, "sqlstate", None) in _RETRY_SQLSTATES:
                return True
        seen = seen.__cause__
    return False


async def run_redemption(
    *,
    db: Database,
    work: Callable[[AsyncSession], Awaitable[R]],
    attempts: int = MAX_ATTEMPTS,
) -> R:
    """Run ``work`` in its own unit of work; retry deadlocks and serialization failures.

    A typed loyalty error (or an idempotency conflict) still commits — the idempotency key must
    keep the error it produced — and is raised after the commit. No deadlock reaches a client
    unless it repeats ``attempts`` times.
    """
    for attempt in range(1, attempts + 1):
        failure: LoyaltyError | IdempotencyConflict | None = None
        try:
            async with db.unit_of_work() as session:
                try:
                    return await work(session)
                except (LoyaltyError, IdempotencyConflict) as exc:
                    failure = exc
        except Exception as exc:
            if attempt < attempts and _retryable(exc):
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311
                continue
            raise
        raise failure
    raise AssertionError("unreachable")  # pragma: no cover
