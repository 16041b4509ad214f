from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from hub.app import Services
from hub.core.tokens import Principal, Role
from hub.loyalty.program import default_program
from tests.redemption.gql import REDEEM, RESOLVE, build_schema
from tests.redemption.support import earn, make_member, shanghai


@pytest.fixture(scope="module")
def gql_schema():
    return build_schema()


@pytest.fixture
async def member(ledger) -> int:
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await earn(s, default_program(), member, 500, line="store", at=shanghai(2026, 1, 5))
    return member


@pytest.fixture
def execute(gql_schema, settings, ledger):
    services = Services(settings, ledger, settings.keyring())

    async def run(query: str, who: Principal, **variables: Any) -> dict[str, Any]:
        result = await gql_schema.execute(
            query, variable_values=variables, context_value=services.context(who)
        )
        assert result.errors is None, result.errors
        return result.data

    return run


def as_member(member: int) -> Principal:
    return Principal(subject=f"m-{member}", role=Role.MEMBER, member_id=member)


POS = Principal(subject="pos-1", role=Role.PARTNER, business_line="store")
AGENT = Principal(subject="agent-1", role=Role.AGENT, business_line="hotel")
ADMIN = Principal(subject="admin-1", role=Role.ADMIN)


def redeem_input(**extra: Any) -> dict[str, Any]:
    return {"line": "store", "points": 100, "orderRef": "POS-1", "idempotencyKey": "k1", **extra}


async def test_member_redeems_for_itself_and_captures(execute, member):
    data = await execute(REDEEM, as_member(member), input=redeem_input())
    hold = data["redeemPoints"]["redemption"]
    assert (hold["state"], hold["available"], hold["memberId"]) == ("PENDING", 400, str(member))
    data = await execute(
        RESOLVE,
        as_member(member),
        cap={"redemptionId": hold["id"], "points": 60},
        can={"redemptionId": hold["id"]},
    )
    assert data["captureRedemption"]["redemption"] == {
        "state": "CAPTURED",
        "capturedPoints": 60,
        "available": 440,
    }
    assert data["cancelRedemption"] == {"__typename": "AlreadyCaptured", "redemptionId": hold["id"]}


async def test_member_may_not_name_another_member(execute, member):
    data = await execute(REDEEM, as_member(member), input=redeem_input(memberId=str(member + 1)))
    assert data["redeemPoints"]["__typename"] == "RedemptionNotAllowed"


async def test_member_cannot_touch_another_members_hold(execute, member):
    data = await execute(REDEEM, as_member(member), input=redeem_input())
    hold_id = data["redeemPoints"]["redemption"]["id"]
    other = as_member(member + 1)
    data = await execute(
        RESOLVE, other, cap={"redemptionId": hold_id}, can={"redemptionId": hold_id}
    )
    assert data["captureRedemption"]["__typename"] == "RedemptionNotFound"
    assert data["cancelRedemption"]["__typename"] == "RedemptionNotFound"


ISSUE = """
mutation { issueRedemptionCode(input: {}) {
  ... on IssueRedemptionCodeSuccess { redemptionCode { code expiresAt } } } }
"""


async def test_point_of_sale_redeems_with_the_members_one_time_code(execute, member, ledger):
    code = (await execute(ISSUE, as_member(member)))["issueRedemptionCode"]["redemptionCode"][
        "code"
    ]
    data = await execute(REDEEM, POS, input=redeem_input(redemptionCode=code))
    assert data["redeemPoints"]["redemption"]["memberId"] == str(member)
    replay = await execute(REDEEM, POS, input=redeem_input(redemptionCode=code))
    assert replay["redeemPoints"]["redemption"]["replayed"] is True
    again = await execute(REDEEM, POS, input=redeem_input(redemptionCode=code, idempotencyKey="k2"))
    assert again["redeemPoints"]["__typename"] == "InvalidRedemptionCode"
    without = await execute(REDEEM, POS, input=redeem_input(idempotencyKey="k3"))
    assert without["redeemPoints"]["__typename"] == "RedemptionNotAllowed"
    elsewhere = await execute(REDEEM, POS, input=redeem_input(line="hotel", redemptionCode=code))
    assert elsewhere["redeemPoints"]["__typename"] == "RedemptionNotAllowed"
    async with ledger.read() as s:
        stored = await s.scalar(text("SELECT code_hash FROM redemption_code"))
    assert code not in stored


async def test_agent_redeems_with_a_reason_and_is_audited(execute, member, ledger):
    data = await execute(REDEEM, AGENT, input=redeem_input(memberId=str(member)))
    assert data["redeemPoints"]["__typename"] == "RedemptionNotAllowed"
    data = await execute(
        REDEEM, AGENT, input=redeem_input(memberId=str(member), reason="电话客服代客兑换")
    )
    assert data["redeemPoints"]["redemption"]["state"] == "PENDING"
    async with ledger.read() as s:
        row = (await s.execute(text("SELECT actor, action, subject, reason FROM audit_log"))).one()
    assert tuple(row) == (
        "agent-1",
        "loyalty.redeem_points",
        f"member:{member}",
        "电话客服代客兑换",
    )


async def test_typed_errors_and_idempotency_through_graphql(execute, member):
    who = as_member(member)
    short = await execute(REDEEM, who, input=redeem_input(points=501))
    assert short["redeemPoints"] == {
        "__typename": "InsufficientPoints",
        "requested": 501,
        "available": 500,
    }
    conflict = await execute(REDEEM, who, input=redeem_input(points=10))
    assert conflict["redeemPoints"] == {"__typename": "IdempotencyConflict", "field": "points"}
    nowhere = await execute(REDEEM, who, input=redeem_input(line="taobao", idempotencyKey="t"))
    assert nowhere["redeemPoints"] == {"__typename": "NotRedeemableHere", "line": "taobao"}
    bad = await execute(REDEEM, who, input=redeem_input(holdTtlS=1, idempotencyKey="t2"))
    assert bad["redeemPoints"] == {"__typename": "InvalidRedemption", "field": "holdTtlS"}


QUOTE = """
query($line: String!, $amount: Int, $member: ID) {
  quoteRedemption(line: $line, amountFen: $amount, memberId: $member) {
    __typename
    ... on RedemptionQuote { points amountFen available enough lots { issuerLine points } }
  }
}
"""


async def test_quote_for_member_and_agent(execute, member):
    data = await execute(QUOTE, as_member(member), line="store", amount=120)
    assert data["quoteRedemption"] == {
        "__typename": "RedemptionQuote",
        "points": 120,
        "amountFen": 120,
        "available": 500,
        "enough": True,
        "lots": [{"issuerLine": "store", "points": 120}],
    }
    data = await execute(QUOTE, AGENT, line="store", amount=120, member=str(member))
    assert data["quoteRedemption"]["points"] == 120


SETTLEMENT = "query($p: String!) { settlement(period: $p) { period state tiesOut csv } }"


async def test_settlement_is_for_admins(execute, gql_schema, settings, ledger):
    data = await execute(SETTLEMENT, ADMIN, p="2026-01")
    assert data["settlement"]["tiesOut"] is True
    services = Services(settings, ledger, settings.keyring())
    denied = await gql_schema.execute(
        SETTLEMENT, variable_values={"p": "2026-01"}, context_value=services.context(AGENT)
    )
    assert denied.errors
    assert "PERMISSION_DENIED" in denied.errors[0].message
