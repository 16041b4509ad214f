"""`me` for a member token, and the same loyalty view under `member(id)` for agents, over data
that came in through the real connectors, identity resolution and accrual."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import strawberry
from sqlalchemy import event, text

from hub.app import Services
from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.tokens import Principal, Role
from hub.flows.hooks import default_hooks
from hub.generator import generate
from hub.importer import run_import
from hub.loyalty import jobs
from hub.loyalty.program import configured_program

ME = """
query($first: Int) {
  me {
    memberId
    profile { id name identifiers { kind value } sourceRecords { source businessLine } }
    tier { code name growth nextTier progress }
    points { available pending expiringSoon { amount expiresAt } byBusinessLine { line available } }
    ledger(first: $first) { edges { node { delta code } } pageInfo { hasNextPage endCursor } }
    benefits { code line remaining }
  }
}"""

AGENT_VIEW = """
query($id: ID!) { member(id: $id) { id name loyalty { points { available } tier { code } } } }"""


@pytest.fixture
async def landed(db: Database, keyring: KeyRing, tmp_path: Path) -> list[tuple[int, int]]:
    generate(120, 3, tmp_path)
    await run_import(
        db=db,
        keyring=keyring,
        connector="auto",
        paths=[tmp_path],
        actor="t",
        hooks=default_hooks(keyring),
    )
    # What the scheduler does every night: pending points come due, old points expire.
    program = configured_program()
    today = datetime.now(UTC)
    async with db.unit_of_work() as session:
        await jobs.release_pending(session=session, program=program, as_of=today)
    async with db.unit_of_work() as session:
        await jobs.expire(session=session, program=program, as_of=today)
    async with db.read() as session:
        rows = await session.execute(
            text(
                "SELECT a.member_id, count(t.id) FROM loyalty_account a "
                "JOIN loyalty_transfer t ON t.credit_account = a.id OR t.debit_account = a.id "
                "WHERE a.kind = 'member_available' AND a.balance > 0 "
                "GROUP BY a.member_id ORDER BY count(t.id) DESC"
            )
        )
        return [(int(m), int(n)) for m, n in rows]


async def _as(
    schema: strawberry.Schema, services: Services, principal: Principal, query: str, **v: Any
) -> Any:
    return await schema.execute(query, variable_values=v, context_value=services.context(principal))


async def test_a_member_sees_profile_points_and_ledger_from_every_line(
    gql_schema: strawberry.Schema, services: Services, landed: list[tuple[int, int]]
) -> None:
    member, transfers = landed[0]
    result = await _as(
        gql_schema, services, Principal("m", Role.MEMBER, member_id=member), ME, first=5
    )
    assert result.errors is None, result.errors
    me = result.data["me"]
    assert me["memberId"] == str(member)
    assert me["points"]["available"] > 0
    assert me["profile"]["sourceRecords"]
    assert len(me["ledger"]["edges"]) == min(5, transfers)
    assert sum(b["available"] for b in me["points"]["byBusinessLine"]) == me["points"]["available"]
    assert "*" in (me["profile"]["name"] or "*")  # masked even for the member's own screen


async def test_agents_get_the_same_loyalty_view_under_member(
    gql_schema: strawberry.Schema, services: Services, landed: list[tuple[int, int]]
) -> None:
    member, _ = landed[0]
    mine = await _as(
        gql_schema, services, Principal("m", Role.MEMBER, member_id=member), ME, first=1
    )
    agent = await _as(
        gql_schema,
        services,
        Principal("a", Role.AGENT, business_line="hotel"),
        AGENT_VIEW,
        id=str(member),
    )
    assert agent.errors is None
    assert (
        agent.data["member"]["loyalty"]["points"]["available"]
        == mine.data["me"]["points"]["available"]
    )
    denied = await _as(
        gql_schema,
        services,
        Principal("m", Role.MEMBER, member_id=member),
        AGENT_VIEW,
        id=str(member),
    )
    assert denied.data == {"member": None}
    assert denied.errors[0].message.startswith("PERMISSION_DENIED")


async def test_me_costs_the_same_statements_whatever_the_history(
    gql_schema: strawberry.Schema, services: Services, db: Database, landed: list[tuple[int, int]]
) -> None:
    busiest, quietest = landed[0], landed[-1]
    assert busiest[1] > quietest[1]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        counts = []
        for member, _ in (busiest, quietest):
            statements.clear()
            result = await _as(
                gql_schema, services, Principal("m", Role.MEMBER, member_id=member), ME, first=20
            )
            assert result.errors is None
            counts.append(len(statements))
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert counts[0] == counts[1]
    # profile, records, points, tier, claims and the ledger page: one statement
    assert counts[0] == 1


AGENT_PROFILE = """
query($id: ID!) { member(id: $id) {
  id name identifiers { kind value }
  sourceRecords { source sourceKey businessLine identifiers { kind value verified } }
  links { rule scoreBits explain }
  events { kind rule }
  loyalty {
    tier { code growth }
    points { available expiringSoon { amount } byBusinessLine { line available } }
    ledger(first: 20) { edges { node { delta code } } pageInfo { hasNextPage } }
    benefits { code remaining }
  } } }"""


async def test_the_agent_profile_costs_the_same_statements_and_one_checkout_whatever_the_history(
    gql_schema: strawberry.Schema, services: Services, db: Database, landed: list[tuple[int, int]]
) -> None:
    busiest, quietest = landed[0], landed[-1]
    agent = Principal("a", Role.AGENT, business_line="hotel")
    statements: list[str] = []
    checkouts: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def checkout(*args: Any) -> None:
        checkouts.append(1)

    pool = db.engine.sync_engine.pool
    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    event.listen(pool, "checkout", checkout)
    try:
        counts = []
        for member, _ in (busiest, quietest):
            statements.clear()
            checkouts.clear()
            result = await _as(gql_schema, services, agent, AGENT_PROFILE, id=str(member))
            assert result.errors is None, result.errors
            assert result.data["member"]["sourceRecords"]
            assert result.data["member"]["links"]
            counts.append(len(statements))
            # every loader batch of the request shared one read session
            assert len(checkouts) == 1
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        event.remove(pool, "checkout", checkout)
    assert counts[0] == counts[1]
    # member, records with their identifiers, links, events, points, tier, claims and the
    # ledger page: one statement (schema/profile_reads.py)
    assert counts[0] == 1
    assert pool.checkedout() == 0  # the request's session was closed when the operation ended


FRAGMENTED = """
fragment Lines on MemberLoyalty { points { byBusinessLine { line available } } }
query($id: ID!, $first: Int, $after: String) { member(id: $id) {
  ... on MemberProfile { sourceRecords { id identifiers { kind value } } }
  events { kind }
  loyalty { ...Lines tier { code growth } ledger(first: $first, after: $after) {
    edges { cursor node { id delta } } pageInfo { hasNextPage endCursor } } } } }"""


@pytest.mark.parametrize("query", [AGENT_PROFILE, FRAGMENTED])
async def test_the_one_statement_view_answers_as_the_loaders_alone(
    gql_schema: strawberry.Schema, services: Services, landed: list[tuple[int, int]], query: str
) -> None:
    from schema.profile_reads import ProfileReads

    agent = Principal("a", Role.AGENT, business_line="hotel")

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async def run(prefetch: bool, **v: Any) -> Any:
        context = services.context(agent)
        if not prefetch:
            context.loaders.extra["profile"] = ProfileReads(None)
        statements.clear()
        event.listen(services.db.engine.sync_engine, "before_cursor_execute", count)
        try:
            result = await gql_schema.execute(query, variable_values=v, context_value=context)
        finally:
            event.remove(services.db.engine.sync_engine, "before_cursor_execute", count)
        assert result.errors is None, result.errors
        assert len(statements) == 1 if prefetch else len(statements) > 1
        return result.data

    for member, _ in (landed[0], landed[-1]):
        first = await run(True, id=str(member), first=3)
        assert first == await run(False, id=str(member), first=3)
        if query is FRAGMENTED:
            after = first["member"]["loyalty"]["ledger"]["pageInfo"]["endCursor"]
            second = await run(True, id=str(member), first=3, after=after)
            assert second == await run(False, id=str(member), first=3, after=after)
    missing = await run(True, id="999999999", first=3)
    assert missing == {"member": None}


async def test_me_in_one_statement_answers_as_the_loaders_alone(
    gql_schema: strawberry.Schema, services: Services, landed: list[tuple[int, int]]
) -> None:
    from schema.profile_reads import ProfileReads

    for member, _ in (landed[0], landed[-1]):
        answers = []
        for prefetch in (True, False):
            context = services.context(Principal("m", Role.MEMBER, member_id=member))
            if not prefetch:
                context.loaders.extra["profile"] = ProfileReads(None)
            result = await gql_schema.execute(
                ME, variable_values={"first": 4}, context_value=context
            )
            assert result.errors is None, result.errors
            answers.append(result.data)
        assert answers[0] == answers[1]
