"""Accrual throughput, and the member loyalty query under 16 concurrent clients.

Creates a scratch database on the test server (``HUB_TEST_DATABASE_URL``, else the embedded
one under .hub/test-pg), generates members (one per 10 activities, each with a store and a
Taobao record) and N activities in SQL — 60 % store purchases, 30 % Taobao purchases (pending),
10 % partial refunds of store purchases — then accrues them the way ingestion does: batches of
5,000 activity ids, one transaction each. Then 16 concurrent clients run the full ``myLoyalty``
query (tier, points, 20 ledger rows, benefits) for random members. Prints:

    accrual activities_per_s=… n=… points=… seconds=…
    loyalty_query qps=… p50_ms=… p99_ms=… clients=16 members=…

``--quick`` uses 20,000 activities; the default is 1,000,000 (100,000 members).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from hub.core.db import Database, embedded_url, with_database  # noqa: E402
from hub.core.db import admin_execute as admin  # noqa: E402
from hub.core.migrate import upgrade  # noqa: E402
from hub.core.tokens import Principal, Role  # noqa: E402
from hub.loyalty.accrual import accrue_activities  # noqa: E402
from hub.loyalty.program import default_program  # noqa: E402

BATCH = 5_000
CLIENTS = 16

QUERY = """query { myLoyalty {
  tier { code name growth nextTier progress retention }
  points { available pending expiringSoon { amount expiresAt } byBusinessLine { line available } }
  ledger(first: 20) { edges { node { id code delta pendingDelta } } pageInfo { hasNextPage } }
  benefits { code line remaining } } }"""

GENERATE = [
    "INSERT INTO member (id) SELECT g FROM generate_series(1, :members) g",
    "SELECT setval(pg_get_serial_sequence('member', 'id'), :members)",
    """INSERT INTO source_record (source, source_key, business_line, observed_at, content_hash,
         member_id)
       SELECT s, s || ':' || g, CASE s WHEN 'pos' THEN 'store' ELSE 'taobao' END, now(), 'h', g
       FROM generate_series(1, :members) g CROSS JOIN (VALUES ('pos'), ('taobao')) v(s)""",
    # Purchases: 2 of 3 at the store, 1 of 3 on Taobao, spread over 2026.
    """INSERT INTO activity (source, external_id, kind, business_line, source_key, amount_fen,
         quantity, occurred_at, status, content_hash)
       SELECT src, 'o' || g, 'purchase', CASE src WHEN 'pos' THEN 'store' ELSE 'taobao' END,
              src || ':' || (1 + g % :members), 500 + (g::bigint * 7919) % 60000, 0,
              timestamptz '2026-01-01 10:00+08' + (g % 360) * interval '1 day', 'confirmed', 'h'
       FROM (SELECT g, CASE WHEN g % 3 = 2 THEN 'taobao' ELSE 'pos' END AS src
             FROM generate_series(1, :purchases) g) x""",
    # Partial refunds of store purchases, landing after them.
    """INSERT INTO activity (source, external_id, kind, business_line, source_key, amount_fen,
         quantity, occurred_at, status, original_external_id, content_hash)
       SELECT 'pos', 'x' || g, 'refund', 'store', NULL, (500 + (g::bigint * 7919) % 60000) / 2, 0,
              timestamptz '2026-01-02 10:00+08' + (g % 360) * interval '1 day', 'confirmed',
              'o' || g, 'h'
       FROM generate_series(1, :purchases) g WHERE g % 3 = 0
       ORDER BY g LIMIT :refunds""",
]


async def generate(db: Database, n: int) -> int:
    members = max(1, n // 10)
    refunds = n // 10
    params = {"members": members, "purchases": n - refunds, "refunds": refunds}
    async with db.unit_of_work() as session:
        for sql in GENERATE:
            await session.execute(text(sql), params)
    return members


async def accrue(db: Database, n: int) -> tuple[float, int]:
    program = default_program()
    async with db.read() as session:
        ids = list((await session.execute(text("SELECT id FROM activity ORDER BY id"))).scalars())
    points = 0
    start = time.perf_counter()
    for i in range(0, len(ids), BATCH):
        async with db.unit_of_work() as session:
            report = await accrue_activities(
                session=session, program=program, activity_ids=ids[i : i + BATCH]
            )
        points += report.points
    return time.perf_counter() - start, points


async def query_load(db: Database, members: int, requests: int) -> tuple[float, list[float]]:
    from strawberry import Schema

    from schema.context import Context
    from schema.limits import extensions
    from schema.loyalty.queries import LoyaltyQuery

    schema = Schema(
        query=LoyaltyQuery,
        extensions=extensions(max_depth=12, max_tokens=2_000, max_aliases=30, introspection=False),
    )
    latencies: list[float] = []
    rng = random.Random(7)

    async def client(count: int) -> None:
        for _ in range(count):
            member = rng.randint(1, members)
            context = Context(
                principal=Principal(subject=f"m{member}", role=Role.MEMBER, member_id=member),
                db=db,
                settings=None,  # type: ignore[arg-type]
                keyring=None,  # type: ignore[arg-type]
            )
            t0 = time.perf_counter()
            result = await schema.execute(QUERY, context_value=context)
            latencies.append(time.perf_counter() - t0)
            if result.errors:
                raise SystemExit(f"query failed: {result.errors}")

    start = time.perf_counter()
    await asyncio.gather(*(client(requests // CLIENTS) for _ in range(CLIENTS)))
    return time.perf_counter() - start, latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1_000_000, help="activities to accrue")
    parser.add_argument("--quick", action="store_true", help="20,000 activities")
    parser.add_argument("--requests", type=int, default=0, help="queries (default n/100)")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.n
    requests = args.requests or max(CLIENTS * 20, min(n // 100, 20_000))
    server = os.environ.get("HUB_TEST_DATABASE_URL") or embedded_url(ROOT / ".hub" / "test-pg")
    name = f"hub_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await admin(server, f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(url, pool_size=CLIENTS, max_overflow=4)
        try:
            t0 = time.perf_counter()
            members = await generate(db, n)
            print(f"generated n={n} members={members} in {time.perf_counter() - t0:.1f} s")
            seconds, points = await accrue(db, n)
            print(
                f"accrual activities_per_s={n / seconds:,.0f} n={n} points={points} "
                f"seconds={seconds:.1f}",
                flush=True,
            )
            async with db.unit_of_work() as session:
                await session.execute(text("ANALYZE"))
            elapsed, latencies = await query_load(db, members, requests)
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
            print(
                f"loyalty_query qps={len(latencies) / elapsed:,.0f} p50_ms={p50:.1f} "
                f"p99_ms={p99:.1f} clients={CLIENTS} members={members}"
            )
        finally:
            await db.dispose()
    finally:
        await admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
