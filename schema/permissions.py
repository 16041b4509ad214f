"""Roles as strawberry permission classes; resolvers never check roles inline.

A member acts only on itself: its member id comes from the token, never from arguments. A
partner is bound to its business line, an agent may be too. Admins may do everything agents may.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from hub.core.audit import record_audit
from hub.core.tokens import Role
from schema.context import Context


def _role(info: Info[Context, Any]) -> Role | None:
    return info.context.principal.role


class IsAuthenticated(BasePermission):
    message = "NOT_AUTHENTICATED: sign in with a bearer token"
    error_extensions = {"code": "NOT_AUTHENTICATED"}

    def has_permission(self, source: Any, info: Info[Context, Any], **kwargs: Any) -> bool:
        return _role(info) is not None


class _RoleIn(BasePermission):
    roles: frozenset[Role] = frozenset()
    error_extensions = {"code": "PERMISSION_DENIED"}

    async def has_permission(self, source: Any, info: Info[Context, Any], **kwargs: Any) -> bool:
        role = _role(info)
        if role in self.roles:
            return True
        if role is Role.MEMBER:
            # A member reaching past itself (another member's data, an agent's tool) is worth a
            # trace: audited with the field and argument names, never their values.
            await _audit_member_denial(info, kwargs)
        return False


async def _audit_member_denial(info: Info[Context, Any], kwargs: dict[str, Any]) -> None:
    ctx = info.context
    async with ctx.db.unit_of_work() as session:
        await record_audit(
            session=session,
            actor=ctx.actor,
            action="access.denied",
            subject=f"member:{ctx.principal.member_id}",
            details={"field": info.field_name, "arguments": sorted(kwargs)},
        )


class IsMember(_RoleIn):
    message = "PERMISSION_DENIED: needs a member token"
    roles = frozenset({Role.MEMBER})


class IsPartner(_RoleIn):
    message = "PERMISSION_DENIED: needs a partner token"
    roles = frozenset({Role.PARTNER})


class IsAgent(_RoleIn):
    """Customer service, and admins (who may do all an agent may)."""

    message = "PERMISSION_DENIED: needs an agent token"
    roles = frozenset({Role.AGENT, Role.ADMIN})


class IsAdmin(_RoleIn):
    message = "PERMISSION_DENIED: needs an admin token"
    roles = frozenset({Role.ADMIN})


class IsPartnerOrAdmin(_RoleIn):
    message = "PERMISSION_DENIED: needs a partner (or admin) token"
    roles = frozenset({Role.PARTNER, Role.ADMIN})
