"""Concurrency through GraphQL over real HTTP: uvicorn on a free local port, many clients."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from sqlalchemy import text

import hub.app
from hub.app import Services, create_app
from hub.core.db import Database
from hub.core.tokens import Role, issue_token
from hub.loyalty.program import default_program
from tests.conftest import JWT_SECRET
from tests.redemption.gql import REDEEM, build_schema
from tests.redemption.support import available, earn, make_member, shanghai

BALANCE = 1_000
EACH = 7
CALLS = 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def server_at(settings, ledger, monkeypatch) -> AsyncIterator[str]:
    monkeypatch.setattr(hub.app, "build_schema", build_schema)
    db = Database(settings.database_url, pool_size=20, max_overflow=10)
    app = create_app(settings, services=Services(settings, db, settings.keyring()))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, loop="asyncio", log_level="warning", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await task
        await db.dispose()


async def _member(ledger) -> tuple[int, str]:
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await earn(s, default_program(), member, BALANCE, line="store", at=shanghai(2026, 1, 5))
    token = issue_token(
        secret=JWT_SECRET, role=Role.MEMBER, subject=f"m-{member}", member_id=member
    )
    return member, token


async def _fire(url: str, token: str, keys: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(keys), max_keepalive_connections=len(keys))
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    url,
                    headers={"Authorization": f"Bearer {token}"},
                    json={
                        "query": REDEEM,
                        "variables": {
                            "input": {
                                "line": "store",
                                "points": EACH,
                                "orderRef": f"O-{k}",
                                "idempotencyKey": k,
                            }
                        },
                    },
                )
                for k in keys
            )
        )


async def _busiest(ledger, stop: asyncio.Event) -> int:
    """The most hub connections seen working at once: evidence of real database concurrency."""
    most = 0
    async with ledger.read() as s:
        while not stop.is_set():
            await s.execute(text("SELECT pg_stat_clear_snapshot()"))  # else cached per transaction
            busy = await s.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'member-hub' AND state <> 'idle' "
                    "AND pid <> pg_backend_pid()"
                )
            )
            most = max(most, int(busy))
            await asyncio.sleep(0.002)
    return most


async def test_parallel_redemptions_succeed_exactly_as_far_as_the_balance_goes(ledger, server_at):
    member, token = await _member(ledger)
    stop = asyncio.Event()
    watcher = asyncio.create_task(_busiest(ledger, stop))
    responses = await _fire(server_at, token, [f"k{i}" for i in range(CALLS)])
    stop.set()
    assert await watcher >= 2
    assert {r.status_code for r in responses} == {200}
    bodies = [r.json() for r in responses]
    assert all("errors" not in b for b in bodies), [b for b in bodies if "errors" in b][:3]
    kinds = Counter(b["data"]["redeemPoints"]["__typename"] for b in bodies)
    assert kinds == {
        "RedeemPointsSuccess": BALANCE // EACH,
        "InsufficientPoints": CALLS - BALANCE // EACH,
    }
    async with ledger.read() as s:
        assert await available(s, member) == BALANCE - EACH * (BALANCE // EACH) >= 0
        holds, transactions = (
            await s.execute(
                text(
                    "SELECT count(*), count(DISTINCT xmin::text) FROM redemption_hold "
                    "WHERE member_id = :m"
                ),
                {"m": member},
            )
        ).one()
    # The holds reached the server in batches (hub.core.batch), several to a transaction.
    assert transactions < holds == BALANCE // EACH


async def test_parallel_calls_with_one_key_take_effect_once(ledger, server_at):
    member, token = await _member(ledger)
    responses = await _fire(server_at, token, ["same"] * 20)
    results = [r.json()["data"]["redeemPoints"] for r in responses]
    assert {r["__typename"] for r in results} == {"RedeemPointsSuccess"}
    assert len({r["redemption"]["id"] for r in results}) == 1
    assert sum(not r["redemption"]["replayed"] for r in results) == 1
    async with ledger.read() as s:
        assert await available(s, member) == BALANCE - EACH
