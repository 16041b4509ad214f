"""Two imports writing the same activities at the same time: the one that waited falls back to
the upsert and both end as one import would."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.records import Activity, ActivityKind, ActivityStatus
from hub.flows.ingest.batch import prepare_batch
from hub.flows.ingest.store import write_batch

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def sale(ext: str, amount: int = 12900) -> Activity:
    return Activity(
        source="pos",
        external_id=ext,
        kind=ActivityKind.PURCHASE,
        business_line="store",
        occurred_at=T0,
        status=ActivityStatus.CONFIRMED,
        source_key="88000000001",
        amount_fen=amount,
    )


async def _waiting_on_a_lock(db: Database) -> bool:
    async with db.read() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


@pytest.mark.parametrize("direct", [False, True], ids=["staged", "copied-first"])
async def test_an_import_racing_another_on_the_same_activities_upserts_them(
    db: Database, keyring: KeyRing, direct: bool
) -> None:
    """``direct``: the racer first tries its activities as new by COPY (a file import without
    hooks), which fails on B once the holder commits, and goes the usual way."""
    first = prepare_batch([("a.csv", sale("A")), ("a.csv", sale("B"))], keyring)
    second = prepare_batch([("b.csv", sale("B", amount=13900)), ("b.csv", sale("C"))], keyring)
    async with db.unit_of_work() as holder:
        await write_batch(session=holder, staged=first.staged, import_run_id=None)

        async def racer() -> tuple[set[str], set[str]]:
            async with db.unit_of_work() as session:
                written = await write_batch(
                    session=session,
                    staged=second.staged,
                    import_run_id=None,
                    optimistic=direct,
                    direct=direct,
                )
            assert written.held_activity_met is direct
            assert not written.activities_copied
            return (
                {k[1] for k in written.new_activities},
                {k[1] for k in written.updated_activities},
            )

        task = asyncio.create_task(racer())
        # The racer's insert of B waits for this transaction's uncommitted B.
        for _ in range(500):
            if await _waiting_on_a_lock(db):
                break
            await asyncio.sleep(0.01)
        assert await _waiting_on_a_lock(db)
    new, updated = await task
    assert (new, updated) == ({"C"}, {"B"})
    async with db.read() as session:
        rows = (
            await session.execute(
                text("SELECT external_id, amount_fen FROM activity ORDER BY external_id")
            )
        ).all()
        events = (
            await session.execute(
                text(
                    "SELECT a.external_id, e.amount_fen FROM activity_event e "
                    "JOIN activity a ON a.id = e.activity_id"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [("A", 12900), ("B", 13900), ("C", 12900)]
    # The state of B the holder wrote, which the racer's statement began too early to see:
    # left by B when the racer changed it, so in B's history.
    assert [tuple(e) for e in events] == [("B", 12900)]
