"""The customer-service console: a static front end served at ``/console``.

The page is plain HTML, CSS and JavaScript modules shipped in ``static/`` (no CDN, no build
step). It talks only to ``/graphql`` with the agent's bearer token, and only by persisted
operation id: ``/console/operations.json`` maps each ``schema/operations/console/<Name>.graphql``
to its SHA-256, computed from the same manifest ``/graphql`` resolves ids with. So the console
works unchanged when persisted operations are enforced, and the browser never needs
``crypto.subtle`` (which plain-HTTP intranet hosts do not get).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).with_name("static")
CLIENT = "console"

# The page may reach nothing but this origin: no CDN, no fonts, no beacons, no framing.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    # A cached page must still pick up a new release: revalidate (ETag) on every load.
    (b"cache-control", b"no-cache"),
)


class _Secured:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).extend(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)


def console_operations(names: Mapping[str, str]) -> dict[str, str]:
    """``{"Name": sha256}`` for the console's persisted operations, from the manifest's
    ``id -> "client/Name"`` map."""
    prefix = f"{CLIENT}/"
    return {
        name.removeprefix(prefix): op_id
        for op_id, name in sorted(names.items(), key=lambda item: item[1])
        if name.startswith(prefix)
    }


def console_routes(names: Mapping[str, str]) -> list[BaseRoute]:
    """Routes for the console; ``names`` is the persisted-operation manifest (id -> name)."""
    operations = console_operations(names)

    async def manifest(request: Request) -> Response:
        return JSONResponse(operations, headers={"cache-control": "no-cache"})

    async def to_index(request: Request) -> Response:
        # Relative, so the hub also works behind a proxy that mounts it under a path prefix.
        return RedirectResponse("console/", status_code=308)

    return [
        Route("/console", to_index, methods=["GET", "HEAD"]),
        Route("/console/operations.json", manifest, methods=["GET", "HEAD"]),
        Mount("/console", app=_Secured(StaticFiles(directory=STATIC_DIR, html=True))),
    ]
