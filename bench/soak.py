"""Soak: a mixed workload against one `hub serve` process for M minutes.

80% profile reads (the member's ``me`` view and the agent's ``member(id)`` view), 10%
redemptions (hold then capture, as the member), 10% ingest (a partner pushing one new activity
or one new source record), from a few keep-alive clients on 127.0.0.1. The loops are bounded by
time and by count and stop by themselves. Prints::

    soak op=me n=… p50_ms=… p99_ms=… errors=…        (one line per operation)
    soak total ops=… rps=… errors=… declined=…
    soak rss_mb start=… warm=… end=… growth_after_warmup_mb=…
    soak ledger_check=ok exit=0

``declined`` counts typed refusals the workload can meet honestly (a member without enough
points); anything else unexpected is an error. The database is ``hub generate`` + ``hub
import`` of ``--people`` synthetic people with the nightly jobs run, built once on the bench
server (``.hub/bench-pg``, or ``HUB_BENCH_DATABASE_URL``'s) as a template and copied fresh for
every run. ``--quick`` is one minute.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402

from hub.core.db import embedded_url, plain_url, with_database  # noqa: E402
from hub.core.tokens import Role, issue_token  # noqa: E402

VERSION = 1  # bump when the template's contents change
JWT_SECRET = "soak-secret-that-is-long-enough-for-hs256"
ENV = {
    "HUB_ENV": "test",
    "HUB_JWT_SECRET": JWT_SECRET,
    "HUB_HASH_KEYS": json.dumps({"h1": base64.urlsafe_b64encode(b"s" * 32).decode()}),
    "HUB_HASH_KEY_ID": "h1",
    "HUB_ENCRYPTION_KEYS": json.dumps({"k1": base64.urlsafe_b64encode(b"t" * 32).decode()}),
    "HUB_ENCRYPTION_KEY_ID": "k1",
    "HUB_RATE_LIMIT_COST_PER_S": "0",  # one agent token carries 40% of the load
    "HUB_LOG_LEVEL": "WARNING",
}
MIX = (("me", 40), ("member", 40), ("redeem", 10), ("ingest", 10))
MAX_OPS_PER_S = 2_000  # the count bound: no run sends more than this per second of its length
LOYALTY = """tier { code name growth nextTier progress retention periodEnd }
  points { available pending debt expiringSoon { amount expiresAt } byBusinessLine { line available } }
  ledger(first: 20) { edges { cursor node { id at code delta pendingDelta reason } }
                      pageInfo { hasNextPage endCursor } }
  benefits { code line description period remaining }"""
ME = "query Me { me { memberId profile { id name gender birthYear identifiers { kind value } } %s } }"
MEMBER = """query Agent($id: ID!) { member(id: $id) {
  id status name gender birthYear identifiers { kind value }
  sourceRecords { id source sourceKey businessLine observedAt identifiers { kind value } }
  links { sourceRecordId rule explain } loyalty { memberId %s } } }"""
REDEEM = """mutation R($input: RedeemPointsInput!) { redeemPoints(input: $input) { __typename
  ... on RedeemPointsSuccess { redemption { id } } } }"""
CAPTURE = """mutation C($input: CaptureRedemptionInput!) { captureRedemption(input: $input) {
  __typename } }"""
ACTIVITIES = """mutation A($input: IngestActivitiesInput!) { ingestActivities(input: $input) {
  __typename ... on IngestResult { new rejected } } }"""
RECORDS = """mutation S($input: IngestSourceRecordsInput!) { ingestSourceRecords(input: $input) {
  __typename ... on IngestResult { new rejected } } }"""


# -- the database -----------------------------------------------------------------------------
async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn=plain_url(url))


def hub(*args: str, url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env={**os.environ, **ENV, "HUB_DATABASE_URL": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"hub {args[0]} failed:\n{done.stdout}{done.stderr}")


async def prepare(server: str, people: int) -> str:
    """A fresh copy of the template database (built on first use); its URL."""
    template = f"soak_template_{people}_v{VERSION}"
    admin = await connect(server)
    try:
        built = await admin.fetchval(
            "SELECT datname FROM pg_database WHERE datname = $1 AND NOT datallowconn", template
        )
        if built is None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{template}"')
            url = with_database(server, template)
            print(f"soak building template: {people:,} people (once)", file=sys.stderr)
            with tempfile.TemporaryDirectory() as folder:
                hub("migrate", url=url)
                hub("generate", "--people", str(people), "--out", folder, "--seed", "7", url=url)
                hub("import", "auto", folder, url=url)
                hub("pending", "release", url=url)
                hub("tiers", "evaluate", url=url)
            # Done: closed to connections, which also marks it complete for the next run.
            await admin.execute(f'ALTER DATABASE "{template}" WITH ALLOW_CONNECTIONS false')
        run = f"soak_run_{people}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{run}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    url = with_database(server, run)
    hub("migrate", url=url)  # the code may be newer than the template
    return url


@dataclass
class Population:
    members: list[int]
    spenders: list[int]  # members with points to redeem
    pos_keys: list[str]  # source keys of store records, so new activities reach a member


async def population(url: str) -> Population:
    conn = await connect(url)
    try:
        members = [
            r["id"]
            for r in await conn.fetch("SELECT id FROM member WHERE status = 'active' ORDER BY id")
        ]
        spenders = [
            r["member_id"]
            for r in await conn.fetch(
                "SELECT member_id FROM loyalty_account WHERE kind = 'member_available' "
                "AND balance >= 2000 ORDER BY member_id"
            )
        ]
        keys = [
            r["source_key"]
            for r in await conn.fetch(
                "SELECT source_key FROM source_record WHERE source = 'pos' ORDER BY id LIMIT 2000"
            )
        ]
    finally:
        await conn.close()
    return Population(members, spenders, keys)


# -- the server -------------------------------------------------------------------------------
def start_server(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **ENV, "HUB_DATABASE_URL": url},
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )


async def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit("hub serve exited; see its log")
            try:
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("hub serve did not become ready in 30 s")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the workload -----------------------------------------------------------------------------
@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    declined: int = 0
    samples: list[str] = field(default_factory=list)

    def error(self, op: str, what: str) -> None:
        self.errors[op] = self.errors.get(op, 0) + 1
        if len(self.samples) < 5:
            self.samples.append(f"{op}: {what[:300]}")


class Workload:
    def __init__(self, pop: Population, run_id: str) -> None:
        self.pop = pop
        self.run_id = run_id
        self.seq = 0
        self.agent = self._bearer(Role.AGENT, "soak-agent")
        self.partner = self._bearer(Role.PARTNER, "soak-pos", business_line="store")
        self.members: dict[int, dict[str, str]] = {}

    @staticmethod
    def _bearer(role: Role, subject: str, **claims: Any) -> dict[str, str]:
        token = issue_token(secret=JWT_SECRET, role=role, subject=subject, **claims)
        return {"Authorization": f"Bearer {token}"}

    def member(self, member: int) -> dict[str, str]:
        if member not in self.members:
            self.members[member] = self._bearer(Role.MEMBER, f"m-{member}", member_id=member)
        return self.members[member]

    def next_id(self) -> str:
        self.seq += 1
        return f"SOAK-{self.run_id}-{self.seq}"

    async def post(
        self, client: httpx.AsyncClient, headers: dict[str, str], query: str, **variables: Any
    ) -> dict[str, Any]:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body: dict[str, Any] = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"status {response.status_code}: {json.dumps(body)[:300]}")
        return body["data"]  # type: ignore[no-any-return]

    async def run(self, op: str, client: httpx.AsyncClient, rng: random.Random, t: Tally) -> None:
        if op == "me":
            await self.post(client, self.member(rng.choice(self.pop.members)), ME % LOYALTY)
        elif op == "member":
            data = await self.post(
                client, self.agent, MEMBER % LOYALTY, id=str(rng.choice(self.pop.members))
            )
            if data["member"] is None:
                raise RuntimeError("an active member was not found")
        elif op == "redeem":
            await self.redeem(client, rng, t)
        else:
            await self.ingest(client, rng)

    async def redeem(self, client: httpx.AsyncClient, rng: random.Random, t: Tally) -> None:
        who = self.member(rng.choice(self.pop.spenders))
        key = self.next_id()
        held = await self.post(
            client,
            who,
            REDEEM,
            input={"line": "store", "points": 10, "orderRef": key, "idempotencyKey": key},
        )
        result = held["redeemPoints"]
        if result["__typename"] == "InsufficientPoints":
            t.declined += 1
            return
        if result["__typename"] != "RedeemPointsSuccess":
            raise RuntimeError(result["__typename"])
        hold = result["redemption"]["id"]
        done = await self.post(
            client, who, CAPTURE, input={"redemptionId": hold, "idempotencyKey": f"c-{key}"}
        )
        if done["captureRedemption"]["__typename"] != "CaptureRedemptionSuccess":
            raise RuntimeError(done["captureRedemption"]["__typename"])

    async def ingest(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        external = self.next_id()
        if rng.random() < 0.5:
            item = {
                "source": "pos",
                "externalId": external,
                "kind": "PURCHASE",
                "occurredAt": "2026-11-01T10:00:00+08:00",
                "status": "CONFIRMED",
                "sourceKey": rng.choice(self.pop.pos_keys),
                "amountFen": rng.randint(100, 50_000),
            }
            data = (await self.post(client, self.partner, ACTIVITIES, input={"items": [item]}))[
                "ingestActivities"
            ]
        else:
            phone = f"138{rng.randint(0, 99_999_999):08d}"
            item = {
                "source": "pos",
                "sourceKey": external,
                "observedAt": "2026-11-01T10:00:00+08:00",
                "identifiers": [{"kind": "PHONE", "value": phone, "verified": True}],
                "name": "测试会员",
            }
            data = (await self.post(client, self.partner, RECORDS, input={"items": [item]}))[
                "ingestSourceRecords"
            ]
        if data["__typename"] != "IngestResult" or (data["new"], data["rejected"]) != (1, 0):
            raise RuntimeError(json.dumps(data))


async def client_loop(
    base: str, work: Workload, seed: int, stop_at: float, budget: list[int], t: Tally
) -> None:
    rng = random.Random(seed)
    ops = [op for op, _ in MIX]
    weights = [weight for _, weight in MIX]
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < stop_at and budget[0] > 0:
            budget[0] -= 1
            op = rng.choices(ops, weights)[0]
            started = time.perf_counter()
            try:
                await work.run(op, client, rng, t)
            except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as exc:
                t.error(op, f"{type(exc).__name__}: {exc}")
                continue
            t.latencies.setdefault(op, []).append((time.perf_counter() - started) * 1000)


def rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / 2**20


def pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def soak(minutes: float, clients: int, people: int) -> int:
    server = os.environ.get("HUB_BENCH_DATABASE_URL") or embedded_url(ROOT / ".hub" / "bench-pg")
    url = await prepare(server, people)
    pop = await population(url)
    if not pop.spenders or not pop.pos_keys:
        raise SystemExit("the soak database has no members with points or no store records")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = ROOT / ".hub" / "soak-serve.log"
    proc = start_server(url, port, log)
    try:
        await wait_ready(base, proc)
        server_proc = psutil.Process(proc.pid)
        start_rss = rss_mb(server_proc)
        seconds = minutes * 60
        warm_at = min(60.0, seconds / 10)
        began = time.monotonic()
        budget = [int(seconds * MAX_OPS_PER_S)]
        tally = Tally()
        work = Workload(pop, uuid.uuid4().hex[:8])
        loops = asyncio.gather(
            *(
                client_loop(base, work, seed, began + seconds, budget, tally)
                for seed in range(clients)
            )
        )
        await asyncio.sleep(warm_at)
        warm_rss = rss_mb(server_proc)
        await loops
        elapsed = time.monotonic() - began
        end_rss = rss_mb(server_proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    check = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hub.cli", "ledger", "check"],
        env={**os.environ, **ENV, "HUB_DATABASE_URL": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    total_errors = sum(tally.errors.values())
    done = sum(len(v) for v in tally.latencies.values())
    print(
        f"soak minutes={minutes:g} clients={clients} people={people:,} members={len(pop.members):,}"
    )
    for op, _ in MIX:
        values = tally.latencies.get(op, [])
        print(
            f"soak op={op} n={len(values):,} p50_ms={pct(values, 50):.1f} "
            f"p99_ms={pct(values, 99):.1f} errors={tally.errors.get(op, 0)}"
        )
    print(
        f"soak total ops={done:,} rps={done / elapsed:,.0f} errors={total_errors} "
        f"declined={tally.declined}"
    )
    print(
        f"soak rss_mb start={start_rss:.0f} warm={warm_rss:.0f} end={end_rss:.0f} "
        f"growth_after_warmup_mb={end_rss - warm_rss:+.0f}"
    )
    verdict = "ok" if check.returncode == 0 else "PROBLEMS"
    print(f"soak ledger_check={verdict} exit={check.returncode}")
    for sample in tally.samples:
        print(f"soak error_sample {sample}")
    if check.returncode != 0:
        print(check.stdout + check.stderr)
    return 0 if total_errors == 0 and check.returncode == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="one minute")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--people", type=int, default=3_000)
    args = parser.parse_args()
    minutes = 1.0 if args.quick else args.minutes
    if not 0 < minutes <= 24 * 60 or not 1 <= args.clients <= 64:
        parser.error("--minutes must be in (0, 1440] and --clients in [1, 64]")
    raise SystemExit(asyncio.run(soak(minutes, args.clients, args.people)))


if __name__ == "__main__":
    main()
