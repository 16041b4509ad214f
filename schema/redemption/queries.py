from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from hub.core.tokens import Role
from hub.loyalty import errors, settlement
from hub.loyalty import redemption_errors as rerrors
from hub.loyalty.redemption import quote_redemption
from schema.context import Context
from schema.ids import parse_id
from schema.loyalty.loaders import program
from schema.permissions import IsAdmin
from schema.redemption import types as t
from schema.redemption.access import CanQuote


@strawberry.type
class RedemptionQuery:
    @strawberry.field(
        permission_classes=[CanQuote],
        description="How many points a value costs at a line (or what points are worth), what "
        "the member has available and which lots a hold would use. Give points or amountFen. "
        "Agents name memberId; members quote for themselves.",
    )
    async def quote_redemption(
        self,
        info: Info[Context, Any],
        line: str,
        points: int | None = None,
        amount_fen: int | None = None,
        member_id: strawberry.ID | None = None,
    ) -> t.QuoteRedemptionResult:
        who = info.context.principal
        member = who.member_id if who.role is Role.MEMBER else None
        if who.role is not Role.MEMBER:
            member = None if member_id is None else parse_id(member_id)
            if member is None:
                return t.InvalidRedemption(
                    message="memberId: agents name the member", field="memberId"
                )
        assert member is not None
        try:
            async with info.context.db.read() as session:
                quote = await quote_redemption(
                    session=session,
                    program=program(),
                    member_id=member,
                    line=line,
                    points=points,
                    amount_fen=amount_fen,
                )
        except (rerrors.NotRedeemableHere, errors.UnknownBusinessLine) as exc:
            return t.NotRedeemableHere(message=exc.message, line=line)
        except rerrors.InvalidRedemption as exc:
            return t.InvalidRedemption(message=exc.message, field=exc.field)
        return t.RedemptionQuote.from_model(quote)

    @strawberry.field(
        permission_classes=[IsAdmin],
        description="Settlement between business lines for a month (e.g. 2026-10): gross per "
        "pair, netted, tied out to the clearing accounts; csv is finance's export.",
    )
    async def settlement(self, info: Info[Context, Any], period: str) -> t.Settlement:
        async with info.context.db.read() as session:
            report = await settlement.settle(session=session, period=period)
        return t.Settlement.from_model(report)
