from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hub.core.errors import IdempotencyConflict
from hub.loyalty import jobs, settlement
from hub.loyalty.errors import InsufficientPoints
from hub.loyalty.redemption import capture, place_hold, refund_redemption, run_redemption
from hub.loyalty.redemption_errors import InvalidRedemption, NotCaptured, RefundExceedsCaptured
from tests.redemption.support import (
    POS,
    available,
    earn,
    lot_remaining,
    make_member,
    pos_hold,
    shanghai,
)

T0 = shanghai(2026, 10, 10, 12)


async def _spent(db, program, *, points, line="store", at=T0, key="k", **earned):
    async with db.unit_of_work() as s:
        member = await make_member(s)
        for i, (issuer, pts) in enumerate(earned.items()):
            await earn(s, program, member, pts, line=issuer, at=shanghai(2026, 10, 1 + i, 9))
    held = await pos_hold(db, program, member, points, key, at=at, line=line)
    await run_redemption(
        db=db,
        work=lambda s: capture(session=s, program=program, actor=POS, hold_id=held.id, now=at),
    )
    return member, held.id


def _refund(db, program, hold_id, key, points=None, at=T0):
    return run_redemption(
        db=db,
        work=lambda s: refund_redemption(
            session=s,
            program=program,
            actor=POS,
            hold_id=hold_id,
            idempotency_key=key,
            points=points,
            now=at,
        ),
    )


async def _close_october(db, program, *, at):
    async with db.unit_of_work() as s:
        return await settlement.close_period(
            session=s, program=program, period="2026-10", actor="admin", now=at
        )


async def test_refund_returns_points_to_the_lots_they_came_from(ledger, program):
    member, hold = await _spent(ledger, program, points=600, taobao=300, hotel=500)
    part = await _refund(ledger, program, hold, "r1", points=200)
    assert part.state == "captured"
    assert part.refunded_points == 200
    async with ledger.read() as s:
        # the last lot spent comes back first
        assert await lot_remaining(s, member) == {"taobao": 0, "hotel": 400}
    rest = await _refund(ledger, program, hold, "r2")
    assert rest.state == "refunded"
    assert rest.available == 800
    async with ledger.read() as s:
        assert await lot_remaining(s, member) == {"taobao": 300, "hotel": 500}
    with pytest.raises(RefundExceedsCaptured):
        await _refund(ledger, program, hold, "r3", points=1)


async def test_refund_to_an_expired_lot_goes_to_expiry_not_the_member(ledger, program):
    member, hold = await _spent(ledger, program, points=300, taobao=300)
    later = shanghai(2026, 12, 1, 9)  # the lot (earned 1 Oct, 30 days) has expired
    done = await _refund(ledger, program, hold, "r1", at=later)
    assert done.available == 0
    async with ledger.read() as s:
        assert await available(s, member) == 0
        breakage = await s.scalar(
            text("SELECT sum(amount) FROM loyalty_transfer WHERE code = 'hold_breakage'")
        )
    assert breakage == 300


async def test_refund_errors_are_typed(ledger, program):
    member, hold = await _spent(ledger, program, points=100, store=100)
    with pytest.raises(RefundExceedsCaptured):
        await _refund(ledger, program, hold, "r1", points=101)
    with pytest.raises(InvalidRedemption):
        await _refund(ledger, program, hold, "", points=1)
    with pytest.raises(InvalidRedemption):
        await _refund(ledger, program, hold, "r2", points=0)


async def test_refund_of_an_uncaptured_hold_is_not_captured(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await earn(s, program, member, 50, line="store", at=shanghai(2026, 10, 1))
    hold = await pos_hold(ledger, program, member, 10, "p", at=T0)
    with pytest.raises(NotCaptured):
        await _refund(ledger, program, hold.id, "r")


async def test_capture_creates_settlement_entries_at_the_issuers_price(ledger, program):
    # hotel points (1.2 fen) and taobao points (0.9 fen) spent at the store
    await _spent(ledger, program, points=705, taobao=305, hotel=500, store=100)
    async with ledger.read() as s:
        report = await settlement.settle(session=s, period="2026-10")
    gross = {(p.issuer_line, p.redeeming_line): (p.points, p.amount_fen) for p in report.pairs}
    assert gross == {("hotel", "store"): (400, 480), ("taobao", "store"): (305, 275)}
    assert report.ties_out
    assert report.clearing_sum == 0
    positions = {p.line: (p.net_points, p.net_fen, p.clearing_points) for p in report.lines}
    assert positions == {
        "store": (705, 755, 705),
        "hotel": (-400, -480, -400),
        "taobao": (-305, -275, -305),
    }


async def test_settlement_nets_opposite_obligations(ledger, program):
    await _spent(ledger, program, points=300, line="store", key="a", hotel=300)
    await _spent(ledger, program, points=200, line="hotel", key="b", store=200)
    async with ledger.read() as s:
        report = await settlement.settle(session=s, period="2026-10")
    # hotel owes store 360 fen, store owes hotel 200 fen: hotel pays 160 net
    assert [(n.payer_line, n.payee_line, n.amount_fen) for n in report.netted] == [
        ("hotel", "store", 160)
    ]
    assert report.ties_out
    csv_text = settlement.export_csv(report)
    assert csv_text.splitlines()[0] == "kind,period,from_line,to_line,points,amount_fen"
    assert "net,2026-10,hotel,store,100,160" in csv_text


async def test_partial_refunds_reverse_exactly_what_the_capture_cost(ledger, program):
    _, hold = await _spent(ledger, program, points=7, taobao=7)  # 7 × 0.9 = 6.3 → 6 fen
    for key in ("r1", "r2", "r3"):
        await _refund(ledger, program, hold, key, points=2 if key != "r3" else 3)
    async with ledger.read() as s:
        report = await settlement.settle(session=s, period="2026-10")
    assert [(p.points, p.amount_fen) for p in report.pairs] == [(0, 0)]


async def test_closed_period_is_immutable_and_late_refunds_land_in_the_next(ledger, program):
    _, hold = await _spent(ledger, program, points=100, hotel=100)
    async with ledger.unit_of_work() as s:
        with pytest.raises(InvalidRedemption):
            await settlement.close_period(
                session=s,
                program=program,
                period="2026-10",
                actor="admin",
                now=shanghai(2026, 10, 31, 23),
            )
    assert await _close_october(ledger, program, at=shanghai(2026, 11, 1, 1))
    assert not await _close_october(ledger, program, at=shanghai(2026, 11, 1, 2))
    # a refund effective in October, recorded after the close
    await _refund(ledger, program, hold, "late", points=40, at=shanghai(2026, 10, 31, 22))
    async with ledger.read() as s:
        october = await settlement.settle(session=s, period="2026-10")
        november = await settlement.settle(session=s, period="2026-11")
    assert october.state == "closed"
    assert [(p.points, p.amount_fen) for p in october.pairs] == [(100, 120)]
    assert [(p.points, p.amount_fen) for p in november.pairs] == [(-40, -48)]
    assert october.ties_out
    assert november.ties_out
    with pytest.raises(DBAPIError, match="closed"):
        async with ledger.unit_of_work() as s:
            await s.execute(text("UPDATE settlement_period SET closed_by = 'x'"))
    with pytest.raises(DBAPIError, match="closed"):
        async with ledger.unit_of_work() as s:
            await s.execute(
                text(
                    "INSERT INTO settlement_entry (period, issuer_line, redeeming_line, points, "
                    "amount_fen, fen_per_point, hold_id, kind, event, key, effective_at) VALUES "
                    f"('2026-10', 'hotel', 'store', 1, 1, 1, {hold}, 'capture', 'x', 'x', now())"
                )
            )


async def test_a_late_whole_capture_lands_in_the_next_open_period(ledger, program):
    """Migration 0025: a whole capture writes its entries itself, with the same period rule."""
    await _spent(ledger, program, points=100, hotel=100)
    assert await _close_october(ledger, program, at=shanghai(2026, 11, 1, 1))
    # placed and captured in October, recorded after the close
    late = shanghai(2026, 10, 31, 22)
    _, hold = await _spent(ledger, program, points=50, key="late", at=late, hotel=50)
    async with ledger.read() as s:
        october = await settlement.settle(session=s, period="2026-10")
        november = await settlement.settle(session=s, period="2026-11")
        periods = await s.scalars(
            text("SELECT period FROM settlement_entry WHERE hold_id = :h"), {"h": hold}
        )
        assert list(periods) == ["2026-11"]
    assert [(p.points, p.amount_fen) for p in october.pairs] == [(100, 120)]
    assert [(p.issuer_line, p.redeeming_line, p.points, p.amount_fen) for p in november.pairs] == [
        ("hotel", "store", 50, 60)
    ]
    assert october.ties_out
    assert november.ties_out


async def test_expired_lot_while_held_goes_to_expiry_on_cancel(ledger, program):
    from hub.loyalty.redemption import cancel

    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await earn(s, program, member, 100, line="store", at=shanghai(2026, 10, 1))
    hold = await pos_hold(
        ledger, program, member, 100, "h", at=shanghai(2026, 10, 31, 12), ttl=86_400
    )
    async with ledger.unit_of_work() as s:  # the expiry job finds nothing to expire: it is held
        result = await jobs.expire(session=s, program=program, as_of=shanghai(2026, 11, 1, 1))
    assert result.points == 0
    await run_redemption(
        db=ledger,
        work=lambda s: cancel(
            session=s, program=program, actor=POS, hold_id=hold.id, now=shanghai(2026, 11, 1, 2)
        ),
    )
    async with ledger.read() as s:
        assert await available(s, member) == 0


async def test_idempotent_replay_and_conflict(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await earn(s, program, member, 100, line="store", at=shanghai(2026, 10, 1))

    def hold(points, order="POS-1", key="same"):
        return run_redemption(
            db=ledger,
            work=lambda s: place_hold(
                session=s,
                program=program,
                actor=POS,
                member_id=member,
                line="store",
                points=points,
                order_ref=order,
                idempotency_key=key,
                now=T0,
            ),
        )

    first = await hold(60)
    again = await hold(60)
    assert again.id == first.id
    assert again.replayed
    assert not first.replayed
    with pytest.raises(IdempotencyConflict) as caught:
        await hold(60, order="POS-2")
    assert caught.value.field == "order_ref"
    with pytest.raises(IdempotencyConflict) as caught:
        await hold(61)
    assert caught.value.field == "points"
    # a first error is replayed too, even once the balance would allow it
    with pytest.raises(InsufficientPoints):
        await hold(50, key="err")
    from hub.loyalty.redemption import cancel

    await run_redemption(
        db=ledger,
        work=lambda s: cancel(session=s, program=program, actor=POS, hold_id=first.id, now=T0),
    )
    with pytest.raises(InsufficientPoints):
        await hold(50, key="err")
    async with ledger.read() as s:
        assert await available(s, member) == 100
        holds = await s.scalar(text("SELECT count(*) FROM redemption_hold"))
    assert holds == 1


async def test_a_whole_capture_posts_the_holds_leg_then_each_issuers_in_order(ledger, program):
    """Migration 0028: one insert writes a whole capture's postings, in the order two did: the
    hold's points spent at its line, then each issuing line's points used up, by line name."""
    _, hold = await _spent(ledger, program, points=250, taobao=100, store=50, hotel=100)
    async with ledger.read() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT t.idempotency_key, t.amount, d.kind, d.line, c.kind, c.line "
                    "FROM loyalty_transfer t JOIN loyalty_account d ON d.id = t.debit_account "
                    "JOIN loyalty_account c ON c.id = t.credit_account "
                    "WHERE t.idempotency_key LIKE :event ORDER BY t.id"
                ),
                {"event": f"redeem:{hold}:capture/%"},
            )
        ).all()
    event = f"redeem:{hold}:capture"
    assert [tuple(r) for r in rows] == [
        (f"{event}/spent", 250, "redemption_hold", "store", "redemption_clearing", "store"),
        (f"{event}/issuer:hotel", 100, "redemption_clearing", "hotel", "issuance", "hotel"),
        (f"{event}/issuer:store", 50, "redemption_clearing", "store", "issuance", "store"),
        (f"{event}/issuer:taobao", 100, "redemption_clearing", "taobao", "issuance", "taobao"),
    ]
