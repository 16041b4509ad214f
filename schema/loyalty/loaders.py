"""Per-request DataLoaders for the loyalty view; each batch is one SQL statement.

They live in ``Context.loaders.extra["loyalty"]`` (created on first use in a request), so a
query over many members costs the same few statements as one member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from hub.core.clock import utcnow
from hub.core.db import Database
from hub.loyalty import views
from hub.loyalty.model import Program
from hub.loyalty.program import configured_program
from schema.context import Context

LedgerKey = tuple[int, int, int | None]  # member, first, after transfer id


@cache
def program() -> Program:
    """The program for the process: validated once (a bad file fails the first request loudly;
    ``hub serve`` validates it at start-up)."""
    return configured_program()


@dataclass(frozen=True, slots=True)
class Summary:
    points: views.PointsView
    tier: views.TierView
    benefits: list[views.BenefitView]


@dataclass
class LoyaltyLoaders:
    member_by_id: DataLoader[int, bool]
    summary_by_member: DataLoader[int, Summary]
    ledger_by_member: DataLoader[LedgerKey, views.LedgerPage]
    at: datetime

    @classmethod
    def create(cls, db: Database, loyalty: Program) -> LoyaltyLoaders:
        at = utcnow()

        async def members(ids: Sequence[int]) -> list[bool]:
            async with db.read() as session:
                found = await views.existing_members(session=session, member_ids=ids)
            return [i in found for i in ids]

        # Points, tier and benefits share one session: three statements, one connection
        # checkout, instead of three checkouts (each a ping, a BEGIN and a ROLLBACK).
        async def summaries(ids: Sequence[int]) -> list[Summary]:
            async with db.read() as session:
                points = await views.points(session=session, member_ids=ids, at=at)
                tiers = await views.tiers(session=session, program=loyalty, member_ids=ids, at=at)
                entitled = await views.entitlements(
                    session=session,
                    program=loyalty,
                    member_tiers={i: tiers[i].code for i in ids},
                    at=at,
                )
            return [Summary(points[i], tiers[i], entitled[i]) for i in ids]

        async def ledger(keys: Sequence[LedgerKey]) -> list[views.LedgerPage]:
            async with db.read() as session:
                return await views.ledger_pages(session=session, requests=keys)

        return cls(
            member_by_id=DataLoader(load_fn=members),
            summary_by_member=DataLoader(load_fn=summaries),
            ledger_by_member=DataLoader(load_fn=ledger),
            at=at,
        )


def loaders(info: Info[Context, Any]) -> LoyaltyLoaders:
    extra = info.context.loaders.extra
    found = extra.get("loyalty")
    if found is None:
        found = extra["loyalty"] = LoyaltyLoaders.create(info.context.db, program())
    assert isinstance(found, LoyaltyLoaders)
    return found
