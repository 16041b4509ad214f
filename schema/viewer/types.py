from __future__ import annotations

import strawberry

from hub.core.tokens import Principal


@strawberry.type(description="Who the current token says the caller is.")
class Viewer:
    role: str | None
    business_line: str | None
    member_id: strawberry.ID | None
    authenticated: bool

    @classmethod
    def from_model(cls, principal: Principal) -> Viewer:
        return cls(
            role=principal.role.value if principal.role else None,
            business_line=principal.business_line,
            member_id=strawberry.ID(str(principal.member_id)) if principal.member_id else None,
            authenticated=principal.authenticated,
        )
