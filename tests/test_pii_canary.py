"""PII canaries: a phone, an ID number and a name pass through imports, resolution, searches,
views, merges and failed calls; afterwards none of them appears in any log line, span attribute,
error message, import report — or anywhere in a pg_dump of the database."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import pgserver
import pytest

from hub.app import Services
from hub.core.db import Database, plain_url
from hub.core.pii import KeyRing
from hub.core.telemetry import JsonFormatter
from hub.core.tokens import Principal, Role
from hub.flows.hooks import default_hooks
from hub.importer import run_import
from schema import build_schema

PHONE = "13899990007"
NAME = "测试金丝雀"
NAME_LATIN = "CESHI JINSIQUE"
EMAIL = "canary.jinsique@example.com"


def _id_number() -> str:
    body = "99010119850101123"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


ID_NUMBER = _id_number()
CANARIES = (PHONE, ID_NUMBER, NAME, NAME_LATIN, EMAIL, PHONE[3:])  # also the unmasked tail+middle


def _files(folder: Path) -> list[Path]:
    pos = folder / "pos_members.csv"
    pos.write_text(
        "card_no,phone,name,birthday,gender,store_id,enrolled_at\n"
        f"88000099001,{PHONE},{NAME},1985-01-01,FEMALE,S001,2026-01-01 10:00:00\n"
        # a bad row carrying the canary: it must be reported, masked
        f"88000099002,{PHONE},{NAME},not-a-date,FEMALE,S001,yesterday\n",
        encoding="utf-8",
    )
    hotel = folder / "hotel_profiles.ndjson"
    profile = {
        "profileIdList": [{"id": "990001", "type": "Profile"}],
        "profileDetails": {
            "customer": {
                "personName": [
                    {"givenName": "JINSIQUE", "surname": "CESHI", "nameType": "Primary"},
                    {"givenName": "金丝雀", "surname": "测试", "nameType": "Alternate"},
                ],
                "gender": "F",
                "birthDate": "1985-01-01",
                "identifications": {
                    "identificationInfo": [
                        {
                            "identification": {
                                "idType": "ID_CARD",
                                "idNumber": ID_NUMBER,
                                "issuedCountry": "CN",
                                "primaryInd": True,
                            }
                        }
                    ]
                },
            },
            "telephones": {
                "telephoneInfo": [
                    {
                        "telephone": {
                            "phoneTechType": "MOBILE",
                            "phoneNumber": f"+86 {PHONE}",
                            "primaryInd": True,
                        }
                    }
                ]
            },
            "emails": {"emailInfo": [{"email": {"emailAddress": EMAIL, "type": "HOME"}}]},
        },
    }
    hotel.write_text(json.dumps(profile, ensure_ascii=False) + "\n", encoding="utf-8")
    return [pos, hotel]


@pytest.fixture
def services(settings: Any, db: Database) -> Services:
    return Services(settings, db, settings.keyring())


def _pg_dump(url: str) -> str:
    binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    out = subprocess.run(
        [str(binary), "--data-only", "--no-owner", f"--dbname={plain_url(url)}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout


async def test_canaries_leave_no_trace(
    db: Database,
    keyring: KeyRing,
    services: Services,
    database_url: str,
    tmp_path: Path,
    span_exporter: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    span_exporter.clear()
    seen: list[str] = []
    report = await run_import(
        db=db,
        keyring=keyring,
        connector="auto",
        paths=_files(tmp_path),
        actor="canary",
        hooks=default_hooks(keyring),
    )
    assert report.total("new") >= 2
    assert report.total("rejected") == 1
    seen.append(json.dumps(report.as_dict(), ensure_ascii=False, default=str))

    schema = build_schema()
    agent = services.context(Principal("cs-canary", Role.AGENT, business_line="hotel"))
    for query in (PHONE, ID_NUMBER, NAME, EMAIL):
        found = await schema.execute(
            "query($q: String!) { searchMembers(query: $q) { id name identifiers { kind value } } }",
            variable_values={"q": query},
            context_value=agent,
        )
        assert found.errors is None
        assert found.data["searchMembers"], f"the canary member is found by {query[:2]}…"
        seen.append(json.dumps(found.data, ensure_ascii=False))
    members = {m["id"] for m in found.data["searchMembers"]}
    view = await schema.execute(
        "query($id: ID!) { member(id: $id) { name nameLatin address identifiers { kind value } "
        "sourceRecords { sourceKey identifiers { kind value } } links { explain } } }",
        variable_values={"id": min(members)},
        context_value=agent,
    )
    assert view.errors is None
    seen.append(json.dumps(view.data, ensure_ascii=False))
    # failed calls: an invalid phone through the API, a member trying an agent's tool
    bad = await schema.execute(
        'mutation { ingestSourceRecords(input: {items: [{source: "pos", sourceKey: "x", '
        f'observedAt: "2026-01-01T00:00:00+08:00", identifiers: [{{kind: PHONE, value: "{PHONE}9"}}]}}]}}) '
        "{ ... on IngestResult { errors { reason } } } }",
        context_value=services.context(Principal("pos", Role.PARTNER, business_line="store")),
    )
    seen.append(json.dumps(bad.data, ensure_ascii=False))
    denied = await schema.execute(
        "query($q: String!) { searchMembers(query: $q) { id } }",
        variable_values={"q": PHONE},
        context_value=services.context(Principal("m", Role.MEMBER, member_id=1)),
    )
    seen.extend(e.message for e in denied.errors or [])

    formatter = JsonFormatter()
    seen.extend(formatter.format(r) for r in caplog.records)
    for span in span_exporter.get_finished_spans():
        seen.append(span.name)
        seen.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
    seen.append(_pg_dump(database_url))
    everything = "\n".join(seen)
    for canary in CANARIES:
        assert canary not in everything, f"canary {canary[:3]}… leaked"
