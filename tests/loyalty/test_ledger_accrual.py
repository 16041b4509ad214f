from __future__ import annotations

from ledger_support import balances, make_activity, make_member, make_record, set_status
from loyalty_helpers import shanghai
from sqlalchemy import text

from hub.loyalty.accrual import accrue_activities

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
