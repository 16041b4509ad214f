"""Refunds of captured redemptions: points back to the lots they came from, settlement reversed.

See ``hub.loyalty.redemption`` for the postings; rounding of the reversed fen is declared in
``hub.loyalty.settlement``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from hub.core.audit import Actor
from hub.core.clock import utcnow
from hub.loyalty import settlement
from hub.loyalty._sql import Tx, driver
from hub.loyalty.ledger import AccountKind, Transfer, TransferCode, post_transfers
from hub.loyalty.model import Program
from hub.loyalty.redemption_errors import (
    InvalidRedemption,
    NotCaptured,
    RefundExceedsCaptured,
)
from hub.loyalty.redemption_keys import idempotent
from hub.loyalty.redemption_resolve import available_of, view_of
from hub.loyalty.redemption_store import (
    ANY,
    CAPTURED,
    REFUNDED,
    HoldScope,
    accounts_for,
    give_back,
    lock_hold,
    save_hold_lots,
)
from hub.loyalty.redemption_views import (
    MAX_POINTS,
    Redemption,
)


async def refund_redemption(
    *,
    session: Tx,
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
        await give_back(
            conn,
            member_id=hold.member_id,
            source=acc[(AccountKind.REDEMPTION_CLEARING, hold.line)],
            event=event,
            code=TransferCode.REFUND_REDEMPTION,
            at=at,
            pieces=pieces,
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
        return view_of(hold, await available_of(conn, accounts.available))

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
