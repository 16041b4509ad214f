"""The console end to end: a real hub (uvicorn, persisted operations enforced) over imported
synthetic data, driven by headless Chromium through Playwright.

Chromium is Debian's (`/usr/bin/chromium`, or ``HUB_CHROMIUM``); Playwright's own browser
downloads are never used. `make test` installs Chromium first (scripts/ensure-chromium).
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from hub.app import Services, create_app
from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.settings import Settings
from hub.core.tokens import Principal, Role, issue_token
from hub.flows.hooks import default_hooks
from hub.generator import generate
from hub.importer import run_import
from hub.loyalty import jobs
from hub.loyalty.program import configured_program
from schema import build_schema
from tests.conftest import JWT_SECRET, ROOT

ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Landed:
    phone: str  # a phone the hub knows under several members
    members: list[str]  # their ids, as search returns them
    mergeable: tuple[str, str]  # two of them an agent may merge (one is only known to a store)
    conflicting: tuple[str, str]  # two the hub refuses to merge (different WeChat unionids)


def token(role: Role, subject: str, **claims: Any) -> str:
    return issue_token(secret=JWT_SECRET, role=role, subject=subject, **claims)


REDEEM = """
mutation($input: RedeemPointsInput!) { redeemPoints(input: $input) {
  __typename ... on RedeemPointsSuccess { redemption { id } } } }"""
CAPTURE = """
mutation($id: ID!) { captureRedemption(input: {redemptionId: $id}) { __typename } }"""
SEARCH = """
query($q: String!) { searchMembers(query: $q, first: 10) {
  id identifiers { kind } sourceRecords { businessLine }
  loyalty { points { byBusinessLine { line available } } } } }"""


@pytest.fixture
async def landed(db: Database, keyring: KeyRing, settings: Settings, tmp_path: Path) -> Landed:
    data = tmp_path / "data-set"
    generate(120, 3, data)
    await run_import(
        db=db,
        keyring=keyring,
        connector="auto",
        paths=[data],
        actor="t",
        hooks=default_hooks(keyring),
    )
    program = configured_program()
    today = datetime.now(UTC)
    for job in (jobs.release_pending, jobs.expire, jobs.evaluate_tiers):
        async with db.unit_of_work() as session:
            await job(session=session, program=program, as_of=today)

    schema = build_schema()
    admin = Services(settings, db, keyring).context(Principal("t-admin", Role.ADMIN))

    async def run(query: str, **variables: Any) -> Any:
        result = await schema.execute(query, variable_values=variables, context_value=admin)
        assert result.errors is None, result.errors
        return result.data

    with (data / "pos_members.csv").open(encoding="utf-8") as f:
        phones = [row["phone"] for row in csv.DictReader(f)][:40]
    found: Landed | None = None
    for phone in phones:
        members = (await run(SEARCH, q=phone))["searchMembers"]
        store_only = [m["id"] for m in members if _lines(m) == {"store"}]
        unionid = [m["id"] for m in members if "wechat_unionid" in _kinds(m)]
        if found is None and store_only and len(unionid) >= 2:
            found = Landed(
                phone,
                [m["id"] for m in members],
                mergeable=(unionid[0], store_only[0]),
                conflicting=(unionid[0], unionid[1]),
            )
        # Points spent at another line than the one that issued them: settlement flows.
        for m in members:
            for held in m["loyalty"]["points"]["byBusinessLine"]:
                other = {"store": "hotel", "hotel": "store", "app": "store"}.get(
                    held["line"], "app"
                )
                points = min(held["available"], 300)
                if points < 10:
                    continue
                redeemed = await run(
                    REDEEM,
                    input={
                        "line": other,
                        "points": points,
                        "orderRef": f"o-{m['id']}-{other}",
                        "idempotencyKey": f"rd-{m['id']}-{other}",
                        "memberId": m["id"],
                        "reason": "settlement test data",
                    },
                )
                if redeemed["redeemPoints"]["__typename"] == "RedeemPointsSuccess":
                    await run(CAPTURE, id=redeemed["redeemPoints"]["redemption"]["id"])
    assert found is not None, "the data set lacks the phone this tour needs"
    return found


def _lines(member: dict[str, Any]) -> set[str]:
    return {r["businessLine"] for r in member["sourceRecords"]}


def _kinds(member: dict[str, Any]) -> set[str]:
    return {i["kind"] for i in member["identifiers"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def hub_url(settings: Settings) -> Iterator[str]:
    """The hub over the test database, as production runs it: persisted operations enforced."""
    app = create_app(settings.model_copy(update={"persisted_operations": "enforce"}))
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="asyncio", ws="none", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-hub", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "the hub stopped while starting"
        assert time.monotonic() < deadline, "the hub did not start in time"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    # No skipping: `make test` installs Chromium (scripts/ensure-chromium) and playwright.
    import playwright.async_api as playwright_api

    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium or set HUB_CHROMIUM")
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Any, hub_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    context = await browser.new_context(
        base_url=hub_url, viewport={"width": 1360, "height": 900}, accept_downloads=True
    )
    # Anything the page asks of another host fails the test: the console ships all it needs.
    outside: list[str] = []

    async def only_the_hub(route: Any) -> None:
        if route.request.url.startswith(hub_url):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_the_hub)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # CSP violations and script errors land here; an HTTP error status the test provokes
    # (a bad token's 401) is logged as "Failed to load resource" and is not a fault.
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.set_default_timeout(10_000)
    yield page
    # What the page showed when the test ended, pass or fail: the first thing to look at.
    await shot(page, f"end-{request.node.name}")
    await context.close()
    assert not outside, f"the console reached other hosts: {outside}"
    assert not problems, problems


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # From the top, so the sticky top bar sits where it belongs in a full-page image.
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
