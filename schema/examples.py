"""The example operations GraphiQL opens with in dev: one tab per audience.

They are the same operations the docs show (and that tests execute), so the first thing a
front-end engineer, a partner or an agent runs in GraphiQL is known to work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

EXAMPLES: tuple[tuple[str, str, str], ...] = (
    (
        "member",
        "Member: my profile, points and ledger",
        """# As a member (the token's member id is the only one this can read).
query Me {
  me {
    profile { name sourceRecords { source businessLine } }
    tier { code name growth nextTier progress retention }
    points { available pending expiringSoon { amount expiresAt } byBusinessLine { line available } }
    ledger(first: 10) { edges { node { at code delta reason } } pageInfo { hasNextPage endCursor } }
    benefits { code line remaining }
  }
}

# Spend points earned anywhere in the group at the store: a hold, captured by the till.
mutation Redeem {
  redeemPoints(input: {line: "store", points: 100, orderRef: "GRAPHIQL-1", idempotencyKey: "graphiql-1"}) {
    __typename
    ... on RedeemPointsSuccess { redemption { id state points lots { issuerLine points } } }
    ... on InsufficientPoints { requested available }
  }
}
""",
    ),
    (
        "agent",
        "Agent: find, explain, review",
        """# As customer service: PII is masked; unmask needs a reason and is audited.
query Find {
  searchMembers(query: "138", first: 5) { id name identifiers { kind value } }
}

query Profile {
  member(id: "1") {
    id name sourceRecords { source businessLine identifiers { kind value verified } }
    links { rule scoreBits explain }
    loyalty { tier { code } points { available byBusinessLine { line available } } }
  }
}

query Queue {
  reviewQueue(first: 5) { edges { node { id reason scoreBits explain } } }
}
""",
    ),
    (
        "partner",
        "Partner: push members and sales",
        """# As a partner business line: idempotent by (source, sourceKey) / (source, externalId).
mutation PushSales {
  ingestActivities(input: {items: [{
    source: "pos", externalId: "GRAPHIQL:01:000001", kind: PURCHASE, status: CONFIRMED,
    occurredAt: "2026-11-01T15:02:11+08:00", sourceKey: "88000000001", amountFen: 18700
  }]}) {
    __typename
    ... on IngestResult { read new unchanged updated rejected errors { index field reason } }
  }
}
""",
    ),
    (
        "admin",
        "Admin: settlement between lines",
        """query Settlement {
  settlement(period: "2026-10") {
    period state tiesOut
    pairs { issuerLine redeemingLine points amountFen }
    netted { payerLine payeeLine points amountFen }
  }
}
""",
    ),
)


def default_tabs(tokens: Mapping[str, str] | None = None) -> str:
    """GraphiQL's ``defaultTabs`` as JSON; with demo tokens, each tab is signed in already."""
    tabs = []
    for role, _title, query in EXAMPLES:
        token = (tokens or {}).get(role, f"<a {role} token: hub token --role {role} …>")
        tabs.append({"query": query, "headers": json.dumps({"Authorization": f"Bearer {token}"})})
    return json.dumps(tabs, ensure_ascii=False)
