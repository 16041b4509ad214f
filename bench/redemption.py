"""Redemption throughput (hold + capture) next to raw single-row UPDATE transactions.

Creates a scratch database on the test server (``HUB_TEST_DATABASE_URL``, else the embedded one
under .hub/test-pg), gives 1,000 members points the way the hub does (app purchases accrued,
then released from their return window, so every redemption at the store also writes a
settlement entry app → store), then, with the same number of concurrent workers each time:

1. raw: single-row ``UPDATE … SET n = n + 1`` transactions over 1,000 rows (asyncpg pool,
   BEGIN/UPDATE/COMMIT) — what the database gives the simplest possible transaction;
2. across members: one redemption = ``place_hold`` + ``capture`` of 10 points for a random
   member, each in its own transaction through ``run_redemption`` — what the ``redeemPoints``
   and ``captureRedemption`` mutations run for a member's token, without HTTP: the member as
   actor and hold scope, an idempotency key on both calls (a client retrying either must not
   spend twice), the hold's lots, postings, settlement entries and stored outcomes;
3. hot member: the same, every worker on one member (its account lock serialises the holds).

The three take turns in ``ROUNDS`` short windows (each phase's seconds split between them), so
load from other work on the machine falls on both sides of the ratio alike; each figure is its
operations over its own time. Prints one line per figure and ``ratio=`` (across members / raw;
target ≥ 0.25)::

    raw_update tx_per_s=… workers=…
    redemption across_members per_s=… n=…
    redemption hot_member per_s=… n=…
    ratio=…

``--quick`` is a smoke size (a few seconds); the default runs 20 s per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from hub.core.audit import Actor  # noqa: E402
from hub.core.clock import utcnow  # noqa: E402
from hub.core.db import Database, embedded_url, plain_url, with_database  # noqa: E402
from hub.core.db import admin_execute as admin  # noqa: E402
from hub.core.migrate import upgrade  # noqa: E402
from hub.loyalty import jobs  # noqa: E402
from hub.loyalty.accrual import accrue_activities  # noqa: E402
from hub.loyalty.program import default_program  # noqa: E402
from hub.loyalty.redemption import HoldScope, capture, place_hold, run_redemption  # noqa: E402

MEMBERS = 1_000
WORKERS = 8
POINTS = 10
ROUNDS = 5  # the phases take turns, so a neighbour's load falls on all of them alike


async def seed(db: Database) -> None:
    """Members 1..MEMBERS with two app purchases each (member 1: many more), released."""
    program = default_program()
    earned = utcnow() - timedelta(days=30)
    async with db.unit_of_work() as s:
        await s.execute(
            text("INSERT INTO member (id) SELECT g FROM generate_series(1, :n) g"), {"n": MEMBERS}
        )
        await s.execute(
            text("SELECT setval(pg_get_serial_sequence('member', 'id'), :n)"), {"n": MEMBERS}
        )
        await s.execute(
            text(
                "INSERT INTO source_record (source, source_key, business_line, observed_at, "
                "content_hash, member_id) SELECT 'app', 'u' || g, 'app', now(), 'h', g "
                "FROM generate_series(1, :n) g"
            ),
            {"n": MEMBERS},
        )
        # 10,000 yuan → 10,000 points per purchase (cap 20,000); member 1 gets 100 more.
        await s.execute(
            text(
                "INSERT INTO activity (source, external_id, kind, business_line, source_key, "
                "amount_fen, quantity, occurred_at, status, content_hash) "
                "SELECT 'app', 'o' || g, 'purchase', 'app', 'u' || CASE WHEN g > 2 * :n THEN 1 "
                "ELSE 1 + g % :n END, 1000000, 0, :at, 'confirmed', 'h' "
                "FROM generate_series(1, 2 * :n + 100) g"
            ),
            {"n": MEMBERS, "at": earned},
        )
        ids = list((await s.execute(text("SELECT id FROM activity ORDER BY id"))).scalars())
        await accrue_activities(session=s, program=program, activity_ids=ids, now=earned)
        await jobs.release_pending(session=s, program=program, as_of=utcnow())
        await s.execute(text("CREATE TABLE bench_counter (id int PRIMARY KEY, n bigint)"))
        await s.execute(
            text("INSERT INTO bench_counter SELECT g, 0 FROM generate_series(1, :n) g"),
            {"n": MEMBERS},
        )
    # Vacuumed as well as analysed: the measurement starts from a settled database, not with
    # autovacuum catching up on the load while it runs.
    await admin(db.url, "VACUUM ANALYZE")


One = Callable[[int], Awaitable[None]]


class Phase:
    """One figure, measured in several windows: its operations and seconds add up."""

    def __init__(self, one: One) -> None:
        self.one = one
        self.done = 0
        self.seconds = 0.0

    async def run(self, seconds: float) -> None:
        stop = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            while time.perf_counter() < stop:
                await self.one(w)
                self.done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(WORKERS)))
        self.seconds += time.perf_counter() - start

    @property
    def rate(self) -> float:
        return self.done / self.seconds


def raw_updates(pool: asyncpg.Pool) -> One:
    rng = random.Random(1)

    async def one(_: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE bench_counter SET n = n + 1 WHERE id = $1", rng.randint(1, MEMBERS)
            )

    return one


def redemptions(db: Database, *, hot: bool) -> One:
    program = default_program()
    rng = random.Random(2)
    counter = iter(range(10**9))

    async def one(_: int) -> None:
        member = 1 if hot else rng.randint(2, MEMBERS)
        key = f"bench-{'hot' if hot else 'all'}-{next(counter)}"
        actor = Actor(id=f"member-{member}", role="member")
        hold = await run_redemption(
            db=db,
            work=lambda s: place_hold(
                session=s,
                program=program,
                actor=actor,
                member_id=member,
                line="store",
                points=POINTS,
                order_ref=key,
                idempotency_key=key,
            ),
        )
        await run_redemption(
            db=db,
            work=lambda s: capture(
                session=s,
                program=program,
                actor=actor,
                hold_id=hold.id,
                idempotency_key=f"capture-{key}",
                scope=HoldScope(member_id=member),
            ),
        )

    return one


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s per phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    server = os.environ.get("HUB_TEST_DATABASE_URL") or embedded_url(ROOT / ".hub" / "test-pg")
    name = f"hub_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await admin(server, f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(url, pool_size=WORKERS, max_overflow=0)
        try:
            await seed(db)
            pool = await asyncpg.create_pool(dsn=plain_url(url), min_size=WORKERS, max_size=WORKERS)
            raw = Phase(raw_updates(pool))
            across = Phase(redemptions(db, hot=False))
            hot = Phase(redemptions(db, hot=True))
            try:
                for _ in range(ROUNDS):
                    for phase in (raw, across, hot):
                        await phase.run(seconds / ROUNDS)
            finally:
                await pool.close()
            print(f"raw_update tx_per_s={raw.rate:,.0f} workers={WORKERS}", flush=True)
            print(
                f"redemption across_members per_s={across.rate:,.0f} n={across.done} "
                f"members={MEMBERS}",
                flush=True,
            )
            print(f"redemption hot_member per_s={hot.rate:,.0f} n={hot.done}", flush=True)
            print(
                f"ratio={across.rate / raw.rate:.2f} (across members / raw single-row UPDATE; "
                f"hot member {hot.rate / raw.rate:.2f}; {ROUNDS} rounds)"
            )
        finally:
            await db.dispose()
    finally:
        await admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
