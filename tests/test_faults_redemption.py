"""Faults with redemptions in flight: the hub killed with SIGKILL, PostgreSQL stopped immediately.

Clients retry with the same idempotency key whatever happened to their first try; afterwards
every acknowledged redemption exists exactly once and the ledger invariants hold.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from hub.app import Services, create_app
from hub.core.audit import Actor
from hub.core.db import Database
from hub.core.migrate import upgrade
from hub.core.settings import Settings
from hub.core.tokens import Role, issue_token
from hub.loyalty.adjustments import adjust_points
from hub.loyalty.program import configured_program
from tests.conftest import JWT_SECRET, ROOT, _admin, _with_database, scratch_database
from tests.redemption.support import problems
from tests.test_faults import Crashable
from tests.test_import import KEY_ENV

BALANCE = 1_000
POINTS = 10

REDEEM = """
mutation($input: RedeemPointsInput!) {
  redeemPoints(input: $input) {
    __typename
    ... on RedeemPointsSuccess { redemption { id state replayed } }
  }
}
"""
CAPTURE = """
mutation($input: CaptureRedemptionInput!) {
  captureRedemption(input: $input) {
    __typename
    ... on CaptureRedemptionSuccess { redemption { id state replayed } }
  }
}
"""


async def _fund(url: str, members: int) -> list[int]:
    """``members`` new members with ``BALANCE`` points each, given the way an agent would."""
    db = Database(url, pool_size=1, max_overflow=0)
    program = configured_program({})
    ids: list[int] = []
    try:
        async with db.unit_of_work() as session:
            for n in range(members):
                member = int(
                    await session.scalar(text("INSERT INTO member DEFAULT VALUES RETURNING id"))
                )
                # One agent per member: the program caps what one agent may adjust per day.
                await adjust_points(
                    session=session,
                    program=program,
                    actor=Actor(id=f"agent-{n}", role="agent"),
                    member_id=member,
                    amount=BALANCE,
                    reason="测试 opening balance",
                    idempotency_key=f"fund-{member}",
                )
                ids.append(member)
    finally:
        await db.dispose()
    return ids


def _token(member: int) -> str:
    return issue_token(secret=JWT_SECRET, role=Role.MEMBER, subject=f"m-{member}", member_id=member)


def _payload(query: str, **variables: Any) -> dict[str, Any]:
    return {"query": query, "variables": variables}


def _redeem(key: str) -> dict[str, Any]:
    return _payload(
        REDEEM, input={"line": "store", "points": POINTS, "orderRef": key, "idempotencyKey": key}
    )


def _capture(hold_id: str, key: str) -> dict[str, Any]:
    return _payload(CAPTURE, input={"redemptionId": hold_id, "idempotencyKey": f"cap-{key}"})


@dataclass
class Tally:
    holds: dict[str, str] = field(default_factory=dict)  # idempotency key -> acknowledged hold
    captured: set[str] = field(default_factory=set)  # hold ids acknowledged captured
    transport_errors: int = 0
    replays: int = 0
    other: list[str] = field(default_factory=list)


# -- (a) SIGKILL the hub while 50 clients redeem ---------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HubProcess:
    """``hub serve`` as a child process, so it can be killed with SIGKILL and started again."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.port = _free_port()
        self.env = {
            **os.environ,
            **KEY_ENV,
            "HUB_ENV": "test",
            "HUB_DATABASE_URL": url,
            "HUB_DATA_DIR": str(data_dir),
            "HUB_JWT_SECRET": JWT_SECRET,
            "HUB_RATE_LIMIT_COST_PER_S": "0",
            "HUB_LOG_LEVEL": "WARNING",
        }
        self.log = data_dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--port", str(self.port)],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )

    async def ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    if (await client.get(f"{self.base}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        pytest.fail("hub serve did not become ready")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def scratch_url(server_url: str) -> Iterator[str]:
    with scratch_database(server_url, "hub_kill") as url:
        yield url


@pytest.fixture
def hub_process(scratch_url: str, tmp_path: Path) -> Iterator[HubProcess]:
    hub = HubProcess(scratch_url, tmp_path / "data")
    yield hub
    hub.stop()


async def _post_until_answered(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], tally: Tally, deadline: float
) -> dict[str, Any]:
    """POST until the hub answers; the same body (so the same idempotency key) every time."""
    for attempt in itertools.count():
        try:
            response = await client.post(url, json=body)
        except httpx.TransportError:
            tally.transport_errors += 1
            if time.monotonic() > deadline:
                raise
            # Back off, so 50 clients do not starve the restarting hub of CPU.
            await asyncio.sleep(min(0.5, 0.02 * 2**attempt))
            continue
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        assert "errors" not in payload, payload
        return payload
    raise AssertionError("unreachable")


async def _client(
    base: str, member: int, keys: list[str], tally: Tally, deadline: float, go: asyncio.Event
) -> None:
    headers = {"Authorization": f"Bearer {_token(member)}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=20) as client:
        await go.wait()
        for key in keys:
            body = await _post_until_answered(client, "/graphql", _redeem(key), tally, deadline)
            held = body["data"]["redeemPoints"]
            if held["__typename"] != "RedeemPointsSuccess":
                tally.other.append(held["__typename"])
                continue
            hold_id = held["redemption"]["id"]
            tally.holds[key] = hold_id
            tally.replays += held["redemption"]["replayed"]
            body = await _post_until_answered(
                client, "/graphql", _capture(hold_id, key), tally, deadline
            )
            done = body["data"]["captureRedemption"]
            if done["__typename"] != "CaptureRedemptionSuccess":
                tally.other.append(done["__typename"])
                continue
            tally.captured.add(hold_id)
            tally.replays += done["redemption"]["replayed"]


def _ledger_check(hub: HubProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "ledger", "check"],
        env=hub.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_sigkill_mid_redemption_keeps_every_acknowledged_redemption_exactly_once(
    scratch_url: str, hub_process: HubProcess
) -> None:
    clients, per_client = 50, 3
    members = await _fund(scratch_url, clients)
    hub_process.start()
    await hub_process.ready()
    tally, go = Tally(), asyncio.Event()
    deadline = time.monotonic() + 45
    tasks = [
        asyncio.create_task(
            _client(
                hub_process.base,
                member,
                [f"k-{member}-{j}" for j in range(per_client)],
                tally,
                deadline,
                go,
            )
        )
        for member in members
    ]
    go.set()
    while len(tally.holds) < clients // 2:
        assert time.monotonic() < deadline, "the clients made no progress before the kill"
        await asyncio.sleep(0.01)
    await asyncio.to_thread(hub_process.kill)
    acknowledged_before_kill = dict(tally.holds)
    hub_process.start()
    await hub_process.ready()
    await asyncio.gather(*tasks)

    total = clients * per_client
    assert tally.other == []
    assert tally.transport_errors > 0, "the kill hit no request in flight"
    assert len(tally.holds) == total
    assert len(tally.captured) == total
    assert all(tally.holds[k] == v for k, v in acknowledged_before_kill.items())
    db = Database(scratch_url, pool_size=1, max_overflow=0)
    try:
        async with db.read() as session:
            holds = (
                await session.execute(
                    text("SELECT id::text, order_ref, state, member_id FROM redemption_hold")
                )
            ).all()
            balances = dict(
                (
                    await session.execute(
                        text(
                            "SELECT member_id, balance FROM loyalty_account "
                            "WHERE kind = 'member_available'"
                        )
                    )
                ).all()
            )
    finally:
        await db.dispose()
    # Exactly once: one hold per idempotency key (the key is its order_ref), each acknowledged.
    assert len(holds) == total
    assert {ref: hold_id for hold_id, ref, _, _ in holds} == tally.holds
    assert {state for _, _, state, _ in holds} == {"captured"}
    assert balances == dict.fromkeys(members, BALANCE - per_client * POINTS)
    check = _ledger_check(hub_process)
    assert check.returncode == 0, check.stdout + check.stderr


# -- (b) PostgreSQL stopped immediately in the middle of a batch -------------------------------
BATCH_MEMBERS = 12
BATCH = 120

STATE_SQL = """
SELECT 'hold', member_id || '/' || order_ref || '/' || line || '/' || points || '/' || state
    || '/' || captured_points FROM redemption_hold
UNION ALL SELECT 'account', kind || '/' || coalesce(member_id::text, '-') || '/'
    || coalesce(line, '-') || '/' || coalesce(balance::text, '-') FROM loyalty_account
UNION ALL SELECT 'lot', member_id || '/' || issuer_line || '/' || amount || '/' || remaining
  FROM loyalty_lot
UNION ALL SELECT 'transfers', code || '/' || count(*) || '/' || sum(amount)
  FROM loyalty_transfer GROUP BY code
UNION ALL SELECT 'key', scope || '/' || key || '/' || operation || '/' || (response IS NOT NULL)
  FROM idempotency_key
ORDER BY 1, 2
"""


def _batch_request(n: int) -> tuple[int, str]:
    """The n-th redemption of the batch: which member, which key; every second is captured."""
    return n % BATCH_MEMBERS + 1, f"b-{n}"


async def _run_batch(client: httpx.AsyncClient, done: list[int], workers: int = 4) -> list[int]:
    """Every redemption of the batch once (hold, then capture for even n); the failed ones."""
    failed: list[int] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(BATCH):
        queue.put_nowait(n)

    async def post(member: int, body: dict[str, Any]) -> dict[str, Any] | None:
        response = await client.post(
            "/graphql", json=body, headers={"Authorization": f"Bearer {_token(member)}"}
        )
        payload: dict[str, Any] = response.json()
        if response.status_code != 200 or payload.get("errors"):
            return None
        return payload["data"]

    async def work() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            member, key = _batch_request(n)
            held = await post(member, _redeem(key))
            if held is None:
                failed.append(n)
                continue
            assert held["redeemPoints"]["__typename"] == "RedeemPointsSuccess", held
            if n % 2 == 0:
                hold_id = held["redeemPoints"]["redemption"]["id"]
                captured = await post(member, _capture(hold_id, key))
                if captured is None:
                    failed.append(n)
                    continue
                assert captured["captureRedemption"]["__typename"] == "CaptureRedemptionSuccess"
            done.append(n)

    await asyncio.gather(*(work() for _ in range(workers)))
    return failed


@pytest.fixture
def crashable() -> Iterator[Crashable]:
    # Not under pytest's temp root: another pytest session starting on this machine resets that
    # root to 0700, and the server runs as its own system user, which must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="hub-crash-redeem-"))
    server = Crashable(folder / "pg")
    yield server
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def app_client(
    crashable: Crashable, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    base = crashable.url
    crashed, clean = _with_database(base, "crashed"), _with_database(base, "clean")
    for name in ("crashed", "clean"):
        await _admin(base, f'CREATE DATABASE "{name}"')
    for url in (crashed, clean):
        await asyncio.to_thread(upgrade, url)
        assert await _fund(url, BATCH_MEMBERS) == list(range(1, BATCH_MEMBERS + 1))
    db = Database(crashed, pool_size=4, max_overflow=0)
    app = create_app(settings, services=Services(settings, db, settings.keyring()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client, crashed, clean
    await db.dispose()


async def _state(url: str) -> tuple[list[Any], list[str]]:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.read() as session:
            rows = [tuple(r) for r in (await session.execute(text(STATE_SQL))).all()]
            return rows, await problems(session)
    finally:
        await db.dispose()


async def _wait_ready(client: httpx.AsyncClient, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while (await client.get("/readyz")).status_code != 200:
        if time.monotonic() > deadline:
            pytest.fail("/readyz did not recover after the database came back")
        await asyncio.sleep(0.1)


async def test_a_database_crash_mid_batch_then_a_rerun_equals_a_clean_run(
    crashable: Crashable, app_client: tuple[httpx.AsyncClient, str, str], settings: Settings
) -> None:
    client, crashed, clean = app_client
    done: list[int] = []
    batch = asyncio.create_task(_run_batch(client, done))
    while len(done) < BATCH // 4:
        assert not batch.done(), "the batch ended before the crash"
        await asyncio.sleep(0.005)
    await asyncio.to_thread(crashable.crash)
    failed = await batch
    assert failed, "the crash interrupted nothing"
    down = await client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"

    await asyncio.to_thread(crashable.start)
    await _wait_ready(client)  # the same app, the same pool: no restart of the hub
    rerun: list[int] = []
    assert await _run_batch(client, rerun) == []
    assert sorted(rerun) == list(range(BATCH))

    reference_db = Database(clean, pool_size=4, max_overflow=0)
    reference = create_app(settings, services=Services(settings, reference_db, settings.keyring()))
    transport = httpx.ASGITransport(app=reference)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as ref_client:
        assert await _run_batch(ref_client, []) == []
    await reference_db.dispose()

    crashed_state, crashed_problems = await _state(crashed)
    clean_state, _ = await _state(clean)
    assert crashed_problems == []
    assert crashed_state == clean_state
