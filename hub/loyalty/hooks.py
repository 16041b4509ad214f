"""The loyalty side of the ingest seam: accrue what each landed batch earned.

``LoyaltyHooks(program).batch_landed(session=, batch=)`` runs inside the batch's transaction,
after identity has attached the batch's records to members (compose identity's hooks first). It
accrues the batch's new and changed activities whose source record has a member, and applies
refunds and cancellations among them. Activities that landed before their person's record are
picked up when the record lands (the batch's new records); any record attached to a member later
(outside an ingest batch) is caught up with ``accrual.accrue_for_records``.

The seam is structural (``hub.flows.ingest.IngestHooks`` is a Protocol), so this module needs
nothing from ``hub.flows`` and the domain stays below the flows layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from hub.loyalty.accrual import AccrualReport, accrue_activities, activities_of
from hub.loyalty.model import Program


# Read-only properties, so ``hub.flows.ingest.LandedBatch`` (plain attributes) satisfies them.
class _Written(Protocol):
    @property
    def new_activities(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def updated_activities(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def new_records(self) -> Mapping[tuple[str, str], int]: ...


class _Batch(Protocol):
    @property
    def written(self) -> _Written: ...


class LoyaltyHooks:
    def __init__(self, program: Program, *, now: datetime | None = None) -> None:
        self.program = program
        self.now = now  # pinned in tests; None: the clock at each batch
        self.report = AccrualReport()

    async def batch_landed(self, *, session: AsyncSession, batch: _Batch) -> None:
        written = batch.written
        ids = {*written.new_activities.values(), *written.updated_activities.values()}
        # Activities can land before the record of the person who made them (another file,
        # an earlier batch); they were skipped then and are owed now that the record exists.
        ids.update(
            await activities_of(session=session, source_record_ids=written.new_records.values())
        )
        if not ids:
            return
        self.report.add(
            await accrue_activities(
                session=session, program=self.program, activity_ids=ids, now=self.now
            )
        )
