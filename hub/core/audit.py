"""The audit trail: one append-only row per sensitive act (unmask, merge, unmerge, adjust, …).

Rows say who did what to which subject and why, never the PII itself: ``details`` is for ids,
counts and codes. The table rejects UPDATE and DELETE (see migration 0001).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.telemetry import current_request_id

_PII_LIKE = re.compile(r"\d{7,}|@")


@dataclass(frozen=True)
class Actor:
    """Who acts: a principal id (token subject) and its role."""

    id: str
    role: str


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    subject: str | None
    reason: str | None
    request_id: str | None
    details: dict[str, Any]


def _check_details(details: dict[str, Any]) -> None:
    for key, value in details.items():
        if isinstance(value, str) and _PII_LIKE.search(value) and not key.endswith("_id"):
            raise ValueError(f"audit detail {key!r} looks like PII; store an id instead")


async def record_audit(
    *,
    session: AsyncSession,
    actor: Actor,
    action: str,
    subject: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    details = details or {}
    _check_details(details)
    row_id = await session.scalar(
        text(
            "INSERT INTO audit_log (actor, role, action, subject, reason, request_id, details) "
            "VALUES (:actor, :role, :action, :subject, :reason, :rid, CAST(:details AS jsonb)) "
            "RETURNING id"
        ),
        {
            "actor": actor.id,
            "role": actor.role,
            "action": action,
            "subject": subject,
            "reason": reason,
            "rid": current_request_id(),
            "details": json.dumps(details, default=str),
        },
    )
    assert row_id is not None
    return int(row_id)


async def record_audit_on(
    conn: Any,
    *,
    actor: Actor,
    action: str,
    subject: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """``record_audit`` on an asyncpg connection (``Database.transaction``'s), same row."""
    details = details or {}
    _check_details(details)
    row_id = await conn.fetchval(
        "INSERT INTO audit_log (actor, role, action, subject, reason, request_id, details) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING id",
        actor.id,
        actor.role,
        action,
        subject,
        reason,
        current_request_id(),
        json.dumps(details, default=str),
    )
    return int(row_id)


async def list_audit(
    *,
    session: AsyncSession,
    subject: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    rows = await session.execute(
        text(
            "SELECT id, at, actor, role, action, subject, reason, request_id, details FROM audit_log "
            "WHERE (CAST(:subject AS text) IS NULL OR subject = :subject) "
            "AND (CAST(:action AS text) IS NULL OR action = :action) "
            "ORDER BY id DESC LIMIT :limit"
        ),
        {"subject": subject, "action": action, "limit": min(limit, 1000)},
    )
    return [AuditRow(*row) for row in rows]
