from __future__ import annotations

from ledger_support import attach, balances, make_activity, make_member, make_record
from loyalty_helpers import shanghai
from sqlalchemy import text

from hub.core.audit import Actor
from hub.loyalty.accrual import accrue_activities
from hub.loyalty.adjustments import adjust_points
from hub.loyalty.attribution import follow_merge, reattribute

NOW = shanghai(2026, 3, 1, 12)


async def _totals(s):
    return tuple(
        (
            await s.execute(
                text(
                    "SELECT (SELECT sum(balance) FROM loyalty_account WHERE balance IS NOT NULL), "
                    "(SELECT count(*) FROM loyalty_lot), (SELECT sum(amount) FROM loyalty_growth)"
                )
            )
        ).one()
    )


async def test_merge_then_unmerge_restores_points_by_provenance(ledger, program):
    async with ledger.unit_of_work() as s:
        a, b = await make_member(s), await make_member(s)
        pos = await make_record(s, key="p1", member_id=a)
        await make_record(s, source="taobao", key="t1", line="taobao", member_id=b)
        acts = [
            await make_activity(s, external_id="r1", key="p1", amount_fen=20_000, occurred_at=NOW),
            await make_activity(
                s,
                external_id="t1",
                key="t1",
                source="taobao",
                line="taobao",
                amount_fen=10_000,
                occurred_at=NOW,
            ),
        ]
        await accrue_activities(session=s, program=program, activity_ids=acts, now=NOW)
        await adjust_points(
            session=s,
            program=program,
            actor=Actor("agent-1", "agent"),
            member_id=a,
            amount=50,
            reason="测试",
            idempotency_key="k",
            now=NOW,
        )
        before = await _totals(s)
        # identity merges a into b ...
        await attach(s, pos, b)
        moved = await follow_merge(session=s, program=program, absorbed=a, survivor=b, now=NOW)
        assert await balances(s, b) == {"available": 250, "pending": 150, "debt": 0}
        assert await balances(s, a) == {"available": 0, "pending": 0, "debt": 0}
        # ... then unmerges the store record back to a
        await attach(s, pos, a)
        back = await reattribute(session=s, program=program, source_record_ids=[pos], now=NOW)
        again = await reattribute(session=s, program=program, source_record_ids=[pos], now=NOW)
        assert await balances(s, a) == {"available": 200, "pending": 0, "debt": 0}
        # the adjustment was given to the merged member; it stays with the survivor
        assert await balances(s, b) == {"available": 50, "pending": 150, "debt": 0}
        growth = dict(
            (
                await s.execute(
                    text("SELECT member_id, sum(amount) FROM loyalty_growth GROUP BY 1")
                )
            ).all()
        )
        after = await _totals(s)
    assert (moved.lots, moved.points) == (2, 250)
    assert (back.lots, back.points, again.lots) == (1, 200, 0)
    assert growth == {a: 200, b: 100}
    assert before == after


async def test_merge_moves_debt_and_keeps_the_higher_tier(ledger, program):
    async with ledger.unit_of_work() as s:
        a, b = await make_member(s), await make_member(s)
        pos = await make_record(s, key="p1", member_id=a)
        act = await make_activity(
            s, external_id="r1", key="p1", amount_fen=100_000, occurred_at=NOW
        )
        await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
        await adjust_points(
            session=s,
            program=program,
            actor=Actor("agent-1", "agent"),
            member_id=a,
            amount=-500,
            reason="测试兑换",
            idempotency_key="k",
            now=NOW,
        )
        refund = await make_activity(
            s,
            external_id="x1",
            key="p1",
            kind="refund",
            amount_fen=100_000,
            original="r1",
            occurred_at=NOW,
        )
        await accrue_activities(session=s, program=program, activity_ids=[refund], now=NOW)
        assert await balances(s, a) == {"available": 0, "pending": 0, "debt": -500}
        await attach(s, pos, b)
        await follow_merge(session=s, program=program, absorbed=a, survivor=b, now=NOW)
        assert await balances(s, b) == {"available": 0, "pending": 0, "debt": -500}
        tiers = dict(
            (await s.execute(text("SELECT member_id, tier FROM loyalty_tier_state"))).all()
        )
    assert tiers == {a: "V2", b: "V2"}
