from __future__ import annotations

from typing import Any

import pytest
import strawberry
from ledger_support import make_activity, make_member, make_record
from sqlalchemy import event, text
from strawberry.tools import merge_types

from hub.app import Services
from hub.core.clock import utcnow
from hub.core.tokens import Principal, Role
from hub.loyalty.accrual import accrue_activities
from hub.loyalty.program import default_program
from schema.limits import extensions
from schema.loyalty.mutations import LoyaltyMutation
from schema.loyalty.queries import LoyaltyQuery
from schema.viewer.queries import ViewerQuery

PROGRAM = default_program()
AGENT = Principal(subject="agent-1", role=Role.AGENT)

LOYALTY = """
  memberId
  tier { code name growth nextTier progress retention }
  points { available pending expiringSoon { amount expiresAt } byBusinessLine { line available } }
  ledger(first: $first) { edges { cursor node { id code delta pendingDelta } } pageInfo { hasNextPage endCursor } }
  benefits { code line remaining }
"""


@pytest.fixture(scope="module")
def schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=merge_types("Query", (ViewerQuery, LoyaltyQuery)),
        mutation=LoyaltyMutation,
        extensions=extensions(max_depth=12, max_tokens=4_000, max_aliases=30, introspection=True),
    )


@pytest.fixture
def run(schema, settings, ledger):
    services = Services(settings, ledger, settings.keyring())

    async def execute(query: str, principal: Principal, **variables: Any) -> Any:
        result = await schema.execute(
            query, variable_values=variables, context_value=services.context(principal)
        )
        assert result.errors is None, result.errors
        return result.data

    return execute


async def _member(s, key: str, purchases: int) -> int:
    member = await make_member(s)
    await make_record(s, key=key, member_id=member)
    now = utcnow()
    ids = [
        await make_activity(
            s, external_id=f"{key}-{i}", key=key, amount_fen=100_000 + i, occurred_at=now
        )
        for i in range(purchases)
    ]
    await accrue_activities(session=s, program=PROGRAM, activity_ids=ids, now=now)
    return member


def member_token(member: int) -> Principal:
    return Principal(subject=f"m-{member}", role=Role.MEMBER, member_id=member)


async def test_my_loyalty_shows_tier_points_ledger_and_benefits(run, ledger):
    async with ledger.unit_of_work() as s:
        member = await _member(s, "c1", 3)
    data = await run(
        f"query($first: Int) {{ myLoyalty {{ {LOYALTY} }} }}", member_token(member), first=2
    )
    mine = data["myLoyalty"]
    assert mine["points"]["available"] == 3000
    assert mine["points"]["byBusinessLine"] == [{"line": "store", "available": 3000}]
    assert mine["tier"]["code"] == "V3"
    assert mine["tier"]["nextTier"] == "V4"
    assert len(mine["ledger"]["edges"]) == 2
    assert mine["ledger"]["pageInfo"]["hasNextPage"]
    assert {b["code"] for b in mine["benefits"]} == {
        "store_birthday_gift",
        "app_free_shipping",
        "taobao_member_coupon",
        "douyin_member_coupon",
    }
    cursor = mine["ledger"]["pageInfo"]["endCursor"]
    rest = await run(
        "query($after: String) { myLoyalty { ledger(first: 10, after: $after) "
        "{ edges { node { delta } } pageInfo { hasNextPage } } } }",
        member_token(member),
        after=cursor,
    )
    assert [e["node"]["delta"] for e in rest["myLoyalty"]["ledger"]["edges"]] == [1000]


async def test_whole_loyalty_query_is_a_fixed_number_of_statements(run, ledger):
    async with ledger.unit_of_work() as s:
        members = [await _member(s, f"c{i}", 1 + i * 4) for i in range(6)]
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    fields = " ".join(
        f'm{i}: memberLoyalty(memberId: "{m}") {{ {LOYALTY} }}' for i, m in enumerate(members)
    )
    event.listen(ledger.engine.sync_engine, "before_cursor_execute", count)
    try:
        await run(f"query($first: Int) {{ {fields.split(' m1:')[0]} }}", AGENT, first=50)
        one = len(statements)
        statements.clear()
        await run(f"query($first: Int) {{ {fields} }}", AGENT, first=50)
        six = len(statements)
    finally:
        event.remove(ledger.engine.sync_engine, "before_cursor_execute", count)
    assert one == six
    assert six <= 6


async def test_agents_adjust_points_and_members_claim_benefits(run, ledger):
    async with ledger.unit_of_work() as s:
        member = await _member(s, "c1", 1)
    adjust = """mutation($input: AdjustPointsInput!) { adjustPoints(input: $input) {
      __typename ... on AdjustPointsSuccess { available replayed }
      ... on AdjustmentRejected { code } ... on InsufficientPoints { requested available } } }"""
    base = {"memberId": str(member), "reason": "测试补偿", "idempotencyKey": "k1"}
    done = await run(adjust, AGENT, input={**base, "amount": 200})
    again = await run(adjust, AGENT, input={**base, "amount": 200})
    big = await run(adjust, AGENT, input={**base, "amount": 10**6, "idempotencyKey": "k2"})
    short = await run(adjust, AGENT, input={**base, "amount": -5000, "idempotencyKey": "k3"})
    assert done["adjustPoints"] == {
        "__typename": "AdjustPointsSuccess",
        "available": 1200,
        "replayed": False,
    }
    assert again["adjustPoints"]["replayed"] is True
    assert big["adjustPoints"] == {"__typename": "AdjustmentRejected", "code": "INVALID_ADJUSTMENT"}
    assert short["adjustPoints"]["__typename"] == "InsufficientPoints"

    claim = """mutation($input: ClaimBenefitInput!) { claimBenefit(input: $input) {
      __typename ... on ClaimBenefitSuccess { remaining } ... on NotEntitled { minTier } } }"""
    ok = await run(
        claim, member_token(member), input={"code": "store_birthday_gift", "idempotencyKey": "a"}
    )
    no = await run(
        claim, member_token(member), input={"code": "hotel_room_upgrade", "idempotencyKey": "b"}
    )
    assert ok["claimBenefit"] == {"__typename": "ClaimBenefitSuccess", "remaining": 0}
    assert no["claimBenefit"] == {"__typename": "NotEntitled", "minTier": "V6"}


async def test_members_cannot_read_others_and_agents_get_null_for_unknown_members(
    run, schema, settings, ledger
):
    async with ledger.unit_of_work() as s:
        member = await _member(s, "c1", 1)
    services = Services(settings, ledger, settings.keyring())
    denied = await schema.execute(
        f'{{ memberLoyalty(memberId: "{member}") {{ memberId }} }}',
        context_value=services.context(member_token(member)),
    )
    assert denied.errors
    assert "PERMISSION_DENIED" in denied.errors[0].message
    data = await run('{ memberLoyalty(memberId: "999999") { memberId } }', AGENT)
    assert data == {"memberLoyalty": None}
    async with ledger.read() as s:
        # The member's attempt is audited (the agent's lookup of an unknown member is not).
        actions = (await s.execute(text("SELECT action FROM audit_log"))).scalars().all()
    assert actions == ["access.denied"]
