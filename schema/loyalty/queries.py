from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from hub.core.errors import NotAuthenticated
from schema.context import Context
from schema.ids import parse_id
from schema.loyalty.loaders import loaders
from schema.loyalty.types import MemberLoyalty
from schema.permissions import IsAgent, IsMember


@strawberry.type
class LoyaltyQuery:
    @strawberry.field(
        permission_classes=[IsMember],
        description="The signed-in member's tier, points, ledger and benefits.",
    )
    def my_loyalty(self, info: Info[Context, Any]) -> MemberLoyalty:
        member = info.context.principal.member_id
        if member is None:
            raise NotAuthenticated("this member token names no member")
        return MemberLoyalty.from_model(member)

    @strawberry.field(
        permission_classes=[IsAgent],
        description="Any member's loyalty, for customer service; null if there is no such member.",
    )
    async def member_loyalty(
        self, info: Info[Context, Any], member_id: strawberry.ID
    ) -> MemberLoyalty | None:
        member = parse_id(member_id)
        if member is None:
            return None
        if not await loaders(info).member_by_id.load(member):
            return None
        return MemberLoyalty.from_model(member)
