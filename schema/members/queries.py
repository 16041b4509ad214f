"""`me`: the signed-in member's whole view — profile, tier, points, ledger, benefits.

It composes the identity view (the golden record, masked) and the loyalty view; the member id
comes from the token, never from arguments. Agents get the same loyalty view under
`member(id) { loyalty { … } }`.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from hub.core.errors import NotAuthenticated
from schema.context import Context
from schema.identity.loaders import loaders as identity_loaders
from schema.identity.types import MemberProfile
from schema.loyalty.types import MemberLoyalty
from schema.permissions import IsMember
from schema.profile_reads import profile_reads, wants


@strawberry.type(description="The signed-in member: profile (masked) and loyalty.")
class Me(MemberLoyalty):
    @strawberry.field(description="The unified profile, PII masked as on every screen.")
    async def profile(self, info: Info[Context, Any]) -> MemberProfile | None:
        row = await identity_loaders(info.context).member_by_id.load(self._member)
        return MemberProfile.from_model(row) if row else None


@strawberry.type
class MembersQuery:
    @strawberry.field(permission_classes=[IsMember], description="The signed-in member.")
    async def me(self, info: Info[Context, Any]) -> Me:
        member = info.context.principal.member_id
        if member is None:
            raise NotAuthenticated("this member token names no member")
        # profile and loyalty in one statement, primed into the loaders the fields read
        await profile_reads(info.context).load(
            info, member, wants(info, identity_below="profile", loyalty_below=None)
        )
        return Me(member_id=strawberry.ID(str(member)), _member=member)
