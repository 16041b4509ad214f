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


_NAMES = ("actor", "role", "action", "subject", "reason", "request_id", "details")
_INSERT_INTO = f"INSERT INTO audit_log ({', '.join(_NAMES)})"
_INSERT = f"{_INSERT_INTO} VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING id"
_INSERT_NAMED = text(
    f"{_INSERT_INTO} VALUES (:actor, :role, :action, :subject, :reason, :request_id, "
    "CAST(:details AS jsonb)) RETURNING id"
)


def _row(
    actor: Actor, action: str, subject: str | None, reason: str | None, details: dict[str, Any]
) -> tuple[Any, ...]:
    _check_details(details)
    return (
        actor.id,
        actor.role,
        action,
        subject,
        reason,
        current_request_id(),
        json.dumps(details, default=str),
    )


async def record_audit(
    *,
    session: AsyncSession,
    actor: Actor,
    action: str,
    subject: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """One audit row in the session's transaction."""
    values = dict(zip(_NAMES, _row(actor, action, subject, reason, details or {}), strict=True))
    row_id = await session.scalar(_INSERT_NAMED, values)
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
    row_id = await conn.fetchval(_INSERT, *_row(actor, action, subject, reason, details or {}))
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
