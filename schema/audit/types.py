from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from hub.core.audit import AuditRow


@strawberry.type(description="One audited act: who, what, to which subject, why. Never PII.")
class AuditEntry:
    id: strawberry.ID
    at: datetime
    actor: str
    role: str
    action: str
    subject: str | None
    reason: str | None
    request_id: str | None
    details: JSON

    @classmethod
    def from_model(cls, row: AuditRow) -> AuditEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            at=row.at,
            actor=row.actor,
            role=row.role,
            action=row.action,
            subject=row.subject,
            reason=row.reason,
            request_id=row.request_id,
            details=cast(JSON, row.details),
        )
