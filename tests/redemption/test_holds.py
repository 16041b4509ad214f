from __future__ import annotations

import functools

import pytest
from sqlalchemy import text

from hub.loyalty.errors import InsufficientPoints, UnknownBusinessLine
from hub.loyalty.redemption import (
    cancel,
    capture,
    expire_holds,
    quote_redemption,
    run_redemption,
)
from hub.loyalty.redemption_errors import (
    AlreadyCancelled,
    AlreadyCaptured,
    HoldExpired,
    HoldNotFound,
    InvalidRedemption,
    NotRedeemableHere,
)
from hub.loyalty.redemption_store import HoldScope
from tests.redemption.support import (
    POS,
    available,
    earn,
    lot_remaining,
    make_member,
    pos_hold,
    problems,
    shanghai,
)

T0 = shanghai(2026, 10, 10, 12)

_hold = functools.partial(pos_hold, at=T0)


async def _member_with(ledger, program, **points_by_line):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        for i, (line, pts) in enumerate(points_by_line.items()):
            await earn(s, program, member, pts, line=line, at=shanghai(2026, 10, 1 + i, 9))
    return member


async def test_quote_prices_points_at_the_line_and_lists_lots_fifo_by_expiry(ledger, program):
    member = await _member_with(ledger, program, taobao=300, hotel=500)
    async with ledger.read() as s:
        quote = await quote_redemption(
            session=s, program=program, member_id=member, line="hotel", amount_fen=201, now=T0
        )
    assert quote.points == 402  # 0.5 fen a point, rounded up to cover 201 fen
    assert quote.amount_fen == 201
    assert quote.available == 800
    assert quote.enough
    assert [(u.issuer_line, u.points) for u in quote.lots] == [("taobao", 300), ("hotel", 102)]


async def test_quote_rejects_lines_that_take_no_points(ledger, program):
    async with ledger.read() as s:
        with pytest.raises(NotRedeemableHere):
            await quote_redemption(session=s, program=program, member_id=1, line="taobao", points=1)
        with pytest.raises(UnknownBusinessLine):
            await quote_redemption(session=s, program=program, member_id=1, line="nope", points=1)
        with pytest.raises(InvalidRedemption):
            await quote_redemption(session=s, program=program, member_id=1, line="store")


async def test_hold_takes_points_from_available_at_once(ledger, program):
    member = await _member_with(ledger, program, taobao=300, hotel=500)
    hold = await _hold(ledger, program, member, 400)
    assert hold.state == "pending"
    assert hold.available == 400
    assert [(x.issuer_line, x.points) for x in hold.lots] == [("taobao", 300), ("hotel", 100)]
    async with ledger.read() as s:
        assert await available(s, member) == 400
        assert await lot_remaining(s, member) == {"taobao": 0, "hotel": 400}


async def test_full_capture_spends_the_hold(ledger, program):
    member = await _member_with(ledger, program, store=500)
    hold = await _hold(ledger, program, member, 200)
    done = await run_redemption(
        db=ledger,
        work=lambda s: capture(session=s, program=program, actor=POS, hold_id=hold.id, now=T0),
    )
    assert done.state == "captured"
    assert done.captured_points == 200
    assert done.available == 300
    assert done.amount_fen == 200


async def test_partial_capture_returns_the_rest_to_the_same_lots(ledger, program):
    member = await _member_with(ledger, program, taobao=300, hotel=500)
    hold = await _hold(ledger, program, member, 600)
    done = await run_redemption(
        db=ledger,
        work=lambda s: capture(
            session=s, program=program, actor=POS, hold_id=hold.id, points=350, now=T0
        ),
    )
    assert done.captured_points == 350
    assert done.available == 450
    assert [(x.issuer_line, x.points, x.captured) for x in done.lots] == [
        ("taobao", 300, 300),
        ("hotel", 300, 50),
    ]
    async with ledger.read() as s:
        assert await lot_remaining(s, member) == {"taobao": 0, "hotel": 450}


async def test_cancel_voids_the_hold_and_restores_the_lots(ledger, program):
    member = await _member_with(ledger, program, taobao=300, hotel=500)
    hold = await _hold(ledger, program, member, 600)
    done = await run_redemption(
        db=ledger,
        work=lambda s: cancel(session=s, program=program, actor=POS, hold_id=hold.id, now=T0),
    )
    assert done.state == "cancelled"
    assert done.available == 800
    async with ledger.read() as s:
        assert await lot_remaining(s, member) == {"taobao": 300, "hotel": 500}


async def test_second_resolution_is_a_typed_error_never_a_second_effect(ledger, program):
    member = await _member_with(ledger, program, store=500)
    captured = await _hold(ledger, program, member, 100, key="a")
    cancelled = await _hold(ledger, program, member, 100, key="b")

    def cap(hold_id):
        return run_redemption(
            db=ledger,
            work=lambda s: capture(session=s, program=program, actor=POS, hold_id=hold_id, now=T0),
        )

    def void(hold_id):
        return run_redemption(
            db=ledger,
            work=lambda s: cancel(session=s, program=program, actor=POS, hold_id=hold_id, now=T0),
        )

    await cap(captured.id)
    await void(cancelled.id)
    with pytest.raises(AlreadyCaptured):
        await cap(captured.id)
    with pytest.raises(AlreadyCaptured):
        await void(captured.id)
    with pytest.raises(AlreadyCancelled):
        await cap(cancelled.id)
    with pytest.raises(AlreadyCancelled):
        await void(cancelled.id)
    async with ledger.read() as s:
        assert await available(s, member) == 400


async def test_holds_expire_after_their_ttl(ledger, program):
    member = await _member_with(ledger, program, store=500)
    hold = await _hold(ledger, program, member, 100, ttl=60)
    async with ledger.unit_of_work() as s:
        early = await expire_holds(
            session=s, program=program, as_of=shanghai(2026, 10, 10, 12, 0, 59)
        )
    async with ledger.unit_of_work() as s:
        late = await expire_holds(session=s, program=program, as_of=shanghai(2026, 10, 10, 12, 1))
    assert (early.holds, late.holds, late.points) == (0, 1, 100)
    with pytest.raises(HoldExpired):
        await run_redemption(
            db=ledger,
            work=lambda s: capture(session=s, program=program, actor=POS, hold_id=hold.id, now=T0),
        )
    async with ledger.read() as s:
        assert await available(s, member) == 500


async def test_capture_after_the_ttl_expires_the_hold_and_says_so(ledger, program):
    member = await _member_with(ledger, program, store=500)
    hold = await _hold(ledger, program, member, 100, ttl=60)
    with pytest.raises(HoldExpired):
        await run_redemption(
            db=ledger,
            work=lambda s: capture(
                session=s,
                program=program,
                actor=POS,
                hold_id=hold.id,
                now=shanghai(2026, 10, 10, 13),
            ),
        )
    async with ledger.read() as s:
        assert await available(s, member) == 500  # the expiry itself was committed


async def test_hold_beyond_the_balance_is_insufficient_points(ledger, program):
    member = await _member_with(ledger, program, store=100)
    with pytest.raises(InsufficientPoints) as caught:
        await _hold(ledger, program, member, 101)
    assert (caught.value.requested, caught.value.available) == (101, 100)
    stranger = await _member_with(ledger, program)
    with pytest.raises(InsufficientPoints):
        await _hold(ledger, program, stranger, 1, key="other")


async def test_hold_validates_its_input(ledger, program):
    member = await _member_with(ledger, program, store=100)
    with pytest.raises(InvalidRedemption) as caught:
        await _hold(ledger, program, member, 10, ttl=5)
    assert caught.value.field == "hold_ttl_s"
    with pytest.raises(InvalidRedemption):
        await _hold(ledger, program, member, 0)
    with pytest.raises(NotRedeemableHere):
        await _hold(ledger, program, member, 10, line="taobao")


async def test_a_scoped_caller_cannot_touch_another_lines_hold(ledger, program):
    member = await _member_with(ledger, program, store=100)
    hold = await _hold(ledger, program, member, 10)
    with pytest.raises(HoldNotFound):
        await run_redemption(
            db=ledger,
            work=lambda s: capture(
                session=s,
                program=program,
                actor=POS,
                hold_id=hold.id,
                now=T0,
                scope=HoldScope(line="hotel"),
            ),
        )
    with pytest.raises(HoldNotFound):
        await run_redemption(
            db=ledger,
            work=lambda s: cancel(
                session=s, program=program, actor=POS, hold_id=hold.id + 99, now=T0
            ),
        )


@pytest.mark.parametrize("points", [1, 50, 51, 249, 250, 600, 601])
async def test_a_hold_takes_the_lots_the_quote_lists_soonest_expiry_first(ledger, program, points):
    """Migration 0027 reads the lots in one pass: the same lots, amounts and order as the quote
    (soonest expiry first, then earliest earned), expired lots skipped, every usable point
    counted as available."""
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        for line, pts, at in (  # the program's points last 30 days, to the end of the day
            ("taobao", 100, shanghai(2026, 9, 1, 9)),  # expired on 1 October
            ("hotel", 200, shanghai(2026, 10, 5, 9)),  # expires on 4 November
            ("store", 150, shanghai(2026, 9, 20, 15)),  # these two on 20 October,
            ("hotel", 50, shanghai(2026, 9, 20, 9)),  # the earlier earned first
            ("taobao", 200, shanghai(2026, 10, 1, 9)),  # on 31 October
        ):
            await earn(s, program, member, pts, line=line, at=at)
    async with ledger.read() as s:
        quote = await quote_redemption(
            session=s, program=program, member_id=member, line="store", points=points, now=T0
        )
    assert quote.available == 600
    assert [(u.issuer_line, u.points) for u in quote.lots][:3] == [
        ("hotel", min(points, 50)),
        ("store", min(max(points - 50, 0), 150)),
        ("taobao", min(max(points - 200, 0), 200)),
    ][: len(quote.lots)]
    if points > 600:
        with pytest.raises(InsufficientPoints) as raised:
            await _hold(ledger, program, member, points)
        assert raised.value.available == 600
        return
    hold = await _hold(ledger, program, member, points)
    assert [(x.lot_id, x.issuer_line, x.points) for x in hold.lots] == [
        (u.lot_id, u.issuer_line, u.points) for u in quote.lots
    ]
    assert hold.available == 600 - points


async def _timers(ledger):
    async with ledger.read() as s:
        rows = await s.execute(text("SELECT hold_id, expires_at FROM redemption_hold_timer"))
        return {row[0]: row[1] for row in rows.all()}


async def test_each_hold_has_a_timer_until_the_expiry_run_after_it_is_resolved(ledger, program):
    """Migration 0029: a hold's timer is written with it and outlives a capture or cancel
    before the TTL; the expiry run deletes it once due (and expires what is still pending)."""
    member = await _member_with(ledger, program, store=500)
    kept = await _hold(ledger, program, member, 100, "a", ttl=60)
    taken = await _hold(ledger, program, member, 100, "b", ttl=60)
    later = await _hold(ledger, program, member, 100, "c", ttl=600)
    assert await _timers(ledger) == {h.id: h.expires_at for h in (kept, taken, later)}
    await run_redemption(
        db=ledger,
        work=lambda s: capture(session=s, program=program, actor=POS, hold_id=taken.id, now=T0),
    )
    assert set(await _timers(ledger)) == {kept.id, taken.id, later.id}
    async with ledger.unit_of_work() as s:
        run = await expire_holds(session=s, program=program, as_of=shanghai(2026, 10, 10, 12, 1))
    assert (run.holds, run.points, run.timers) == (1, 100, 2)  # kept expired; both timers gone
    assert set(await _timers(ledger)) == {later.id}
    async with ledger.unit_of_work() as s:
        again = await expire_holds(session=s, program=program, as_of=shanghai(2026, 10, 10, 12, 1))
    assert (again.holds, again.timers) == (0, 0)


async def test_a_whole_capture_updates_its_hold_in_place(ledger, program):
    """Migration 0029: no index of redemption_hold names a column a resolve changes, so the
    capture's update is HOT (no new index entries), on a page the table keeps room on."""
    member = await _member_with(ledger, program, store=500)
    hold = await _hold(ledger, program, member, 100)
    async with ledger.transaction() as tx:
        conn = await tx.begin()
        await capture(session=tx, program=program, actor=POS, hold_id=hold.id, now=T0)
        updates = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
            "WHERE relname = 'redemption_hold'"
        )
    assert (updates["n_tup_upd"], updates["n_tup_hot_upd"]) == (1, 1)


async def test_the_ledger_check_finds_a_pending_hold_without_its_timer(db, program):
    member = await _member_with(db, program, store=500)
    hold = await _hold(db, program, member, 100)
    async with db.unit_of_work() as s:
        await s.execute(text("DELETE FROM redemption_hold_timer"))
        found = await problems(s)
    assert [p.split(" expires ")[0] for p in found] == [f"hold_timers: pending hold {hold.id}"]
    assert found[0].endswith("its timer: None")
