from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from hub.core.audit import list_audit
from schema.audit.types import AuditEntry
from schema.context import Context
from schema.limits import page_size
from schema.permissions import IsAgent


@strawberry.type
class AuditQuery:
    @strawberry.field(
        permission_classes=[IsAgent],
        description="The audit trail, newest first, optionally for one subject or action.",
    )
    async def audit_log(
        self,
        info: Info[Context, Any],
        subject: str | None = None,
        action: str | None = None,
        first: int | None = None,
    ) -> list[AuditEntry]:
        async with info.context.db.read() as session:
            rows = await list_audit(
                session=session, subject=subject, action=action, limit=page_size(first)
            )
        return [AuditEntry.from_model(r) for r in rows]
