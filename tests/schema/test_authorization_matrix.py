"""Every query and mutation × every role: allowed or denied as the design says.

The expectations are a table, and the table must name every root field: a new field fails this
test until someone decides who may call it.
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLUnionType,
)
from sqlalchemy import text

from hub.app import Services
from hub.core.db import Database
from hub.core.tokens import ANONYMOUS, Principal, Role
from schema import build_schema

ROLES: dict[str, Principal] = {
    "anonymous": ANONYMOUS,
    "member": Principal("m-1", Role.MEMBER, member_id=1),
    "other_member": Principal("m-2", Role.MEMBER, member_id=2),
    "partner": Principal("pos-1", Role.PARTNER, business_line="store"),
    "partner_other_line": Principal("pms-1", Role.PARTNER, business_line="hotel"),
    "agent": Principal("cs-1", Role.AGENT, business_line="store"),
    "agent_other_line": Principal("cs-2", Role.AGENT, business_line="hotel"),
    "admin": Principal("ops-1", Role.ADMIN),
}
EVERYONE = set(ROLES)
MEMBERS = {"member", "other_member"}
AGENTS = {"agent", "agent_other_line", "admin"}
# Partners pass the permission check for pushes; pushing another line's data is then refused as
# a typed BusinessLineNotAllowed (the input below names businessLine "store").
PUSHERS = {"partner", "admin"}

EXPECTED: dict[str, set[str]] = {
    "viewer": EVERYONE,
    "auditLog": AGENTS,
    "searchMembers": AGENTS,
    "member": AGENTS,
    "reviewQueue": AGENTS,
    "memberLoyalty": AGENTS,
    "myLoyalty": MEMBERS,
    "me": MEMBERS,
    "ingestSourceRecords": PUSHERS,
    "ingestActivities": PUSHERS,
    "mergeMembers": AGENTS,
    "moveSourceRecord": AGENTS,
    "unmergeMember": AGENTS,
    "resolveReview": AGENTS,
    "unmaskMember": AGENTS,
    "eraseMember": {"admin"},
    "adjustPoints": AGENTS,
    "claimBenefit": MEMBERS,
}
# Filled in as domains add fields: redemption and settlement.
EXPECTED.update(
    {
        "quoteRedemption": MEMBERS | AGENTS,
        "redeemPoints": MEMBERS | AGENTS | {"partner", "partner_other_line"},
        "captureRedemption": MEMBERS | AGENTS | {"partner", "partner_other_line"},
        "cancelRedemption": MEMBERS | AGENTS | {"partner", "partner_other_line"},
        "refundRedemption": AGENTS | {"partner", "partner_other_line"},
        "issueRedemptionCode": MEMBERS,
        "settlement": {"admin"},
    }
)

SCHEMA = build_schema()._schema


def _value(t: GraphQLInputType, field: str = "") -> Any:
    if isinstance(t, GraphQLNonNull):
        return _value(t.of_type, field)
    if isinstance(t, GraphQLList):
        return [_value(t.of_type, field)]
    if isinstance(t, GraphQLEnumType):
        return next(iter(t.values))
    if isinstance(t, GraphQLInputObjectType):
        out = {
            name: _value(f.type, name)
            for name, f in t.fields.items()
            if isinstance(f.type, GraphQLNonNull)
        }
        if "businessLine" in t.fields:
            out["businessLine"] = "store"
        return out
    assert isinstance(t, GraphQLScalarType)
    return {
        "ID": "1",
        "Int": 10,
        "Float": 1.0,
        "Boolean": False,
        "JSON": {},
        "DateTime": "2026-11-01T10:00:00+08:00",
        "Date": "1990-01-01",
    }.get(t.name, "2026-10" if field == "period" else f"matrix-{field or 'x'}")


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    ops = []
    for kind, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type)):
        assert root is not None
        for name, f in root.fields.items():
            variables = {
                a: _value(arg.type, a)
                for a, arg in f.args.items()
                if isinstance(arg.type, GraphQLNonNull)
            }
            decl = ", ".join(f"${a}: {f.args[a].type}" for a in variables)
            args = ", ".join(f"{a}: ${a}" for a in variables)
            doc = f"{kind}{f'({decl})' if decl else ''} {{ {name}{f'({args})' if args else ''} {{ __typename }} }}"
            if not _has_fields(f.type):
                doc = (
                    f"{kind}{f'({decl})' if decl else ''} {{ {name}{f'({args})' if args else ''} }}"
                )
            ops.append((name, doc, variables))
    return ops


def _has_fields(t: Any) -> bool:
    while hasattr(t, "of_type"):
        t = t.of_type
    return hasattr(t, "fields") or isinstance(t, GraphQLUnionType)


OPERATIONS = _operations()


def test_every_root_field_has_a_decision() -> None:
    fields = {name for name, _, _ in OPERATIONS}
    assert fields - set(EXPECTED) == set(), "decide who may call these"


@pytest.mark.parametrize(
    ("field", "document", "variables"), OPERATIONS, ids=[o[0] for o in OPERATIONS]
)
async def test_authorization_matrix(
    services: Services, db: Database, field: str, document: str, variables: dict[str, Any]
) -> None:
    schema = build_schema()
    for role, principal in ROLES.items():
        result = await schema.execute(
            document, variable_values=variables, context_value=services.context(principal)
        )
        messages = [e.message for e in result.errors or []]
        denied = any(m.startswith(("PERMISSION_DENIED", "NOT_AUTHENTICATED")) for m in messages)
        typed_refusal = "BusinessLineNotAllowed" in str(result.data)
        allowed = not denied and not typed_refusal
        assert allowed == (role in EXPECTED[field]), f"{field} as {role}: {messages or result.data}"
        if allowed:
            assert result.errors is None, f"{field} as {role}: {messages}"


async def test_a_member_reaching_another_member_is_audited(
    services: Services, db: Database
) -> None:
    schema = build_schema()
    result = await schema.execute(
        'query { memberLoyalty(memberId: "2") { memberId } }',
        context_value=services.context(ROLES["member"]),
    )
    assert result.errors
    async with db.read() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT actor, action, subject, details FROM audit_log WHERE action = 'access.denied'"
                )
            )
        ).all()
    assert [(r.actor, r.subject, r.details["field"]) for r in rows] == [
        ("m-1", "member:1", "memberLoyalty")
    ]
    assert "2" not in str(rows[0].details)  # argument names only, never values
