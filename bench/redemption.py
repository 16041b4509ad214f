"""Redemption throughput (hold + capture) next to raw single-row UPDATE transactions.

Creates a scratch database on the test server (``HUB_TEST_DATABASE_URL``, else the embedded one
under .hub/test-pg), gives 1,000 members points the way the hub does (app purchases accrued,
then released from their return window, so every redemption at the store also writes a
settlement entry app → store), then, with the same number of concurrent workers each time:

1. raw: single-row ``UPDATE … SET n = n + 1`` transactions over 1,000 rows (asyncpg pool,
   BEGIN/UPDATE/COMMIT, and the pool's reset query on release, asyncpg's default) — what the
   database gives the simplest possible transaction;
2. across members: one redemption = ``place_hold`` + ``capture`` of 10 points for a random
   member, each through ``run_redemption`` — what the ``redeemPoints`` and
   ``captureRedemption`` mutations run for a member's token, without HTTP: the member as
   actor and hold scope, an idempotency key on both calls (a client retrying either must not
   spend twice), the hold's lots, postings, settlement entries and stored outcomes; calls the
   workers make at the same moment go to the server together, as the mutations' do
   (``hub.core.batch``; ``--batch-calls 1`` sends each alone);
3. hot member: the same, every worker on one member (its account lock serialises the holds).

The three take turns in short windows, a round in each of the six orders they can run in (each
phase's seconds split between its six windows), so load from other work on the machine falls on
both sides of the ratio alike, and each phase follows each of the others equally often: a
window right after a raw window was measured 5–17 % slower than one after a redemption window,
and in one fixed order every across-members window came after a raw one (bench/README.md).
Each figure is its operations over its own time. Prints one line per figure and ``ratio=``
(across members / raw; target ≥ 0.25)::

    raw_update tx_per_s=… workers=…
    redemption across_members per_s=… n=…
    redemption hot_member per_s=… n=…
    ratio=…
    cpu_ms_per_op raw=… across_members=… (client … + backends …) cpu_ratio=…
    batching statements=… calls=… calls_per_statement=… resent_alone=…

The last line is CPU time per operation — this process plus the server processes of the
phase's connections, read from ``/proc`` (so only when the server runs on this machine) — and
their ratio (raw / across members): what the rate ratio tends to when both sides are CPU-bound
on the same cores. On a shared machine it moves much less with the neighbours' load than the
rates do (commit latency and the share of the cores one gets vary; the work per operation does
not), so it is the figure to compare changes by.

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
from hub.core.batch import MAX_CALLS  # noqa: E402
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
# The rounds: the phases (0 raw, 1 across members, 2 hot member) take turns in each of their six
# orders, arranged so that each phase follows each of the others in exactly two windows.
ORDERS = ((0, 1, 2), (2, 0, 1), (1, 0, 2), (2, 1, 0), (0, 2, 1), (1, 2, 0))
RAW_APPLICATION = "bench-raw"  # how each phase's server processes are found
HUB_APPLICATION = "member-hub"  # Database's application_name


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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a local process so far (None when it is not on this machine)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phase:
    """One figure, measured in several windows: its operations, seconds and CPU add up.

    CPU is this process's plus that of the server processes serving ``application`` on the
    bench database (``pids``), when they are local.
    """

    def __init__(self, one: One, application: str) -> None:
        self.one = one
        self.application = application
        self.done = 0
        self.seconds = 0.0
        self.client_cpu = 0.0
        self.server_cpu: float | None = 0.0

    async def run(self, seconds: float, admin: asyncpg.Connection) -> None:
        stop = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            while time.perf_counter() < stop:
                await self.one(w)
                self.done += 1

        before = {p: cpu_seconds(p) for p in await self.pids(admin)}
        client = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(WORKERS)))
        self.seconds += time.perf_counter() - start
        self.client_cpu += time.process_time() - client
        # Connections opened during the window (pools open theirs on demand) count whole.
        after = {p: cpu_seconds(p) for p in await self.pids(admin) | before.keys()}
        used = [
            a - (before.get(p) or 0.0)
            for p, a in after.items()
            if a is not None and (p not in before or before[p] is not None)
        ]
        if self.server_cpu is None or not after or len(used) < len(after):
            self.server_cpu = None  # a remote server (or no connection seen): client only
        else:
            self.server_cpu += sum(used)

    async def pids(self, admin: asyncpg.Connection) -> set[int]:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = $1",
            self.application,
        )
        return {r["pid"] for r in rows}

    def cpu_ms(self) -> str:
        if self.server_cpu is None:
            return "n/a"
        return f"{(self.client_cpu + self.server_cpu) / self.done * 1e3:.2f}"

    def split_ms(self) -> str:
        if self.server_cpu is None:
            return f"client {self.client_cpu / self.done * 1e3:.2f}"
        return (
            f"client {self.client_cpu / self.done * 1e3:.2f} + "
            f"backends {self.server_cpu / self.done * 1e3:.2f}"
        )

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
    parser.add_argument(
        "--batch-calls",
        type=int,
        default=MAX_CALLS,
        help="redemption calls to a statement at most (HUB_DB_BATCH_CALLS); 1 = each alone",
    )
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    server = os.environ.get("HUB_TEST_DATABASE_URL") or embedded_url(ROOT / ".hub" / "test-pg")
    name = f"hub_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await admin(server, f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(url, pool_size=WORKERS, max_overflow=0, batch_calls=args.batch_calls)
        try:
            await seed(db)
            pool = await asyncpg.create_pool(
                dsn=plain_url(url),
                min_size=WORKERS,
                max_size=WORKERS,
                server_settings={"application_name": RAW_APPLICATION},
                # asyncpg replaces a connection after 50,000 queries by default: at ~8,000
                # transactions/s that happened inside a window, and a backend that ends mid-window
                # takes its CPU with it (``raw=n/a``).
                max_queries=2**31 - 1,
            )
            admin_conn = await asyncpg.connect(dsn=plain_url(url))
            raw = Phase(raw_updates(pool), RAW_APPLICATION)
            across = Phase(redemptions(db, hot=False), HUB_APPLICATION)
            hot = Phase(redemptions(db, hot=True), HUB_APPLICATION)
            phases = (raw, across, hot)
            try:
                for order in ORDERS:
                    for i in order:
                        await phases[i].run(seconds / len(ORDERS), admin_conn)
            finally:
                await admin_conn.close()
                await pool.close()
            print(f"raw_update tx_per_s={raw.rate:,.0f} workers={WORKERS}", flush=True)
            print(
                f"redemption across_members per_s={across.rate:,.0f} n={across.done} "
                f"members={MEMBERS}",
                flush=True,
            )
            print(f"redemption hot_member per_s={hot.rate:,.0f} n={hot.done}", flush=True)
            print(
                # Three places: at two, 0.246 printed as 0.25, the target's own figure.
                f"ratio={across.rate / raw.rate:.3f} (across members / raw single-row UPDATE; "
                f"hot member {hot.rate / raw.rate:.3f}; {len(ORDERS)} rounds)",
                flush=True,
            )
            cpu_ratio = (
                f"{float(raw.cpu_ms()) / float(across.cpu_ms()):.2f}"
                if raw.server_cpu is not None and across.server_cpu is not None
                else "n/a"
            )
            print(
                f"cpu_ms_per_op raw={raw.cpu_ms()} ({raw.split_ms()}) "
                f"across_members={across.cpu_ms()} ({across.split_ms()}) "
                f"hot_member={hot.cpu_ms()} cpu_ratio={cpu_ratio}"
            )
            sent = db.batcher.stats if db.batcher is not None else None
            print(
                f"batching statements={sent.statements:,} calls={sent.calls:,} "
                f"calls_per_statement={sent.calls / max(sent.statements, 1):.1f} "
                f"resent_alone={sent.resent:,}"
                if sent is not None
                else "batching off (--batch-calls 1): every call a statement of its own",
                flush=True,
            )
        finally:
            await db.dispose()
    finally:
        await admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
