"""Per-request DataLoaders for the loyalty view; each batch is one SQL statement.

They live in ``Context.loaders.extra["loyalty"]`` (created on first use in a request), so a
query over many members costs the same few statements as one member, all on the request's
shared connection (``Context.reads.fetch``).
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
from hub.loyalty import views
from hub.loyalty.model import Program
from hub.loyalty.program import configured_program
from schema.context import Context, RequestReads

LedgerKey = tuple[int, int, int | None]  # member, first, after transfer id


@cache
def program() -> Program:
    """The program for the process: validated once (a bad file fails the first request loudly;
    ``hub serve`` validates it at start-up)."""
    return configured_program()


@dataclass
class LoyaltyLoaders:
    member_by_id: DataLoader[int, bool]
    summary_by_member: DataLoader[int, views.SummaryView]
    ledger_by_member: DataLoader[LedgerKey, views.LedgerPage]
    at: datetime

    @classmethod
    def create(cls, reads: RequestReads, loyalty: Program) -> LoyaltyLoaders:
        at = utcnow()

        async def members(ids: Sequence[int]) -> list[bool]:
            found = await views.existing_members(fetch=reads.fetch, member_ids=ids)
            return [i in found for i in ids]

        async def summaries(ids: Sequence[int]) -> list[views.SummaryView]:
            found = await views.summaries(fetch=reads.fetch, program=loyalty, member_ids=ids, at=at)
            return [found[i] for i in ids]

        async def ledger(keys: Sequence[LedgerKey]) -> list[views.LedgerPage]:
            return await views.ledger_pages(fetch=reads.fetch, requests=keys)

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
        found = extra["loyalty"] = LoyaltyLoaders.create(info.context.reads, program())
    assert isinstance(found, LoyaltyLoaders)
    return found
