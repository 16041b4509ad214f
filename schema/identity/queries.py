"""Customer-service reads: search, one member's profile, the review queue (agent role)."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy import text
from strawberry.types import Info

from identity.store import search_members
from schema import ids
from schema.context import Context
from schema.identity.loaders import loaders
from schema.identity.types import (
    MemberProfile,
    ReviewItem,
    ReviewItemConnection,
    ReviewItemEdge,
    ReviewOrder,
    ReviewPageInfo,
    cursor_of,
    position_of,
)
from schema.limits import page_size
from schema.permissions import IsAgent
from schema.profile_reads import profile_reads, wants

MAX_SEARCH = 50


def parse_id(value: str | None) -> int | None:
    return None if value is None else ids.parse_id(value)


@strawberry.type
class IdentityQuery:
    @strawberry.field(
        permission_classes=[IsAgent],
        description="Members by phone, email, ID document, nick, card no., unionid, name or "
        "order / folio no. (masked results).",
    )
    async def search_members(
        self, info: Info[Context, Any], query: str, first: int | None = None
    ) -> list[MemberProfile]:
        ctx = info.context
        async with ctx.db.read() as session:
            ids = await search_members(
                session=session,
                keyring=ctx.keyring,
                query=query,
                limit=min(page_size(first), MAX_SEARCH),
            )
        rows = await loaders(ctx).member_by_id.load_many(ids)
        return [MemberProfile.from_model(r) for r in rows if r is not None]

    @strawberry.field(permission_classes=[IsAgent], description="One member (masked PII).")
    async def member(self, info: Info[Context, Any], id: strawberry.ID) -> MemberProfile | None:
        member_id = parse_id(id)
        if member_id is None:
            return None
        # the whole view in one statement, primed into the loaders read below
        await profile_reads(info.context).load(
            info, member_id, wants(info, identity_below=None, loyalty_below="loyalty")
        )
        row = await loaders(info.context).member_by_id.load(member_id)
        return MemberProfile.from_model(row) if row else None

    @strawberry.field(
        permission_classes=[IsAgent],
        description="Open review items: oldest first, or (orderBy: MOST_LIKELY) the pairs "
        "most likely one person first.",
    )
    async def review_queue(
        self,
        info: Info[Context, Any],
        first: int | None = None,
        after: str | None = None,
        order_by: ReviewOrder = ReviewOrder.OLDEST,
    ) -> ReviewItemConnection:
        size = page_size(first)
        start = position_of(after, order_by)
        # Keyset pages over the partial indexes of migration 0018 (open items only): the rows
        # past the cursor's position in the order's key.
        order, position = (
            ("id", ":item")
            if order_by is ReviewOrder.OLDEST
            else ("(-score), id", ":neg_score, :item")
        )
        after_sql = "" if start is None else f" AND ({order}) > ({position})"
        params: dict[str, Any] = {"n": size + 1}
        if start is not None:
            params.update(item=start.item, neg_score=-start.score)
        async with info.context.db.read() as session:
            rows = list(
                await session.execute(
                    text(
                        "SELECT id, score, reason, rule, detail, explain, status, created_at, "
                        f"record_a, record_b FROM review_item WHERE status = 'open'{after_sql} "
                        f"ORDER BY {order} LIMIT :n"
                    ),
                    params,
                )
            )
        edges = [
            ReviewItemEdge(
                cursor=cursor_of(r[0], r[1], order_by),
                node=ReviewItem(
                    id=strawberry.ID(str(r[0])),
                    score_bits=r[1],
                    reason=r[2],
                    rule=r[3],
                    detail=r[4],
                    explain=r[5],
                    status=r[6],
                    created_at=r[7],
                    record_a_id=r[8],
                    record_b_id=r[9],
                ),
            )
            for r in rows[:size]
        ]
        return ReviewItemConnection(
            edges=edges,
            page_info=ReviewPageInfo(
                has_next_page=len(rows) > size,
                has_previous_page=start is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )
