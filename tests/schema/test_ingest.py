from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from hub.core.db import Database
from tests.schema.conftest import token_for

SAMPLES = Path(__file__).resolve().parent.parent / "connectors" / "samples"

PUSH_RECORDS = """
mutation Push($input: IngestSourceRecordsInput!) {
  ingestSourceRecords(input: $input) {
    __typename
    ... on IngestResult { read new unchanged updated rejected errors { index field reason } }
    ... on TooManyItems { limit }
    ... on BusinessLineNotAllowed { message }
  }
}"""

PUSH_ACTIVITIES = """
mutation Push($input: IngestActivitiesInput!) {
  ingestActivities(input: $input) {
    __typename
    ... on IngestResult { read new unchanged updated rejected errors { index field reason } }
    ... on BusinessLineNotAllowed { message }
  }
}"""


def _record(key: str, phone: str = "13800000001") -> dict[str, Any]:
    return {
        "source": "pos",
        "sourceKey": key,
        "observedAt": "2026-03-01T10:00:00+08:00",
        "identifiers": [{"kind": "PHONE", "value": phone, "verified": True}],
        "name": "测试甲",
    }


async def test_partner_pushes_records_idempotently(execute: Any, db: Database) -> None:
    payload = {"items": [_record("88000000001"), _record("88000000002", "13800000002")]}
    first = await execute(PUSH_RECORDS, as_="partner", input=payload)
    assert first.errors is None
    assert first.data["ingestSourceRecords"] == {
        "__typename": "IngestResult",
        "read": 2,
        "new": 2,
        "unchanged": 0,
        "updated": 0,
        "rejected": 0,
        "errors": [],
    }
    again = await execute(PUSH_RECORDS, as_="partner", input=payload)
    assert again.data["ingestSourceRecords"]["unchanged"] == 2
    async with db.read() as session:
        line = await session.scalar(text("SELECT DISTINCT business_line FROM source_record"))
    assert line == "store"  # from the partner's token


async def test_bad_items_are_rejected_by_index_and_the_rest_land(execute: Any) -> None:
    items = [_record("A"), _record("B", phone="12345"), {**_record("C"), "source": "Not A Slug"}]
    result = await execute(PUSH_RECORDS, as_="partner", input={"items": items})
    body = result.data["ingestSourceRecords"]
    assert (body["new"], body["rejected"]) == (1, 2)
    assert body["errors"][0] == {
        "index": 1,
        "field": "identifiers[0].value",
        "reason": "phone is not a valid number for its country",
    }
    assert body["errors"][1]["field"] == "source"


async def test_more_than_1000_items_is_a_typed_error(execute: Any) -> None:
    items = [_record(f"K{i}") for i in range(1001)]
    result = await execute(PUSH_RECORDS, as_="partner", input={"items": items})
    assert result.data["ingestSourceRecords"] == {"__typename": "TooManyItems", "limit": 1000}


async def test_a_partner_cannot_push_another_lines_data(execute: Any) -> None:
    result = await execute(
        PUSH_RECORDS, as_="partner", input={"items": [_record("A")], "businessLine": "hotel"}
    )
    assert result.data["ingestSourceRecords"]["__typename"] == "BusinessLineNotAllowed"


@pytest.mark.parametrize("who", ["anonymous", "member", "agent"])
async def test_only_partners_and_admins_push(execute: Any, who: str) -> None:
    result = await execute(PUSH_RECORDS, as_=who, input={"items": [_record("A")]})
    assert result.data is None
    assert result.errors[0].message.startswith(("PERMISSION_DENIED", "NOT_AUTHENTICATED"))


async def test_activities_status_changes_are_updates(execute: Any) -> None:
    sale = {
        "source": "pos",
        "externalId": "S1:01:1",
        "kind": "PURCHASE",
        "occurredAt": "2026-03-01T10:00:00+08:00",
        "status": "PENDING",
        "sourceKey": "88000000001",
        "amountFen": 12900,
    }
    assert (await execute(PUSH_ACTIVITIES, as_="partner", input={"items": [sale]})).data[
        "ingestActivities"
    ]["new"] == 1
    done = await execute(
        PUSH_ACTIVITIES, as_="partner", input={"items": [{**sale, "status": "CONFIRMED"}]}
    )
    assert done.data["ingestActivities"]["updated"] == 1


async def test_http_ingest_runs_the_connector_for_the_partners_line(
    client: Any, db: Database
) -> None:
    body = (SAMPLES / "pos_receipts.csv").read_bytes()
    ok = await client.post(
        "/ingest/pos",
        content=body,
        headers={"Authorization": f"Bearer {token_for('partner')}", "X-Filename": "receipts.csv"},
    )
    assert ok.status_code == 200, ok.text
    report = ok.json()
    assert report["new"] > 0
    assert "receipts.csv" in report["files"]
    async with db.read() as session:
        assert await session.scalar(text("SELECT count(*) FROM activity WHERE source = 'pos'")) > 0


async def test_http_ingest_refuses_other_lines_wrong_files_and_anonymous(client: Any) -> None:
    body = (SAMPLES / "hotel_stays.csv").read_bytes()
    partner = {"Authorization": f"Bearer {token_for('partner')}"}
    assert (await client.post("/ingest/hotel", content=body, headers=partner)).status_code == 403
    wrong = await client.post("/ingest/pos", content=body, headers=partner)
    assert wrong.status_code == 422
    assert "is not a pos file" in wrong.json()["refused_files"]["pos"]
    assert (await client.post("/ingest/pos", content=body)).status_code == 403
    assert (await client.post("/ingest/nosuch", content=body, headers=partner)).status_code == 404
    assert (await client.post("/ingest/pos", content=b"", headers=partner)).status_code == 400
