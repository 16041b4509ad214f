"""What runs after each ingested batch lands, in its transaction: identity, then loyalty.

Identity first, so the batch's records are attached to members before loyalty looks for the
member who earned each activity.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.pii import KeyRing
from hub.flows.ingest import IngestHooks, LandedBatch
from hub.flows.resolution import IdentityHooks
from hub.loyalty.hooks import LoyaltyHooks
from hub.loyalty.program import Program, configured_program


class ChainHooks:
    """Run several hooks in order; one failing rolls the whole batch back."""

    def __init__(self, *hooks: IngestHooks) -> None:
        self.hooks = hooks

    async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None:
        for hook in self.hooks:
            await hook.batch_landed(session=session, batch=batch)


def default_hooks(keyring: KeyRing, program: Program | None = None) -> IngestHooks:
    return ChainHooks(
        IdentityHooks(keyring=keyring),
        LoyaltyHooks(program or configured_program()),
    )
