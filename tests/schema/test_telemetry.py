from __future__ import annotations

from typing import Any

from tests.schema.conftest import token_for

CANARY_PHONE = "13899990001"
CANARY_NAME = "测试金丝雀"

PUSH = """
mutation {
  ingestSourceRecords(input: {items: [{
    source: "pos", sourceKey: "CANARY-1", observedAt: "2026-03-01T10:00:00+08:00",
    name: "@NAME@", identifiers: [{kind: PHONE, value: "@PHONE@", verified: true}]}]}) {
    __typename
  }
}""".replace("@NAME@", CANARY_NAME).replace("@PHONE@", CANARY_PHONE)


def _everything(spans: Any) -> str:
    parts = []
    for span in spans:
        parts.append(span.name)
        parts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            parts.append(event.name)
            parts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    return "\n".join(parts)


async def test_requests_are_traced_without_pii(client: Any, span_exporter: Any) -> None:
    span_exporter.clear()
    headers = {"Authorization": f"Bearer {token_for('partner')}"}
    literal = await client.post("/graphql", json={"query": PUSH}, headers=headers)
    assert literal.json()["data"]["ingestSourceRecords"]["__typename"] == "IngestResult"
    variables = await client.post(
        "/graphql",
        json={
            "query": "mutation($i: IngestSourceRecordsInput!) { ingestSourceRecords(input: $i) { __typename } }",
            "variables": {
                "i": {
                    "items": [
                        {
                            "source": "pos",
                            "sourceKey": "CANARY-2",
                            "observedAt": "2026-03-01T10:00:00+08:00",
                            "name": CANARY_NAME,
                            "identifiers": [{"kind": "PHONE", "value": CANARY_PHONE}],
                        }
                    ]
                }
            },
        },
        headers=headers,
    )
    assert variables.status_code == 200
    spans = span_exporter.get_finished_spans()
    names = {s.name for s in spans}
    assert "HTTP POST /graphql" in names
    assert any(n.startswith("GraphQL") for n in names)
    assert any(s.name == "ingest.batch" for s in spans)
    text = _everything(spans)
    assert CANARY_PHONE not in text
    assert CANARY_NAME not in text
    assert "query=sha256:" in text
