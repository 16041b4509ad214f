from __future__ import annotations
import json, time
from pathlib import Path
from typing import Any
import strawberry
from hub.app import Services
from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.tokens import Principal, Role
from hub.flows.hooks import default_hooks
from hub.generator import generate
from hub.importer import run_import
from tests.schema.conftest import gql_schema, services  # noqa

Q = """
query { reviewQueue(first: 5) { edges { node { id scoreBits reason rule detail explain status
 recordA { id memberId source businessLine sourceKey identifiers { kind value verified } }
 recordB { id memberId source businessLine sourceKey identifiers { kind value verified } } } } }
 searchMembers(query: "测试", first: 3) { id name identifiers { kind value } }
}"""
M = """query($id: ID!) { member(id: $id) { id status name nameLatin gender birthYear address identifiers { kind value }
 sourceRecords { id source sourceKey businessLine observedAt pinned identifiers { kind value verified } }
 links { sourceRecordId linkedTo rule scoreBits explain createdBy }
 events { id kind at rule actor fromMember toMember sourceRecordId operation }
 loyalty { tier { code name growth nextTier progress retention periodEnd } points { available pending debt byBusinessLine { line available } expiringSoon { amount expiresAt } }
 ledger(first: 5) { edges { node { id at code delta pendingDelta reason } } pageInfo { hasNextPage endCursor } } benefits { code line description period remaining } } } }"""

async def test_scratch(gql_schema: strawberry.Schema, services: Services, db: Database, keyring: KeyRing, tmp_path: Path) -> None:
    t = time.time()
    generate(120, 3, tmp_path)
    print(sorted(p.name for p in tmp_path.iterdir()))
    await run_import(db=db, keyring=keyring, connector="auto", paths=[tmp_path], actor="t", hooks=default_hooks(keyring))
    print("import", time.time() - t)
    ctx = services.context(Principal("a", Role.AGENT, business_line="hotel"))
    for q in ["13800139884", "88000048271", "薛芳", "shuhuali2", "C000000001", "900001", "D000000001"]:
        r = await gql_schema.execute("query($q:String!){ searchMembers(query:$q, first:5){ id name sourceRecords{ source } loyalty { points { available byBusinessLine { line available } } } } }", variable_values={"q": q}, context_value=ctx)
        print(q, r.errors, json.dumps(r.data, ensure_ascii=False))
    r = await gql_schema.execute('mutation { resolveReview(input:{id:"2", decision: ACCEPT, reason:"x", idempotencyKey:"k1"}) { __typename ... on ReviewResolved { id status survivorId } ... on IdentityProblem { code message } } }', context_value=ctx)
    print(r.errors, r.data)
