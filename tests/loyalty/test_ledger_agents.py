from __future__ import annotations

import pytest
from ledger_support import balances, make_activity, make_member, make_record
from loyalty_helpers import shanghai
from sqlalchemy import text

from hub.core.audit import Actor, list_audit
from hub.core.errors import IdempotencyConflict, NotFound
from hub.loyalty.accrual import accrue_activities
from hub.loyalty.adjustments import adjust_points
from hub.loyalty.claims import claim_benefit
from hub.loyalty.errors import (
    AdjustmentCapExceeded,
    InsufficientPoints,
    InvalidAdjustment,
    NotEntitled,
    QuotaExhausted,
)

NOW = shanghai(2026, 3, 1, 12)
AGENT = Actor(id="agent-7", role="agent")
MEMBER = Actor(id="member-1", role="member")


async def _adjust(s, program, member, amount, key, actor=AGENT, now=NOW):
    return await adjust_points(
        session=s,
        program=program,
        actor=actor,
        member_id=member,
        amount=amount,
        reason="测试补偿",
        idempotency_key=key,
        now=now,
    )


async def test_adjustments_add_and_take_points_and_are_audited(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        added = await _adjust(s, program, member, 300, "k1")
        taken = await _adjust(s, program, member, -120, "k2")
        assert await balances(s, member) == {"available": 180, "pending": 0, "debt": 0}
        audit = await list_audit(session=s, action="loyalty.adjust_points")
    assert (added.available, taken.available) == (300, 180)
    assert [(a.actor, a.details["amount"]) for a in audit] == [("agent-7", -120), ("agent-7", 300)]


async def test_adjustment_replay_returns_the_first_result_and_conflicts_on_change(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        first = await _adjust(s, program, member, 300, "k1")
        replay = await _adjust(s, program, member, 300, "k1")
        assert await balances(s, member) == {"available": 300, "pending": 0, "debt": 0}
        with pytest.raises(IdempotencyConflict):
            await _adjust(s, program, member, 200, "k1")
    assert (first.replayed, replay.replayed, replay.available) == (False, True, 300)


async def test_adjustments_respect_the_single_and_daily_caps(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        for i in range(4):
            await _adjust(s, program, member, 500, f"k{i}")
        with pytest.raises(InvalidAdjustment):
            await _adjust(s, program, member, 501, "big")
    async with ledger.unit_of_work() as s:
        with pytest.raises(AdjustmentCapExceeded) as exc:
            await _adjust(s, program, member, 1, "over")
    assert (exc.value.cap, exc.value.used) == (2000, 2000)
    async with ledger.unit_of_work() as s:
        other = await _adjust(s, program, member, 10, "k5", actor=Actor("agent-8", "agent"))
        tomorrow = await _adjust(s, program, member, 10, "k6", now=shanghai(2026, 3, 2, 0, 1))
    assert (other.available, tomorrow.available) == (2010, 2020)


async def test_taking_more_than_spendable_fails_and_merged_members_cannot_be_adjusted(
    ledger, program
):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await _adjust(s, program, member, 100, "k1")
    async with ledger.unit_of_work() as s:
        with pytest.raises(InsufficientPoints):
            await _adjust(s, program, member, -101, "k2")
    async with ledger.unit_of_work() as s:
        await s.execute(text("UPDATE member SET status = 'merged' WHERE id = :m"), {"m": member})
        with pytest.raises(NotFound):
            await _adjust(s, program, member, 5, "k3")


async def _v2_member(s, program):
    member = await make_member(s)
    await make_record(s, key="c1", member_id=member)
    act = await make_activity(s, external_id="r1", key="c1", amount_fen=100_000, occurred_at=NOW)
    await accrue_activities(session=s, program=program, activity_ids=[act], now=NOW)
    return member


async def test_benefit_claims_are_idempotent_counted_per_period_and_audited(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await _v2_member(s, program)
        first = await claim_benefit(
            session=s,
            program=program,
            actor=MEMBER,
            member_id=member,
            code="store_gift",
            idempotency_key="a",
            now=NOW,
        )
        replay = await claim_benefit(
            session=s,
            program=program,
            actor=MEMBER,
            member_id=member,
            code="store_gift",
            idempotency_key="a",
            now=NOW,
        )
        second = await claim_benefit(
            session=s,
            program=program,
            actor=MEMBER,
            member_id=member,
            code="store_gift",
            idempotency_key="b",
            now=NOW,
        )
        with pytest.raises(QuotaExhausted):
            await claim_benefit(
                session=s,
                program=program,
                actor=MEMBER,
                member_id=member,
                code="store_gift",
                idempotency_key="c",
                now=NOW,
            )
    async with ledger.unit_of_work() as s:
        next_month = await claim_benefit(
            session=s,
            program=program,
            actor=MEMBER,
            member_id=member,
            code="store_gift",
            idempotency_key="c",
            now=shanghai(2026, 4, 1),
        )
        audit = await list_audit(session=s, action="loyalty.claim_benefit")
    assert [first.remaining, replay.remaining, replay.replayed, second.remaining] == [1, 1, True, 0]
    assert next_month.remaining == 1
    assert len(audit) == 3


async def test_benefit_needs_the_minimum_tier(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        with pytest.raises(NotEntitled):
            await claim_benefit(
                session=s,
                program=program,
                actor=MEMBER,
                member_id=member,
                code="store_gift",
                idempotency_key="a",
                now=NOW,
            )
