"""What runs after each ingested batch lands, in its transaction: identity, then loyalty."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hub.flows.ingest import IngestHooks, LandedBatch, NoHooks


class ChainHooks:
    """Run several hooks in order; one failing rolls the whole batch back."""

    def __init__(self, *hooks: IngestHooks) -> None:
        self.hooks = hooks

    async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None:
        for hook in self.hooks:
            await hook.batch_landed(session=session, batch=batch)


def default_hooks() -> IngestHooks:
    """Identity resolution, then loyalty accrual (each wired in as it lands)."""
    hooks: list[IngestHooks] = []
    return ChainHooks(*hooks) if hooks else NoHooks()
