"""The console's files are served by the hub itself, reach no other host, and ask the API only
for operations the hub ships (so it works when persisted operations are enforced)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.app import Services, create_app
from hub.console import STATIC_DIR
from hub.core.db import Database
from hub.core.settings import Settings
from hub.core.tokens import Role
from schema.persisted import OPERATIONS_DIR, digest
from tests.console.conftest import token

ASSETS = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
SHIPPED = {p: p.read_text(encoding="utf-8") for p in ASSETS}
# An XML namespace is a name, never fetched; every other absolute URL would be a request.
NAMESPACES = {"http://www.w3.org/2000/svg"}
URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s"'`)<>]*""")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # No query here touches the database: an unreachable one proves it.
    db = Database("postgresql://postgres@127.0.0.1:1/none", pool_size=1, max_overflow=0)
    prod = settings.model_copy(update={"persisted_operations": "enforce"})
    app = create_app(prod, services=Services(prod, db, settings.keyring()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
    ) as c:
        yield c
    await db.dispose()


def _relative(path: Path) -> str:
    return path.relative_to(STATIC_DIR).as_posix()


async def test_the_console_page_is_served_with_a_policy_that_allows_only_this_origin(
    client: httpx.AsyncClient,
) -> None:
    bare = await client.get("/console")
    assert bare.status_code == 308
    assert bare.headers["location"] == "console/"
    page = await client.get("/console/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'"):
        assert directive in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert 'type="module" src="js/app.js"' in page.text


@pytest.mark.parametrize("path", ASSETS, ids=_relative)
async def test_every_asset_is_served_and_names_no_other_host(
    client: httpx.AsyncClient, path: Path
) -> None:
    response = await client.get(f"/console/{_relative(path)}")
    assert response.status_code == 200
    expected = {".js": "javascript", ".css": "text/css", ".html": "text/html", ".svg": "svg"}
    assert expected[path.suffix] in response.headers["content-type"]
    text = response.text
    assert text == SHIPPED[path]
    outside = {m for m in URL.findall(text) if m not in NAMESPACES}
    assert not outside, f"{path.name} refers to other hosts: {outside}"
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text


def test_every_file_the_page_or_a_module_refers_to_is_shipped() -> None:
    index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    wanted = {STATIC_DIR / ref for ref in re.findall(r'(?:src|href)="([^"#][^"]*)"', index)}
    for module in STATIC_DIR.glob("js/*.js"):
        for ref in re.findall(r'from "(\./[^"]+)"', module.read_text(encoding="utf-8")):
            wanted.add((module.parent / ref).resolve())
    missing = sorted(str(p) for p in wanted if not p.resolve().is_file())
    assert not missing


async def test_operations_json_names_each_console_operation_by_its_digest(
    client: httpx.AsyncClient,
) -> None:
    manifest = (await client.get("/console/operations.json")).json()
    shipped = {
        p.stem: digest(p.read_text(encoding="utf-8"))
        for p in (OPERATIONS_DIR / "console").glob("*.graphql")
    }
    assert manifest == shipped
    # The JavaScript asks only for operations the hub ships, and uses every one it ships.
    code = "\n".join(m.read_text(encoding="utf-8") for m in STATIC_DIR.glob("js/*.js"))
    direct = set(re.findall(r'gql\("([A-Za-z]+)"', code))
    assert direct <= set(shipped), direct - set(shipped)
    unused = {name for name in shipped if f'"{name}"' not in code}
    assert not unused


async def test_the_console_runs_by_operation_id_where_the_hub_enforces_persisted_operations(
    client: httpx.AsyncClient,
) -> None:
    ids = (await client.get("/console/operations.json")).json()
    agent = {"authorization": f"Bearer {token(Role.AGENT, 'agent-assets')}"}
    by_id = await client.post(
        "/graphql",
        json={"id": ids["ConsoleViewer"], "operationName": "ConsoleViewer"},
        headers=agent,
    )
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["data"]["viewer"] == {
        "role": "agent",
        "businessLine": None,
        "authenticated": True,
    }
    ad_hoc = await client.post("/graphql", json={"query": "{ viewer { role } }"}, headers=agent)
    assert ad_hoc.status_code == 400
