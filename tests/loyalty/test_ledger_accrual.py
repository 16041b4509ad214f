from __future__ import annotations

import asyncio

from ledger_support import attach, balances, make_activity, make_member, make_record, set_status
from loyalty_helpers import shanghai
from sqlalchemy import text

from hub.loyalty.accrual import accrue_activities, accrue_for_records, accrue_owed

NOW = shanghai(2026, 3, 1, 12)


async def test_store_purchase_accrues_available_points_and_growth(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await make_record(s, key="c1", member_id=member)
        act = await make_activity(
            s, external_id="r1", key="c1", amount_fen=12_345, occurred_at=shanghai(2026, 2, 1)
        )
        report = await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
    assert (report.accrued, report.points, report.growth) == (1, 123, 123)
    async with ledger.read() as s:
        assert await balances(s, member) == {"available": 123, "pending": 0, "debt": 0}
        expires = await s.scalar(text("SELECT expires_at FROM loyalty_lot"))
    assert expires == shanghai(2028, 1, 1)


async def test_accrual_is_idempotent(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await make_record(s, key="c1", member_id=member)
        act = await make_activity(
            s, external_id="r1", key="c1", amount_fen=10_000, occurred_at=shanghai(2026, 2, 1)
        )
        await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
    async with ledger.unit_of_work() as s:
        again = await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
    assert again.accrued == 0
    async with ledger.read() as s:
        assert (await balances(s, member))["available"] == 100


async def test_cancellation_reverses_what_is_left(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await make_record(s, key="c1", member_id=member)
        act = await make_activity(
            s, external_id="r1", key="c1", amount_fen=10_000, occurred_at=shanghai(2026, 2, 1)
        )
        await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
        await set_status(s, act, "cancelled")
        report = await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
        again = await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
    assert (report.reversed, report.points_reversed, again.reversed) == (1, 100, 0)
    async with ledger.read() as s:
        assert await balances(s, member) == {"available": 0, "pending": 0, "debt": 0}


async def _member_with(s, key="c1", source="pos", line="store"):
    member = await make_member(s)
    record = await make_record(s, source=source, key=key, line=line, member_id=member)
    return member, record


async def test_taobao_purchase_is_pending_excludes_shipping_and_caps(ledger, program):
    async with ledger.unit_of_work() as s:
        member, _ = await _member_with(s, source="taobao", line="taobao")
        small = await make_activity(
            s,
            external_id="t1",
            key="c1",
            source="taobao",
            line="taobao",
            amount_fen=10_099,
            details={"shipping_fen": 99},
            occurred_at=shanghai(2026, 2, 1),
        )
        big = await make_activity(
            s,
            external_id="t2",
            key="c1",
            source="taobao",
            line="taobao",
            amount_fen=1_000_000,
            occurred_at=shanghai(2026, 2, 1),
        )
        report = await accrue_activities(
            session=s, program=program, activity_ids=[small, big], now=shanghai(2026, 2, 2)
        )
        until = await s.scalar(
            text("SELECT pending_until FROM loyalty_lot WHERE activity_id = :a"), {"a": small}
        )
    # 100 yuan × 1.5 = 150; the big order is capped at 1000
    assert (report.points, report.pending_points) == (1150, 1150)
    assert until == shanghai(2026, 2, 16)
    async with ledger.read() as s:
        assert await balances(s, member) == {"available": 0, "pending": 1150, "debt": 0}


async def test_hotel_stay_earns_per_yuan_and_night_pending_until_after_checkout(ledger, program):
    async with ledger.unit_of_work() as s:
        member, _ = await _member_with(s, source="hotel", line="hotel")
        stay = await make_activity(
            s,
            external_id="f1",
            key="c1",
            source="hotel",
            line="hotel",
            kind="stay",
            amount_fen=50_000,
            quantity=2,
            details={"departure": "2026-02-03"},
            occurred_at=shanghai(2026, 2, 1, 15),
        )
        report = await accrue_activities(
            session=s, program=program, activity_ids=[stay], now=shanghai(2026, 2, 3, 12)
        )
        until = await s.scalar(text("SELECT pending_until FROM loyalty_lot"))
    assert report.points == 500 * 2 + 2 * 100
    assert until == shanghai(2026, 2, 4)


async def test_old_activity_past_its_window_accrues_available(ledger, program):
    async with ledger.unit_of_work() as s:
        member, _ = await _member_with(s, source="taobao", line="taobao")
        act = await make_activity(
            s,
            external_id="t1",
            key="c1",
            source="taobao",
            line="taobao",
            amount_fen=10_000,
            occurred_at=shanghai(2026, 1, 1),
        )
        await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
        assert await balances(s, member) == {"available": 150, "pending": 0, "debt": 0}


async def test_tier_multiplier_applies_at_the_members_tier(ledger, program):
    async with ledger.unit_of_work() as s:
        member, _ = await _member_with(s)
        await make_record(s, source="taobao", key="c1", line="taobao", member_id=member)
        big = await make_activity(
            s, external_id="r1", key="c1", amount_fen=100_000, occurred_at=shanghai(2026, 2, 1)
        )
        await accrue_activities(session=s, program=program, activity_ids=[big], now=NOW)
        tier = await s.scalar(text("SELECT tier FROM loyalty_tier_state"))
        act = await make_activity(
            s,
            external_id="t1",
            key="c1",
            source="taobao",
            line="taobao",
            amount_fen=10_000,
            occurred_at=shanghai(2026, 2, 2),
        )
        report = await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
    assert tier == "V2"
    assert report.points == 300  # 1.5 per yuan × 2 at V2


async def test_unknown_line_and_unattached_records_are_skipped_then_accrued(ledger, program):
    async with ledger.unit_of_work() as s:
        record = await make_record(s, key="c9")
        act = await make_activity(
            s, external_id="r1", key="c9", amount_fen=5_000, occurred_at=shanghai(2026, 2, 1)
        )
        odd = await make_activity(
            s,
            external_id="r2",
            key="c9",
            line="cinema",
            amount_fen=5_000,
            occurred_at=shanghai(2026, 2, 1),
        )
        refund = await make_activity(
            s,
            external_id="x1",
            key=None,
            kind="refund",
            amount_fen=2_000,
            original="r1",
            occurred_at=shanghai(2026, 2, 2),
        )
        first = await accrue_activities(
            session=s, program=program, activity_ids=[act, odd, refund], now=NOW
        )
        member = await make_member(s)
        await attach(s, record, member)
        later = await accrue_for_records(
            session=s, program=program, source_record_ids=[record], now=NOW
        )
        assert await balances(s, member) == {"available": 30, "pending": 0, "debt": 0}
    assert first.skipped == {"no_member_yet": 2}
    assert (later.accrued, later.reversed, later.skipped) == (1, 1, {"unknown_business_line": 1})


async def test_partial_refunds_reverse_pro_rata_once_each(ledger, program):
    async with ledger.unit_of_work() as s:
        member, _ = await _member_with(s)
        act = await make_activity(
            s, external_id="r1", key="c1", amount_fen=999, occurred_at=shanghai(2026, 2, 1)
        )
        await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
        taken = []
        for i, fen in enumerate([333, 333, 333, 1]):
            refund = await make_activity(
                s,
                external_id=f"x{i}",
                key="c1",
                kind="refund",
                amount_fen=fen,
                original="r1",
                occurred_at=NOW,
            )
            for _ in range(2):  # a replay takes nothing more
                report = await accrue_activities(
                    session=s, program=program, activity_ids=[refund], now=NOW
                )
                taken.append(report.points_reversed)
        assert await balances(s, member) == {"available": 0, "pending": 0, "debt": 0}
    # 9 points over 999 fen: floor(9 × 333/999)=3, floor(9 × 666/999)=6 → 3, then the rest;
    # the last refund would pass the original amount and is not applied.
    assert taken == [3, 0, 3, 0, 3, 0, 0, 0]


async def test_within_balance_refund_writes_off_what_was_spent(ledger, program):
    async with ledger.unit_of_work() as s:
        member, _ = await _member_with(s, source="taobao", line="taobao")
        act = await make_activity(
            s,
            external_id="t1",
            key="c1",
            source="taobao",
            line="taobao",
            amount_fen=10_000,
            occurred_at=shanghai(2026, 1, 1),
        )
        await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
        await _spend(s, program, member, 100)
        refund = await make_activity(
            s,
            external_id="x1",
            key=None,
            source="taobao",
            line="taobao",
            kind="refund",
            amount_fen=10_000,
            original="t1",
            occurred_at=NOW,
        )
        await accrue_activities(session=s, program=program, activity_ids=[refund], now=NOW)
        assert await balances(s, member) == {"available": 0, "pending": 0, "debt": 0}
        row = (
            await s.execute(
                text(
                    "SELECT points, points_taken, points_debt, points_written_off FROM loyalty_reversal"
                )
            )
        ).one()
    assert tuple(row) == (150, 50, 0, 100)


async def test_allow_negative_refund_books_debt_that_new_points_pay_off(ledger, program):
    async with ledger.unit_of_work() as s:
        member, _ = await _member_with(s)
        act = await make_activity(
            s, external_id="r1", key="c1", amount_fen=10_000, occurred_at=shanghai(2026, 2, 1)
        )
        await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
        await _spend(s, program, member, 80)
        refund = await make_activity(
            s,
            external_id="x1",
            key="c1",
            kind="refund",
            amount_fen=10_000,
            original="r1",
            occurred_at=NOW,
        )
        await accrue_activities(session=s, program=program, activity_ids=[refund], now=NOW)
        assert await balances(s, member) == {"available": 0, "pending": 0, "debt": -80}
        more = await make_activity(s, external_id="r2", key="c1", amount_fen=5_000, occurred_at=NOW)
        await accrue_activities(session=s, program=program, activity_ids=[more], now=NOW)
        assert await balances(s, member) == {"available": 0, "pending": 0, "debt": -30}


async def _spend(s, program, member, points):
    from hub.core.audit import Actor
    from hub.loyalty.adjustments import adjust_points

    await adjust_points(
        session=s,
        program=program,
        actor=Actor("agent-1", "agent"),
        member_id=member,
        amount=-points,
        reason="测试兑换",
        idempotency_key=f"spend-{member}-{points}",
        now=NOW,
    )


async def test_the_catch_up_accrues_what_is_owed_once_and_in_batches(ledger, program):
    async with ledger.unit_of_work() as s:
        member, _ = await _member_with(s)
        for i in range(5):  # five purchases; one refund of the first below
            await make_activity(
                s, external_id=f"r{i}", key="c1", amount_fen=1_000, occurred_at=shanghai(2026, 2, 1)
            )
        await make_activity(
            s, external_id="x", key="nobody", amount_fen=1_000, occurred_at=shanghai(2026, 2, 1)
        )
        refund = await make_activity(
            s,
            external_id="r0:refund",
            key="c1",
            kind="refund",
            amount_fen=1_000,
            original="r0",
            occurred_at=shanghai(2026, 2, 2),
        )
    seen: list[tuple[int, int]] = []
    report = await accrue_owed(
        db=ledger, program=program, batch=2, now=NOW, progress=lambda *p: seen.append(p)
    )
    assert (report.accrued, report.points, report.reversed) == (5, 50, 1)
    assert report.skipped == {"no_member_yet": 1}  # a sale of a key no record holds
    assert seen[-1] == (refund, refund)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    async with ledger.read() as s:
        assert await balances(s, member) == {"available": 40, "pending": 0, "debt": 0}
    again = await accrue_owed(db=ledger, program=program, now=NOW)
    assert (again.accrued, again.reversed, again.skipped) == (0, 0, {"no_member_yet": 1})


async def test_the_catch_up_redoes_a_batch_an_import_accrued_part_of_first(ledger, program):
    async with ledger.unit_of_work() as s:
        member, _ = await _member_with(s)
        act = await make_activity(
            s, external_id="r1", key="c1", amount_fen=10_000, occurred_at=shanghai(2026, 2, 1)
        )
    # An import's hooks accrue the same activity in a transaction still open when the catch-up
    # starts: it reads the activity as owed, waits on the member's accounts, then meets the
    # accrual's key once the import commits.
    async with ledger.unit_of_work() as s:
        await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
        catch_up = asyncio.ensure_future(accrue_owed(db=ledger, program=program, now=NOW))
        await asyncio.sleep(0.5)
        assert not catch_up.done()
    report = await catch_up
    assert (report.accrued, report.points) == (0, 0)
    async with ledger.read() as s:
        assert await balances(s, member) == {"available": 100, "pending": 0, "debt": 0}
