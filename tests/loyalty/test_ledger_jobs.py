from __future__ import annotations

import asyncio
from datetime import date

from ledger_support import balances, make_activity, make_member, make_record
from loyalty_helpers import shanghai
from sqlalchemy import text

from hub.loyalty import jobs
from hub.loyalty.accrual import accrue_activities


async def _earn(
    s, program, *, amount_fen, at, now=None, source="pos", line="store", key="c1", ext="r1"
):
    member = await s.scalar(
        text("SELECT member_id FROM source_record WHERE source_key = :k AND source = :s"),
        {"k": key, "s": source},
    )
    if member is None:
        member = await make_member(s)
        await make_record(s, source=source, key=key, line=line, member_id=member)
    act = await make_activity(
        s, external_id=ext, key=key, source=source, line=line, amount_fen=amount_fen, occurred_at=at
    )
    await accrue_activities(session=s, program=program, activity_ids=[act], now=now or at)
    return member


async def test_release_moves_pending_to_available_when_the_window_closes(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await _earn(
            s,
            program,
            amount_fen=10_000,
            at=shanghai(2026, 3, 1, 10),
            source="taobao",
            line="taobao",
        )
        early = await jobs.release_pending(session=s, program=program, as_of=date(2026, 3, 16))
        assert early.items == 0
        done = await jobs.release_pending(session=s, program=program, as_of=date(2026, 3, 17))
        again = await jobs.release_pending(session=s, program=program, as_of=date(2026, 3, 17))
        assert await balances(s, member) == {"available": 150, "pending": 0, "debt": 0}
    assert (done.items, done.points, again.items) == (1, 150, 0)


async def test_points_earned_in_a_year_expire_at_the_end_of_the_next(ledger, program):
    async with ledger.unit_of_work() as s:
        # 23:30 on 31 December in Shanghai is still 2025 there (15:30 UTC)
        member = await _earn(s, program, amount_fen=10_000, at=shanghai(2025, 12, 31, 23, 30))
        await _earn(s, program, amount_fen=5_000, at=shanghai(2026, 1, 1, 0, 10), ext="r2")
        kept = await jobs.expire(session=s, program=program, as_of=date(2026, 12, 31))
        gone = await jobs.expire(session=s, program=program, as_of=date(2027, 1, 1))
        again = await jobs.expire(session=s, program=program, as_of=date(2027, 1, 1))
        assert await balances(s, member) == {"available": 50, "pending": 0, "debt": 0}
        later = await jobs.expire(session=s, program=program, as_of=date(2028, 1, 1))
        assert await balances(s, member) == {"available": 0, "pending": 0, "debt": 0}
        breakage = await s.scalar(
            text(
                "SELECT sum(t.amount) FROM loyalty_transfer t JOIN loyalty_account a "
                "ON a.id = t.credit_account WHERE a.kind = 'expiry' AND a.line = 'store'"
            )
        )
    assert (kept.items, gone.points, again.items, later.points, breakage) == (0, 100, 0, 50, 150)


async def test_days_and_end_of_month_policies_expire_on_local_dates(ledger, with_policy):
    days = with_policy(('policy = "end_of_next_year"', 'policy = "days"\ndays = 30'))
    months = with_policy(('policy = "end_of_next_year"', 'policy = "end_of_month"\nmonths = 1'))
    async with ledger.unit_of_work() as s:
        await _earn(s, days, amount_fen=10_000, at=shanghai(2026, 12, 15, 20))
        await _earn(s, months, amount_fen=20_000, at=shanghai(2026, 12, 15, 20), key="c2", ext="r2")
        rows = (
            await s.execute(text("SELECT amount, expires_at FROM loyalty_lot ORDER BY amount"))
        ).all()
        first = await jobs.expire(session=s, program=days, as_of=date(2027, 1, 15))
        second = await jobs.expire(session=s, program=days, as_of=date(2027, 1, 16))
        third = await jobs.expire(session=s, program=days, as_of=date(2027, 2, 1))
    assert [tuple(r) for r in rows] == [(100, shanghai(2027, 1, 15)), (200, shanghai(2027, 2, 1))]
    assert (first.points, second.points, third.points) == (100, 0, 200)


async def test_concurrent_expiry_runs_expire_each_lot_once(ledger, program):
    async with ledger.unit_of_work() as s:
        for i in range(5):
            await _earn(
                s, program, amount_fen=10_000, at=shanghai(2025, 6, 1), key=f"c{i}", ext=f"r{i}"
            )

    async def run():
        async with ledger.unit_of_work() as s:
            return await jobs.expire(session=s, program=program, as_of=date(2027, 1, 1))

    results = await asyncio.gather(run(), run())
    assert sorted(r.points for r in results) == [0, 500]


async def test_upgrade_is_immediate_downgrade_waits_for_the_period_end(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await _earn(s, program, amount_fen=500_000, at=shanghai(2026, 5, 1))
        assert await s.scalar(text("SELECT tier FROM loyalty_tier_state")) == "V3"
        mid = await jobs.evaluate_tiers(session=s, program=program, as_of=date(2026, 12, 31))
        # 2027: 1000 growth misses V3's retention (3000): one tier down at the end of 2027
        await _earn(s, program, amount_fen=100_000, at=shanghai(2027, 3, 1), ext="r2")
        kept = await jobs.evaluate_tiers(session=s, program=program, as_of=date(2027, 1, 1))
        down = await jobs.evaluate_tiers(session=s, program=program, as_of=date(2028, 1, 1))
        again = await jobs.evaluate_tiers(session=s, program=program, as_of=date(2028, 1, 1))
        history = (
            await s.execute(
                text(
                    "SELECT change, to_tier FROM loyalty_tier_history WHERE member_id = :m ORDER BY id"
                ),
                {"m": member},
            )
        ).all()
    assert mid.items == 0
    assert (kept.changes, down.changes, again.items) == ({"keep": 1}, {"downgrade": 1}, 0)
    assert [tuple(h) for h in history] == [
        ("initial", "V1"),
        ("upgrade", "V3"),
        ("keep", "V3"),
        ("downgrade", "V2"),
    ]


async def test_retention_growth_keeps_the_tier(ledger, program):
    async with ledger.unit_of_work() as s:
        await _earn(s, program, amount_fen=100_000, at=shanghai(2026, 2, 1))
        await _earn(s, program, amount_fen=60_000, at=shanghai(2027, 12, 31, 23), ext="r2")
        await jobs.evaluate_tiers(session=s, program=program, as_of=date(2028, 1, 1))
        tier = await s.scalar(text("SELECT tier FROM loyalty_tier_state"))
    assert tier == "V2"  # 600 growth in 2027 met V2's retention of 600
