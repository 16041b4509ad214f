"""Who may redeem, capture, refund: permission classes, and the hold scope each role gets.

A member acts on its own holds only (member id from the token), a point of sale on its business
line's holds, agents and admins on any hold.
"""

from __future__ import annotations

from typing import Any

from strawberry.types import Info

from hub.core.tokens import Principal, Role
from hub.loyalty.redemption_store import ANY, HoldScope
from schema.context import Context
from schema.permissions import _RoleIn


class CanRedeem(_RoleIn):
    message = "PERMISSION_DENIED: needs a member, partner, agent or admin token"
    roles = frozenset({Role.MEMBER, Role.PARTNER, Role.AGENT, Role.ADMIN})


class CanQuote(_RoleIn):
    message = "PERMISSION_DENIED: needs a member, agent or admin token"
    roles = frozenset({Role.MEMBER, Role.AGENT, Role.ADMIN})


class CanRefund(_RoleIn):
    message = "PERMISSION_DENIED: needs a partner, agent or admin token"
    roles = frozenset({Role.PARTNER, Role.AGENT, Role.ADMIN})


def scope_of(principal: Principal) -> HoldScope:
    if principal.role is Role.MEMBER:
        return HoldScope(member_id=principal.member_id if principal.member_id else -1)
    if principal.role is Role.PARTNER:
        return HoldScope(line=principal.business_line or "")
    return ANY


def principal(info: Info[Context, Any]) -> Principal:
    return info.context.principal
