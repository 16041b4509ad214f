from __future__ import annotations

from typing import Any

import pytest

from hub.core.audit import Actor, record_audit
from hub.core.db import Database

VIEWER = "{ viewer { role businessLine memberId authenticated } }"
AUDIT = "{ auditLog(first: 5) { action actor subject } }"


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (
            "anonymous",
            {"role": None, "businessLine": None, "memberId": None, "authenticated": False},
        ),
        (
            "member",
            {"role": "member", "businessLine": None, "memberId": "1", "authenticated": True},
        ),
        (
            "partner",
            {"role": "partner", "businessLine": "store", "memberId": None, "authenticated": True},
        ),
        (
            "agent",
            {"role": "agent", "businessLine": "hotel", "memberId": None, "authenticated": True},
        ),
        ("admin", {"role": "admin", "businessLine": None, "memberId": None, "authenticated": True}),
    ],
)
async def test_viewer_answers_per_role(execute: Any, who: str, expected: dict[str, Any]) -> None:
    result = await execute(VIEWER, as_=who)
    assert result.errors is None
    assert result.data == {"viewer": expected}


@pytest.mark.parametrize(
    ("who", "allowed"),
    [("anonymous", False), ("member", False), ("partner", False), ("agent", True), ("admin", True)],
)
async def test_audit_log_is_for_agents_and_admins_only(
    execute: Any, db: Database, who: str, allowed: bool
) -> None:
    async with db.unit_of_work() as session:
        await record_audit(
            session=session,
            actor=Actor("agent-9", "agent"),
            action="member.unmask",
            subject="member:7",
            reason="call",
        )
    result = await execute(AUDIT, as_=who)
    if allowed:
        assert result.errors is None
        assert result.data["auditLog"] == [
            {"action": "member.unmask", "actor": "agent-9", "subject": "member:7"}
        ]
    else:
        assert result.data is None
        assert result.errors[0].message.startswith("PERMISSION_DENIED")


async def test_member_token_cannot_act_as_an_agent_over_http(client: Any) -> None:
    from tests.schema.conftest import token_for

    response = await client.post(
        "/graphql",
        json={"query": AUDIT},
        headers={"Authorization": f"Bearer {token_for('member')}"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("PERMISSION_DENIED")
    viewer = await client.post(
        "/graphql",
        json={"query": VIEWER},
        headers={"Authorization": f"Bearer {token_for('agent')}"},
    )
    assert viewer.json()["data"]["viewer"]["role"] == "agent"


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer " + "x" * 5000],
)
async def test_bad_tokens_get_401_not_anonymous(client: Any, header: str) -> None:
    response = await client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"


async def test_token_signed_with_another_secret_is_refused(client: Any) -> None:
    from hub.core.tokens import Role, issue_token

    forged = issue_token(
        secret="another-secret-entirely-xxxxxxxxxxxxxxx", role=Role.ADMIN, subject="x"
    )
    response = await client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401


async def test_expired_token_is_refused(client: Any) -> None:
    from datetime import timedelta

    from hub.core.tokens import Role, issue_token
    from tests.conftest import JWT_SECRET

    old = issue_token(secret=JWT_SECRET, role=Role.ADMIN, subject="x", ttl=timedelta(seconds=-1))
    response = await client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {old}"}
    )
    assert response.status_code == 401
    assert "expired" in response.json()["errors"][0]["message"]
