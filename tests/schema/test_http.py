from __future__ import annotations

from typing import Any

import httpx

from hub.app import Services, create_app
from hub.core.db import Database
from hub.core.settings import Settings


async def test_healthz_and_readyz(client: Any) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_readyz_reports_a_database_outage(settings: Settings) -> None:
    down = Database("postgresql://postgres@127.0.0.1:1/none", pool_size=1, max_overflow=0)
    app = create_app(settings, services=Services(settings, down, settings.keyring()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/readyz")
    await down.dispose()
    assert response.status_code == 503
    assert "unreachable" in response.json()["reason"]


async def test_every_response_carries_a_request_id(client: Any) -> None:
    mine = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert len(generated.headers["x-request-id"]) == 32


async def test_oversized_bodies_get_413(settings: Settings, services: Services) -> None:
    small = settings.model_copy(update={"max_body_bytes": 2048})
    app = create_app(small, services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post(
            "/graphql",
            content=b"{" + b" " * 5000 + b"}",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"] == "LIMIT_EXCEEDED"


async def test_graphiql_only_in_dev(settings: Settings, services: Services) -> None:
    from hub.core.settings import Env

    for env, expected in ((Env.DEV, 200), (Env.TEST, 404)):
        app = create_app(settings.model_copy(update={"env": env}), services=services)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            response = await c.get("/graphql", headers={"accept": "text/html"})
        assert response.status_code == expected, env


async def test_graphiql_opens_with_an_example_tab_per_audience_and_their_examples_run(
    settings: Settings, services: Services
) -> None:
    import json
    import re

    from hub.core.settings import Env
    from schema import build_schema
    from schema.examples import EXAMPLES

    app = create_app(
        settings.model_copy(update={"env": Env.DEV}),
        services=services,
        ide_tokens={"member": "tok-m"},
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        page = (await c.get("/graphql", headers={"accept": "text/html"})).text
    tabs = json.loads(re.search(r"defaultTabs: (\[.*?\]),\n", page, re.S).group(1))  # type: ignore[union-attr]
    assert len(tabs) == len(EXAMPLES) == 4
    assert json.loads(tabs[0]["headers"]) == {"Authorization": "Bearer tok-m"}
    schema = build_schema()._schema
    from graphql import parse, validate

    for _role, title, query in EXAMPLES:
        assert validate(schema, parse(query)) == [], title
