"""The profile views under load: `member(id)` for agents and `me` for members, over HTTP.

One run measures, at 16 concurrent keep-alive clients against one `uvicorn` process (the way
`hub serve` runs: asyncio loop, the full app with its middleware and GraphQL extensions):

(a) both views against a database of 100,000 members with realistic history (``--quick``: 5,000):
    2.5 source records per member with identifiers, links (with explain) and attach/merge
    events; transfers in time order across members — most members have 1-5, a quarter 10-40
    and one in twenty 60-200 — with a lot and a growth fact per accrual, balances, tier state
    and some benefit claims;
(b) the same views served from in-memory objects (the same app and schema; the DataLoaders
    answer from a snapshot of the same members' rows): the GraphQL ceiling on this machine.

Prints one line per view and mode, then per view:

    profile_query view=agent rps=… p50_ms=… p99_ms=… ceiling_rps=… ratio=…

``--workers N`` runs each side as N uvicorn worker processes over one socket (both sides alike;
CPU is summed over the workers). Per mode and view it also prints the server's and the
clients' CPU per request (the clients are raw asyncio keep-alive HTTP/1.1 with pre-encoded
requests: a few hundredths of a millisecond each).

The database is built with set-based SQL on an embedded PostgreSQL under ``.hub/bench-pg`` (or
``HUB_BENCH_DATABASE_URL``'s server) and kept between runs, keyed by size and generator
version; ``--fresh`` rebuilds it. Migrations are applied to a kept database before each run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from hub.core.db import admin_execute as admin  # noqa: E402
from hub.core.db import embedded_url, plain_url, with_database  # noqa: E402

GENERATOR_VERSION = 1
CLIENTS = 16
JWT_SECRET = "bench-secret-that-is-long-enough-for-hs256"
KEYS = {
    "hash_keys": {"h1": base64.urlsafe_b64encode(b"b" * 32).decode()},
    "encryption_keys": {"k1": base64.urlsafe_b64encode(b"e" * 32).decode()},
}
SNAPSHOT_MEMBERS = 1_000  # members the in-memory server holds (and the clients ask for)

LOYALTY = """
    tier { code name growth nextTier progress retention periodEnd }
    points { available pending debt expiringSoon { amount expiresAt }
             byBusinessLine { line available } }
    ledger(first: 20) { edges { cursor node { id at code delta pendingDelta reason } }
                        pageInfo { hasNextPage endCursor } }
    benefits { code line description period remaining }"""

VIEWS = {
    "agent": """query AgentView($id: ID!) { member(id: $id) {
  id status mergedInto name nameLatin gender birthYear address identifiers { kind value }
  sourceRecords { id source sourceKey businessLine observedAt pinned erased
                  identifiers { kind scope value verified } }
  links { sourceRecordId linkedTo rule scoreBits explain createdAt createdBy }
  loyalty { memberId @LOYALTY@ } } }""".replace("@LOYALTY@", LOYALTY),
    "me": """query MeView { me {
  memberId
  profile { id name nameLatin gender birthYear identifiers { kind value } }
  @LOYALTY@ } }""".replace("@LOYALTY@", LOYALTY),
}

# -- the database -----------------------------------------------------------------------------
LINES = ("store", "app", "taobao", "douyin", "hotel")
SOURCES = "(VALUES ('pos', 'store'), ('app', 'app'), ('taobao', 'taobao'), " + (
    "('douyin', 'douyin'), ('hotel', 'hotel')) v(s, line)"
)
MEMBER_ACCOUNT_BASE = 100  # member g has accounts 100 + 3(g-1) + {0 available, 1 pending, 2 debt}

GENERATE = [
    """INSERT INTO member (id, golden_masked, created_at, updated_at)
       SELECT g, jsonb_build_object('name', '测*' || (ARRAY['一', '二', '三'])[1 + g % 3],
           'name_latin', 'c** s**', 'gender', CASE WHEN g % 2 = 0 THEN 'f' ELSE 'm' END,
           'birth_year', 1960 + g % 45, 'address', '上海市**区',
           'identifiers', jsonb_build_object('phone', '138****' || lpad((g % 10000)::text, 4, '0'),
                                             'email', 'u***@example.com')),
         now() - (g % 700) * interval '1 day', now() - (g % 30) * interval '1 day'
       FROM generate_series(1, :m) g""",
    "SELECT setval(pg_get_serial_sequence('member', 'id'), :m)",
    f"""INSERT INTO source_record (source, source_key, business_line, first_seen_at, observed_at,
         content_hash, member_id)
       SELECT v.s, v.s || ':' || g, v.line, now() - (g % 700) * interval '1 day',
              now() - ((g * 7) % 400) * interval '1 day', md5(v.s || g), g
       FROM generate_series(1, :m) g CROSS JOIN {SOURCES}
       WHERE v.s = 'pos' OR (v.s = 'app' AND g % 2 = 0) OR (v.s = 'taobao' AND g % 3 <> 0)
          OR (v.s = 'douyin' AND g % 5 = 0) OR (v.s = 'hotel' AND g % 7 = 0)
       ORDER BY g""",
    """INSERT INTO source_identifier (source_record_id, kind, scope, hash, verified, masked)
       SELECT id, 'phone', '', md5('p' || member_id), source IN ('pos', 'app'),
              '138****' || lpad((member_id % 10000)::text, 4, '0') FROM source_record
       UNION ALL
       SELECT id, 'nick', source, md5('n' || id), false, 't***' FROM source_record
         WHERE source IN ('taobao', 'douyin')
       UNION ALL
       SELECT id, 'unionid', '', md5('u' || member_id), true, NULL FROM source_record
         WHERE source = 'app'""",
    """INSERT INTO identity_link (source_record_id, member_id, linked_to, rule, score, explain,
         created_at, created_by)
       SELECT r.id, r.member_id, CASE WHEN r.source = 'pos' THEN NULL ELSE p.id END,
         CASE WHEN r.source = 'pos' THEN 'first' WHEN r.id % 10 = 0 THEN 'score'
              ELSE 'key:phone' END,
         CASE WHEN r.id % 10 = 0 AND r.source <> 'pos' THEN 12.5 + r.id % 7 END,
         CASE WHEN r.source = 'pos' THEN '{}'::jsonb ELSE jsonb_build_object(
           'rule', 'key:phone', 'total_bits', 12.5,
           'fields', jsonb_build_object(
             'phone', jsonb_build_object('level', 'exact', 'bits', 9.1),
             'name', jsonb_build_object('level', 'pinyin', 'bits', 2.3),
             'city', jsonb_build_object('level', 'same', 'bits', 1.1))) END,
         r.first_seen_at, 'import'
       FROM source_record r JOIN source_record p ON p.source = 'pos'
         AND p.source_key = 'pos:' || r.member_id""",
    """INSERT INTO identity_event (at, kind, source_record_id, from_member, to_member, rule,
         actor, batch)
       SELECT at, kind, rec, frm, too, rule, 'import', 1 FROM (
         SELECT r.first_seen_at AS at, 'attach' AS kind, r.id AS rec, NULL::bigint AS frm,
                r.member_id AS too, l.rule
           FROM source_record r JOIN identity_link l ON l.source_record_id = r.id
         UNION ALL
         SELECT r.first_seen_at + interval '1 hour', 'merge', r.id, :m + r.member_id,
                r.member_id, 'key:unionid'
           FROM source_record r WHERE r.source = 'app' AND r.member_id % 20 = 0) e
       ORDER BY at""",
    # Line accounts first (issuance 1-5, expiry 6-10), then three per member.
    """INSERT INTO loyalty_account (id, kind, line, allow_negative)
       SELECT row_number() OVER (ORDER BY k.o, l.o), k.kind, l.line, true
       FROM (VALUES (1, 'issuance'), (2, 'expiry')) k(o, kind)
       CROSS JOIN unnest(CAST(:lines AS text[])) WITH ORDINALITY l(line, o)""",
    """INSERT INTO loyalty_account (id, kind, member_id, balance, allow_negative)
       SELECT 100 + 3 * (g - 1) + k.o, k.kind, g, 0, k.kind = 'member_debt'
       FROM generate_series(1, :m) g CROSS JOIN (VALUES (0, 'member_available'),
         (1, 'member_pending'), (2, 'member_debt')) k(o, kind)""",
    "SELECT setval(pg_get_serial_sequence('loyalty_account', 'id'), 100 + 3 * :m)",
    # Every tenth transfer expires a few points; the rest accrue (one in ten pending). Inserted
    # in time order, so one member's transfers are spread over the table like in production.
    """INSERT INTO loyalty_transfer (debit_account, credit_account, amount, code,
         idempotency_key, effective_at)
       SELECT CASE WHEN k % 10 = 0 THEN 100 + 3 * (g - 1) ELSE 1 + (g + k) % 5 END,
              CASE WHEN k % 10 = 0 THEN 6 + (g + k) % 5
                   WHEN k % 10 = 5 THEN 101 + 3 * (g - 1) ELSE 100 + 3 * (g - 1) END,
              CASE WHEN k % 10 = 0 THEN 5 + k % 7 ELSE 10 + (g * 31 + k * 17) % 490 END,
              CASE WHEN k % 10 = 0 THEN 'expire' WHEN k % 10 = 5 THEN 'accrue_pending'
                   ELSE 'accrue' END,
              'bench:' || g || ':' || k,
              now() - (n - k) * interval '3 days' - (g % 86400) * interval '1 second'
       FROM (SELECT g, CASE WHEN (g * 2654435761) % 1000 < 700 THEN 1 + g % 5
                            WHEN (g * 2654435761) % 1000 < 950 THEN 10 + g % 31
                            ELSE 60 + g % 141 END AS n
             FROM generate_series(1, :m) g) y
       CROSS JOIN LATERAL generate_series(1, y.n) k
       ORDER BY 6""",
    """INSERT INTO loyalty_lot (member_id, issuer_line, state, earned_at, pending_until,
         expires_at, amount, remaining)
       SELECT c.member_id, d.line,
              CASE WHEN t.code = 'accrue_pending' AND t.effective_at > now() - interval '15 days'
                   THEN 'pending' ELSE 'available' END,
              t.effective_at, t.effective_at + interval '15 days',
              date_trunc('year', t.effective_at) + interval '2 years',
              t.amount,
              CASE WHEN t.effective_at < now() - interval '400 days' THEN 0
                   ELSE t.amount - t.id % 3 END
       FROM loyalty_transfer t JOIN loyalty_account c ON c.id = t.credit_account
       JOIN loyalty_account d ON d.id = t.debit_account
       WHERE t.code IN ('accrue', 'accrue_pending')""",
    """INSERT INTO loyalty_growth (member_id, line, amount, earned_at, key)
       SELECT c.member_id, d.line, t.amount, t.effective_at, 'bench:' || t.id
       FROM loyalty_transfer t JOIN loyalty_account c ON c.id = t.credit_account
       JOIN loyalty_account d ON d.id = t.debit_account
       WHERE t.code IN ('accrue', 'accrue_pending')""",
    """UPDATE loyalty_account a SET balance = s.balance
       FROM (SELECT account, sum(delta) AS balance FROM (
               SELECT credit_account AS account, amount AS delta FROM loyalty_transfer
               UNION ALL SELECT debit_account, -amount FROM loyalty_transfer) u
             WHERE account >= 100 GROUP BY account) s
       WHERE a.id = s.account""",
    """INSERT INTO loyalty_tier_state (member_id, tier, since, period_start, period_end)
       SELECT m.id, CASE WHEN coalesce(g.total, 0) >= 10000 THEN 'V5'
                         WHEN coalesce(g.total, 0) >= 5000 THEN 'V4'
                         WHEN coalesce(g.total, 0) >= 2000 THEN 'V3'
                         WHEN coalesce(g.total, 0) >= 500 THEN 'V2' ELSE 'V1' END,
              :period_start, :period_start, :period_end
       FROM member m LEFT JOIN (SELECT member_id, sum(amount) AS total FROM loyalty_growth
                                WHERE earned_at >= :period_start GROUP BY member_id) g
         ON g.member_id = m.id""",
    """INSERT INTO loyalty_benefit_claim (member_id, benefit, line, period_start, claimed_at,
         idempotency_key, actor)
       SELECT s.member_id, :benefit, :benefit_line, :benefit_start, now() - interval '1 day',
              'bench:' || s.member_id, 'member'
       FROM loyalty_tier_state s WHERE s.tier >= 'V2' AND s.member_id % 3 = 0""",
]


async def generate(url: str, members: int) -> None:
    from datetime import datetime

    from sqlalchemy import text

    from hub.core.db import Database
    from hub.loyalty import benefits
    from hub.loyalty.program import default_program

    program = default_program()
    now = datetime.now(program.timezone)
    item = program.benefits[0]
    year_start = datetime(now.year, 1, 1, tzinfo=program.timezone)
    params: dict[str, Any] = {
        "m": members,
        "lines": list(LINES),
        "period_start": year_start,
        "period_end": year_start.replace(year=now.year + 1),
        "benefit": item.code,
        "benefit_line": item.line,
        "benefit_start": benefits.quota_period(program, item, now).start,
    }
    db = Database(url, pool_size=1, max_overflow=0, statement_timeout_ms=3_600_000)
    try:
        async with db.unit_of_work() as session:
            for sql in GENERATE:
                wanted = {k: v for k, v in params.items() if f":{k}" in sql}
                await session.execute(text(sql), wanted)
    finally:
        await db.dispose()
    conn = await asyncpg.connect(dsn=plain_url(url))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def ensure_database(server: str, members: int, fresh: bool) -> str:
    """The bench database for this size: reused when a finished one exists, else built."""
    from hub.core.migrate import upgrade

    name = f"hub_profile_{members}_v{GENERATOR_VERSION}"
    building = name + "_building"
    (rows,) = await admin(server, "SELECT datname FROM pg_database")
    have = {r[0] for r in rows}
    if name in have and not fresh:
        url = with_database(server, name)
        await asyncio.to_thread(upgrade, url)  # new read indexes land on a kept database too
        print(f"reusing database {name}", flush=True)
        return url
    await admin(
        server,
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)',
        f'CREATE DATABASE "{building}"',
    )
    url = with_database(server, building)
    t0 = time.perf_counter()
    await asyncio.to_thread(upgrade, url)
    await generate(url, members)
    # Renamed only when complete: an interrupted build is never mistaken for a finished one.
    await admin(server, f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    print(f"built database {name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return with_database(server, name)


# -- the server (a child process) -------------------------------------------------------------
def bench_settings(url: str) -> Any:
    from hub.core.settings import Env, Settings

    return Settings(
        env=Env.TEST,
        database_url=url,
        data_dir=ROOT / ".hub" / "bench-pg",
        jwt_secret=JWT_SECRET,  # type: ignore[arg-type]
        hash_keys=KEYS["hash_keys"],
        hash_key_id="h1",
        encryption_keys=KEYS["encryption_keys"],
        encryption_key_id="k1",
        db_pool_size=CLIENTS,
        db_max_overflow=4,
        persisted_operations="off",
        rate_limit_cost_per_s=1e9,  # charged on every request, never refused: 16 clients, 1 token
        rate_limit_burst=1e9,
        log_level="WARNING",
    )


@dataclass
class Snapshot:
    """Everything the views read for some members, loaded once through the real loaders."""

    identity: dict[str, dict[Any, Any]]
    loyalty: dict[str, dict[Any, Any]]
    at: Any


async def take_snapshot(db: Any, members: list[int]) -> Snapshot:
    from schema.context import RequestReads
    from schema.identity import loaders as identity
    from schema.loyalty import loaders as loyalty

    reads = RequestReads(db)
    ident = {
        "member_by_id": identity.MemberByIdLoader(reads),
        "source_records_by_member": identity.SourceRecordsByMemberLoader(reads),
        "links_by_member": identity.LinksByMemberLoader(reads),
        "events_by_member": identity.EventsByMemberLoader(reads),
    }
    snap_i = {
        k: dict(zip(members, await v.load_many(members), strict=True)) for k, v in ident.items()
    }
    records = [r.id for rows in snap_i["source_records_by_member"].values() for r in rows]
    idents = identity.IdentifiersBySourceRecordLoader(reads)
    snap_i["identifiers_by_source_record"] = dict(
        zip(records, await idents.load_many(records), strict=True)
    )
    snap_i["source_record_by_id"] = {
        r.id: r for rows in snap_i["source_records_by_member"].values() for r in rows
    }
    loy = loyalty.LoyaltyLoaders.create(reads, loyalty.program())
    keys = [(m, 20, None) for m in members]
    snap_l = {
        "member_by_id": dict(zip(members, await loy.member_by_id.load_many(members), strict=True)),
        "summary_by_member": dict(
            zip(members, await loy.summary_by_member.load_many(members), strict=True)
        ),
        "ledger_by_member": dict(
            zip(keys, await loy.ledger_by_member.load_many(keys), strict=True)
        ),
    }
    return Snapshot(snap_i, snap_l, loy.at)


def memory_loaders(snapshot: Snapshot) -> dict[str, Any]:
    """Fresh per-request DataLoaders answering from the snapshot (no database, no I/O)."""
    from strawberry.dataloader import DataLoader

    from schema.identity.loaders import IdentityLoaders
    from schema.loyalty.loaders import LoyaltyLoaders
    from schema.profile_reads import ProfileReads

    def loader(table: dict[Any, Any]) -> DataLoader[Any, Any]:
        async def load(keys: list[Any]) -> list[Any]:
            return [table[k] for k in keys]

        return DataLoader(load_fn=load)

    i, lo = snapshot.identity, snapshot.loyalty
    return {
        # the views still work out what they select; they just read nothing
        "profile": ProfileReads(None),
        "identity": IdentityLoaders(
            member_by_id=loader(i["member_by_id"]),
            source_record_by_id=loader(i["source_record_by_id"]),
            source_records_by_member=loader(i["source_records_by_member"]),
            identifiers_by_source_record=loader(i["identifiers_by_source_record"]),
            links_by_member=loader(i["links_by_member"]),
            events_by_member=loader(i["events_by_member"]),
        ),
        "loyalty": LoyaltyLoaders(
            member_by_id=loader(lo["member_by_id"]),
            summary_by_member=loader(lo["summary_by_member"]),
            ledger_by_member=loader(lo["ledger_by_member"]),
            at=snapshot.at,
        ),
    }


def build_app(mode: str, url: str, members: list[int]) -> Any:
    from hub.app import Services, build_services, create_app
    from hub.core.telemetry import setup_logging, setup_telemetry

    settings = bench_settings(url)
    setup_logging(settings.log_level, settings.log_json)
    setup_telemetry(settings.otel_exporter.value)  # what `hub serve` does: real (SDK) spans
    services: Services = build_services(settings)
    if mode == "memory":

        async def snap() -> Snapshot:
            try:
                return await take_snapshot(services.db, members)
            finally:
                await services.db.dispose()

        # In a thread of its own: a worker builds its app inside uvicorn's running loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            snapshot = pool.submit(asyncio.run, snap()).result()
        base = services.context

        def context(principal: Any, *, request: Any = None, response: Any = None) -> Any:
            made = base(principal, request=request, response=response)
            made.loaders.extra.update(memory_loaders(snapshot))
            return made

        services.context = context  # type: ignore[method-assign]
    return create_app(settings, services=services)


def worker_app() -> Any:
    """The app of one worker process (``--workers`` > 1: uvicorn imports this by name)."""
    mode, url, sample = os.environ["HUB_BENCH_SERVE"].split(" ")
    return build_app(mode, url, [int(x) for x in sample.split(",")])


def serve(mode: str, url: str, port: int, members: list[int], http: str, workers: int) -> None:
    import uvicorn

    from hub.http_server import OneWriteHttpToolsProtocol

    # "auto": the protocol `hub serve` runs (uvicorn's httptools, one write per response)
    protocol: Any = OneWriteHttpToolsProtocol if http == "auto" else http

    if workers > 1:  # as `hub serve --workers N`: uvicorn's process manager over one socket
        os.environ["HUB_BENCH_SERVE"] = f"{mode} {url} {','.join(map(str, members))}"
        uvicorn.run(
            "profile_query:worker_app", factory=True, workers=workers, host="127.0.0.1",
            port=port, loop="asyncio", http=protocol, log_level="warning", access_log=False,
        )  # fmt: skip
        return
    uvicorn.run(
        build_app(mode, url, members), host="127.0.0.1", port=port, loop="asyncio", http=protocol,
        log_level="warning", access_log=False,
    )  # fmt: skip


# -- the clients ------------------------------------------------------------------------------
def request_bytes(view: str, member: int, token: str) -> bytes:
    variables = {"id": str(member)} if view == "agent" else {}
    body = json.dumps({"query": VIEWS[view], "variables": variables}).encode()
    head = (
        "POST /graphql HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def one_client(
    port: int, requests: list[bytes], deadline: float, latencies: list[float], seed: int
) -> None:
    """A keep-alive HTTP/1.1 client that costs a few µs per request (the box has 2 cores)."""
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            req = requests[rng.randrange(len(requests))]
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200") or b'"errors"' in body:
                raise SystemExit(f"request failed: {head[:40]!r} {body[:300]!r}")
    finally:
        writer.close()


async def load(
    port: int, requests: list[bytes], seconds: float, latencies: list[float], seed: int
) -> float:
    start = time.perf_counter()
    await asyncio.gather(
        *(one_client(port, requests, start + seconds, latencies, seed + i) for i in range(CLIENTS))
    )
    return time.perf_counter() - start


@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server process CPU (user + system) per request
    client_cpu_ms: float  # this process's (the 16 clients') CPU per request


@dataclass
class Window:
    elapsed: float = 0.0
    cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def figures(self) -> Figures:
        lat = sorted(self.latencies)
        return Figures(
            rps=len(lat) / self.elapsed,
            p50_ms=lat[len(lat) // 2] * 1000,
            p99_ms=lat[max(0, int(len(lat) * 0.99) - 1)] * 1000,
            cpu_ms=self.cpu_s / len(lat) * 1000,
            client_cpu_ms=self.client_cpu_s / len(lat) * 1000,
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (uvicorn's workers)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def wait_ready(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(600):
        if proc.returncode is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        if head.startswith(b"HTTP/1.1 200"):
            return
        await asyncio.sleep(0.1)
    raise SystemExit("server did not become ready")


def requests_for(view: str, members: list[int], copies: int) -> list[bytes]:
    """``copies`` requests per member, each `me` one with a token of its own: both sides send
    as many distinct tokens (the hub remembers verified tokens), over 20x fewer members in
    memory."""
    from hub.core.tokens import Role, issue_token

    agent = issue_token(secret=JWT_SECRET, role=Role.AGENT, subject="bench-agent")
    return [
        request_bytes(
            view,
            m,
            agent
            if view == "agent"
            else issue_token(secret=JWT_SECRET, role=Role.MEMBER, subject=f"m{m}.{k}", member_id=m),
        )
        for m in members
        for k in range(copies)
    ]


async def measure(
    url: str,
    samples: dict[str, list[int]],
    seconds: float,
    rounds: int,
    http: str,
    port: int,
    workers: int,
) -> dict[tuple[str, str], Figures]:
    """Both servers run side by side; the views and modes take turns in short windows, so a
    neighbour's load on this shared machine falls on both sides of the ratio alike."""
    procs: dict[str, tuple[asyncio.subprocess.Process, int]] = {}
    try:
        for i, (mode, members) in enumerate(samples.items()):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--serve", mode, "--url", url,
                "--port", str(port + i), "--sample", ",".join(map(str, members)), "--http", http,
                "--workers", str(workers),
            )  # fmt: skip
            procs[mode] = (proc, port + i)
        for proc, p in procs.values():
            await wait_ready(p, proc)
        most = max(len(members) for members in samples.values())
        requests = {
            (m, v): requests_for(v, samples[m], most // len(samples[m]))
            for m in samples
            for v in VIEWS
        }
        windows = {key: Window() for key in requests}
        for (mode, _view), reqs in requests.items():  # warm up: caches, prepared statements
            await load(procs[mode][1], reqs, 1.0, [], 0)
        for r in range(rounds):
            for (mode, view), reqs in requests.items():
                proc, p = procs[mode]
                window = windows[(mode, view)]
                cpu0, client0 = cpu_seconds(proc.pid), time.process_time()
                window.elapsed += await load(p, reqs, seconds / rounds, window.latencies, r * 100)
                window.cpu_s += cpu_seconds(proc.pid) - cpu0
                window.client_cpu_s += time.process_time() - client0
        out = {key: w.figures() for key, w in windows.items()}
        for (mode, view), f in out.items():
            print(
                f"  {mode:6} view={view:5} rps={f.rps:,.0f} p50_ms={f.p50_ms:.1f} "
                f"p99_ms={f.p99_ms:.1f} server_cpu_ms={f.cpu_ms:.2f} "
                f"client_cpu_ms={f.client_cpu_ms:.2f}",
                flush=True,
            )
        return out
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout=30)


async def main(args: argparse.Namespace) -> None:
    members = args.members or (5_000 if args.quick else 100_000)
    seconds = args.seconds or (4.0 if args.quick else 20.0)
    rounds = 2 if args.quick else 5
    server = os.environ.get("HUB_BENCH_DATABASE_URL") or embedded_url(ROOT / ".hub" / "bench-pg")
    url = await ensure_database(server, members, args.fresh)
    rng = random.Random(11)
    db_sample = rng.sample(range(1, members + 1), min(members, 20 * SNAPSHOT_MEMBERS))
    samples = {"db": db_sample, "memory": db_sample[:SNAPSHOT_MEMBERS]}
    load_before = os.getloadavg()[0]
    got = await measure(url, samples, seconds, rounds, args.http, args.port, args.workers)
    for view in VIEWS:
        d, m = got[("db", view)], got[("memory", view)]
        print(
            f"profile_query view={view} rps={d.rps:,.0f} p50_ms={d.p50_ms:.1f} "
            f"p99_ms={d.p99_ms:.1f} ceiling_rps={m.rps:,.0f} ratio={d.rps / m.rps:.2f} "
            f"clients={CLIENTS} members={members}",
            flush=True,
        )
    worst = min(got[("db", v)].rps / got[("memory", v)].rps for v in VIEWS)
    p99 = max(got[("db", v)].p99_ms for v in VIEWS)
    verdict = "ok" if worst >= 0.5 and p99 <= 50 else "MISSED"
    print(
        f"profile_query summary min_ratio={worst:.2f} max_p99_ms={p99:.1f} target={verdict} "
        f"loadavg_before={load_before:.1f} loadavg_after={os.getloadavg()[0]:.1f} "
        f"cpus={os.cpu_count()}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5,000 members, 4 s per view")
    parser.add_argument("--members", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0.0, help="per view and mode (20)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the database")
    parser.add_argument("--http", default="auto", help="uvicorn HTTP parser (auto: as hub serve)")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--workers", type=int, default=1, help="server processes per side")
    parser.add_argument("--serve", choices=("db", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        sample = [int(x) for x in args.sample.split(",")]
        serve(args.serve, args.url, args.port, sample, args.http, args.workers)
    else:
        asyncio.run(main(args))
