from __future__ import annotations

from typing import Any

import pytest
import strawberry
from sqlalchemy import event, text
from strawberry.tools import merge_types

from hub.app import Services
from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.records import Activity, ActivityKind, ActivityStatus
from hub.core.settings import Settings
from schema.identity.mutations import IdentityMutation
from schema.identity.queries import IdentityQuery
from schema.limits import extensions
from schema.viewer.queries import ViewerQuery
from tests.identity_store.conftest import T0, Land, member_of, person, phone, scalar
from tests.schema.conftest import PRINCIPALS


@pytest.fixture(scope="module")
def identity_schema() -> strawberry.Schema:
    # Composed the way schema/__init__.py composes the domains.
    return strawberry.Schema(
        query=merge_types("Query", (ViewerQuery, IdentityQuery)),
        mutation=merge_types("Mutation", (IdentityMutation,)),
        extensions=extensions(max_depth=12, max_tokens=2000, max_aliases=30, introspection=True),
    )


@pytest.fixture
def gql(identity_schema: strawberry.Schema, settings: Settings, db: Database) -> Any:
    services = Services(settings, db, settings.keyring())

    async def run(query: str, as_: str = "agent", **variables: Any) -> Any:
        ctx = services.context(PRINCIPALS[as_])
        return await identity_schema.execute(query, variable_values=variables, context_value=ctx)

    return run


SALE = Activity(
    source="taobao",
    external_id="T202500001",
    kind=ActivityKind.PURCHASE,
    business_line="ecommerce",
    occurred_at=T0,
    status=ActivityStatus.CONFIRMED,
    source_key="nick-1",
    amount_fen=9900,
)


async def _world(land: Land) -> None:
    await land(
        [
            person(
                "app",
                "u1",
                phone("+8613800001111"),
                ("wechat_unionid", "oU-test-1", {"scope": "wx"}),
            ),
            person(
                "pos", "c1", phone("+8613800001111"), ("card_no", "8800001", {"scope": "brand"})
            ),
            person("taobao", "nick-1", ("taobao_nick", "测试小铺买家"), name="样例乙", city="杭州"),
            SALE,
        ]
    )


MEMBER = """
query($id: ID!) { member(id: $id) { id status name identifiers { kind value }
  sourceRecords { id source sourceKey identifiers { kind value verified } }
  links { sourceRecordId rule explain } events { id kind } } }
"""


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        ("13800001111", "app"),
        ("+86 138 0000 1111", "app"),
        ("8800001", "app"),
        ("oU-test-1", "app"),
        ("测试甲", "app"),
        ("测试小铺买家", "taobao"),
        ("T202500001", "taobao"),
    ],
)
async def test_agents_find_members_by_any_key_and_see_masked_values(
    db: Database, land: Land, gql: Any, query: str, expect: str
) -> None:
    await _world(land)
    result = await gql(
        "query($q: String!) { searchMembers(query: $q) { id name identifiers { value } "
        "sourceRecords { source sourceKey } } }",
        q=query,
    )
    assert result.errors is None
    found = result.data["searchMembers"]
    assert len(found) == 1
    assert expect in {r["source"] for r in found[0]["sourceRecords"]}
    text = str(result.data)
    for secret in ("13800001111", "测试甲", "8800001", "oU-test-1"):
        assert secret not in text


async def test_member_view_has_records_links_explain_and_only_masked_pii(
    db: Database, land: Land, gql: Any
) -> None:
    await _world(land)
    m = await member_of(db, "app", "u1")
    result = await gql(MEMBER, id=str(m))
    assert result.errors is None
    view = result.data["member"]
    assert view["name"] == "测**"
    assert {i["value"] for i in view["identifiers"]} >= {"138****1111"}
    assert len(view["sourceRecords"]) == 2
    rules = {link["rule"] for link in view["links"]}
    assert rules == {"first", "key:phone"}
    explained = next(x for x in view["links"] if x["rule"] == "key:phone")["explain"]
    assert explained["comparisons"]
    assert "13800001111" not in str(result.data)
    assert "8800001" not in str(result.data)


@pytest.mark.parametrize("role", ["anonymous", "member", "partner"])
async def test_only_agents_may_use_identity_fields(
    db: Database, land: Land, gql: Any, role: str
) -> None:
    await _world(land)
    for query in (
        '{ searchMembers(query: "13800001111") { id } }',
        '{ member(id: "1") { id } }',
        "{ reviewQueue { edges { cursor } } }",
        'mutation { unmaskMember(input: {memberId: "1", reason: "x"}) { __typename } }',
    ):
        result = await gql(query, as_=role)
        assert result.errors, (role, query)
        assert result.errors[0].extensions["code"] in ("NOT_AUTHENTICATED", "PERMISSION_DENIED")


async def test_erasure_needs_an_admin(db: Database, land: Land, gql: Any) -> None:
    await _world(land)
    m = await member_of(db, "app", "u1")
    mutation = (
        'mutation($id: ID!) { eraseMember(input: {memberId: $id, reason: "PIPL", '
        'idempotencyKey: "e1"}) { __typename ... on MemberErasedSuccess { sourceRecords } } }'
    )
    denied = await gql(mutation, as_="agent", id=str(m))
    assert denied.errors[0].extensions["code"] == "PERMISSION_DENIED"
    done = await gql(mutation, as_="admin", id=str(m))
    assert done.data["eraseMember"] == {"__typename": "MemberErasedSuccess", "sourceRecords": 2}
    again = await gql(mutation, as_="admin", id=str(m))
    assert again.data == done.data


MERGE = """
mutation($a: ID!, $b: ID!, $key: String!) { mergeMembers(input: {memberA: $a, memberB: $b,
  reason: "same person", idempotencyKey: $key}) {
  __typename ... on MembersMerged { survivorId absorbedId operation }
  ... on IdentityProblem { code message } } }
"""


async def test_mutations_are_audited_idempotent_and_return_typed_errors(
    db: Database, land: Land, gql: Any
) -> None:
    await _world(land)
    a, b = await member_of(db, "app", "u1"), await member_of(db, "taobao", "nick-1")
    first = await gql(MERGE, a=str(a), b=str(b), key="m-1")
    assert first.data["mergeMembers"]["__typename"] == "MembersMerged"
    replay = await gql(MERGE, a=str(a), b=str(b), key="m-1")
    assert replay.data == first.data
    assert await scalar(db, "SELECT count(*) FROM audit_log WHERE action = 'identity.merge'") == 1
    again = await gql(MERGE, a=str(a), b=str(b), key="m-2")
    assert again.data["mergeMembers"]["__typename"] == "AlreadyMergedError"
    missing = await gql(MERGE, a="999999", b=str(a), key="m-3")
    assert missing.data["mergeMembers"]["code"] == "MEMBER_NOT_FOUND"

    unmerge = """mutation($m: ID!) { unmergeMember(input: {memberId: $m, reason: "wrong",
      idempotencyKey: "u-1"}) { __typename ... on MemberUnmerged { restoredMemberIds } } }"""
    undone = await gql(unmerge, m=str(a))
    assert undone.data["unmergeMember"]["restoredMemberIds"] == [str(b)]
    assert (await gql(unmerge, m=str(a))).data == undone.data

    record = await scalar(db, "SELECT id FROM source_record WHERE source = 'pos'")
    move = """mutation($r: ID!) { moveSourceRecord(input: {sourceRecordId: $r, reason: "split",
      idempotencyKey: "mv-1"}) { __typename ... on SourceRecordMoved { fromMemberId toMemberId } } }"""
    moved = await gql(move, r=str(record))
    assert moved.data["moveSourceRecord"]["__typename"] == "SourceRecordMoved"
    assert (await gql(move, r=str(record))).data == moved.data

    unmask = """mutation($m: ID!) { unmaskMember(input: {memberId: $m, reason: "caller verified"})
      { __typename ... on UnmaskedMember { name identifiers } } }"""
    clear = await gql(unmask, m=str(a))
    assert clear.data["unmaskMember"]["name"] == "测试甲"
    actions = await scalar(db, "SELECT array_agg(action ORDER BY id) FROM audit_log")
    assert actions == ["identity.merge", "identity.unmerge", "identity.move", "identity.unmask"]


async def test_review_queue_pages_and_resolves(db: Database, land: Land, gql: Any) -> None:
    for n in range(3):
        await land(
            [
                person(
                    "app", f"u{n}", phone(f"+861380000{n}333"), ("id_document", f"PASSPORT:E0{n}1")
                ),
                person(
                    "hotel",
                    f"h{n}",
                    phone(f"+861380000{n}333"),
                    ("id_document", f"PASSPORT:E0{n}2"),
                ),
            ]
        )
    page = "query($after: String) { reviewQueue(first: 2, after: $after) { edges { cursor node { id reason recordA { source } recordB { source } } } pageInfo { hasNextPage endCursor } } }"
    first = await gql(page)
    assert first.errors is None
    conn = first.data["reviewQueue"]
    assert len(conn["edges"]) == 2
    assert conn["pageInfo"]["hasNextPage"] is True
    seen = [e["node"]["id"] for e in conn["edges"]]
    while conn["pageInfo"]["hasNextPage"]:
        conn = (await gql(page, after=conn["pageInfo"]["endCursor"])).data["reviewQueue"]
        seen += [e["node"]["id"] for e in conn["edges"]]
    total = await scalar(db, "SELECT count(*) FROM review_item WHERE status = 'open'")
    assert len(seen) == len(set(seen)) == total >= 3
    conn = first.data["reviewQueue"]
    item = conn["edges"][0]["node"]
    assert item["reason"] == "conflicting_strong_keys"
    resolve = """mutation($id: ID!) { resolveReview(input: {id: $id, decision: REJECT,
      reason: "two people", idempotencyKey: "r-1"}) { __typename ... on ReviewResolved { status }
      ... on IdentityProblem { code } } }"""
    done = await gql(resolve, id=item["id"])
    assert done.data["resolveReview"] == {"__typename": "ReviewResolved", "status": "rejected"}
    assert (await gql(resolve, id=item["id"])).data == done.data  # replay
    other = resolve.replace("r-1", "r-2")
    assert (await gql(other, id=item["id"])).data["resolveReview"]["code"] == (
        "REVIEW_ALREADY_RESOLVED"
    )


async def test_review_queue_orders_most_likely_first_in_keyset_pages(
    db: Database, land: Land, gql: Any
) -> None:
    await land([person("app", f"u{n}", phone(f"+86139000{n}4444")) for n in range(6)])
    records = await scalar(db, "SELECT array_agg(id ORDER BY id) FROM source_record")
    scores = [5.0, 12.5, -1.25, 12.5, 30.0, 0.1]
    pairs = [(records[i], records[j]) for i in range(6) for j in range(i + 1, 6)][: len(scores)]
    async with db.unit_of_work() as session:
        await session.execute(text("DELETE FROM review_item"))
        for (a, b), score in zip(pairs, scores, strict=True):
            await session.execute(
                text(
                    "INSERT INTO review_item (record_a, record_b, score, reason) "
                    "VALUES (:a, :b, :s, 'score_between_thresholds')"
                ),
                {"a": a, "b": b, "s": score},
            )
    rows = await scalar(db, "SELECT array_agg(id ORDER BY id) FROM review_item")
    page = """query($after: String, $order: ReviewOrder!) {
      reviewQueue(first: 2, after: $after, orderBy: $order) {
        edges { cursor node { id scoreBits } } pageInfo { hasNextPage hasPreviousPage endCursor } } }"""

    async def walk(order: str) -> list[tuple[int, float]]:
        seen: list[tuple[int, float]] = []
        after = None
        while True:
            got = await gql(page, after=after, order=order)
            assert got.errors is None, got.errors
            conn = got.data["reviewQueue"]
            assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
            seen += [(int(e["node"]["id"]), e["node"]["scoreBits"]) for e in conn["edges"]]
            if not conn["pageInfo"]["hasNextPage"]:
                return seen
            after = conn["pageInfo"]["endCursor"]

    by_id = list(zip(rows, scores, strict=True))
    likely = await walk("MOST_LIKELY")
    assert likely == sorted(by_id, key=lambda item: (-item[1], item[0]))
    assert [s for _, s in likely] == [30.0, 12.5, 12.5, 5.0, 0.1, -1.25]
    assert await walk("OLDEST") == by_id

    # A resolved item drops out; a cursor taken before stays a valid position.
    first = await gql(page, order="MOST_LIKELY")
    cursor = first.data["reviewQueue"]["pageInfo"]["endCursor"]
    await db_execute(db, "UPDATE review_item SET status = 'rejected' WHERE score = 12.5")
    rest = await gql(page, after=cursor, order="MOST_LIKELY")
    assert [e["node"]["scoreBits"] for e in rest.data["reviewQueue"]["edges"]] == [5.0, 0.1]

    # A cursor of the other order, or none at all, is the caller's error, not page one again.
    oldest = await gql(page, order="OLDEST")
    foreign = await gql(
        page, after=oldest.data["reviewQueue"]["pageInfo"]["endCursor"], order="MOST_LIKELY"
    )
    assert foreign.data is None
    assert "not a cursor from this review queue in MOST_LIKELY order" in str(foreign.errors)
    garbage = await gql(page, after="not-a-cursor", order="OLDEST")
    assert "not a cursor from this review queue in OLDEST order" in str(garbage.errors)


async def db_execute(db: Database, sql: str) -> None:
    async with db.unit_of_work() as session:
        await session.execute(text(sql))


async def _count_statements(db: Database, work: Any) -> int:
    count = 0

    def on_execute(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        result = await work()
        assert result.errors is None, result.errors
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", on_execute)
    return count


@pytest.mark.parametrize("people", [1, 4])
async def test_list_fields_use_a_fixed_number_of_statements(
    db: Database, keyring: KeyRing, land: Land, gql: Any, people: int
) -> None:
    records = []
    for n in range(people):
        p = f"+86138000{n:02d}444"
        records += [
            person("app", f"u{n}", phone(p), ("id_document", f"PASSPORT:X{n}1")),
            person("hotel", f"h{n}", phone(p), ("id_document", f"PASSPORT:X{n}2")),
            person("pos", f"c{n}", phone(p, verified=False), ("card_no", f"77{n}", {"scope": "b"})),
        ]
    await land(records)
    search = await _count_statements(
        db,
        lambda: gql(
            '{ searchMembers(query: "测试甲") { sourceRecords { identifiers { value } } '
            "links { rule } events { kind } } }"
        ),
    )
    queue = await _count_statements(
        db,
        lambda: gql(
            "{ reviewQueue(first: 50) { edges { node { recordA { identifiers { value } } "
            "recordB { identifiers { value } } } } } }"
        ),
    )
    # search + members + records (with their identifiers) + links + events;
    # queue + records + identifiers
    assert (search, queue) == (5, 3)
