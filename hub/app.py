"""The composition root for HTTP: ``create_app(settings)`` returns the Starlette application.

Routes: ``/graphql`` (strawberry; GraphiQL only in dev), ``/healthz`` (the process is up),
``/readyz`` (the database answers and is migrated), ``/console`` (the agents' web console).
Every request gets an id (``X-Request-ID``, taken from the caller when it is sane) and a
body-size limit.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

from hub.console import console_routes
from hub.core.allocator import fix_mmap_threshold
from hub.core.db import Database, resolve_url
from hub.core.errors import DatabaseUnavailable, HubError, NotAuthenticated, NotMigrated
from hub.core.migrate import head_revision, known_revisions
from hub.core.pii import KeyRing
from hub.core.settings import Env, Settings
from hub.core.telemetry import meter, reset_request_id, set_request_id, tracer
from hub.core.tokens import ANONYMOUS, Principal, TokenVerifier
from hub.http_ingest import ingest_upload
from schema import build_schema
from schema.context import Context
from schema.cost import TokenBuckets
from schema.examples import default_tabs
from schema.persisted import Manifest, PersistedMode, PersistedOperationError
from schema.persisted import resolve as resolve_persisted

log = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = set_request_id(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_request_id(token)


class TelemetryMiddleware:
    """One server span per request (method and path only: query strings may carry PII), and
    request count / duration metrics by route and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests = meter.create_counter("hub.http.requests", description="HTTP requests")
        self.duration = meter.create_histogram(
            "hub.http.duration", unit="ms", description="HTTP request duration"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = (
            scope["path"]
            if scope["path"] in _ROUTES
            else "/ingest/{source}"
            if scope["path"].startswith("/ingest/")
            else "other"
        )
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with tracer.start_as_current_span(
            f"HTTP {scope['method']} {path}", kind=SpanKind.SERVER
        ) as span:
            span.set_attribute("http.request.method", scope["method"])
            span.set_attribute("http.route", path)
            try:
                await self.app(scope, receive, send_status)
            finally:
                span.set_attribute("http.response.status_code", status)
                labels = {"route": path, "status": str(status)}
                self.requests.add(1, labels)
                self.duration.record((time.perf_counter() - started) * 1000, labels)


_ROUTES = frozenset({"/graphql", "/healthz", "/readyz"})


class BodyLimitMiddleware:
    """413 for bodies over the limit, whether announced by Content-Length or streamed."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next(
            (n for prefix, n in self.overrides.items() if scope["path"].startswith(prefix)),
            self.max_bytes,
        )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(limit)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> Response:
    return JSONResponse(
        {"error": "LIMIT_EXCEEDED", "message": f"request body is larger than {limit} bytes"},
        status_code=413,
    )


class UnstorableText(HubError):
    code = "BAD_REQUEST"


# PostgreSQL text cannot hold U+0000: a string carrying one failed deep inside a query as an
# internal error (found by tests/schema/test_fuzz.py), so the request is refused before parsing,
# in variables and as a GraphQL string escape (``\u0000``, ``\u{0}``) in the document.
_NUL_ESCAPE = re.compile(r"\\u(?:0000|\{0+\})")


def _carries_nul(body: object) -> bool:
    document = body.get("query") if isinstance(body, dict) else None
    if isinstance(document, str) and _NUL_ESCAPE.search(document):
        return True
    stack = [body]
    while stack:  # not recursive: a deeply nested body must not exhaust the stack
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


class HubGraphQL(GraphQL[Context, None]):
    def __init__(
        self, *, services: Services, persisted: tuple[Manifest, PersistedMode], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.manifest, self.persisted_mode = persisted

    ide_tokens: dict[str, str] | None = None

    @property
    def graphql_ide_html(self) -> str:
        # strawberry's GraphiQL page, opened with one example tab per audience.
        html = super().graphql_ide_html
        marker = "shouldPersistHeaders: true,"
        return html.replace(
            marker, f"{marker}\n          defaultTabs: {default_tabs(self.ide_tokens)},", 1
        )

    def decode_json(self, data: str | bytes) -> object:
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            body = super().decode_json(data)  # what the stdlib accepts, or its error
        if _carries_nul(body):
            raise UnstorableText("text may not contain NUL (U+0000) characters")
        if isinstance(body, dict):
            # Before parsing: an unknown document never reaches the GraphQL parser in enforce.
            return resolve_persisted(body, self.manifest, self.persisted_mode)
        return body

    def encode_json(self, data: object) -> bytes:
        # orjson: a third of the stdlib's cost for a profile view's response.
        try:
            return orjson.dumps(data)
        except TypeError:  # an integer past 64 bits in a JSON scalar
            fallback = super().encode_json(data)
            return fallback.encode() if isinstance(fallback, str) else fallback

    async def get_context(self, request: Any, response: Any) -> Context:
        principal = self.services.authenticate(request.headers.get("authorization"))
        return self.services.context(principal, request=request, response=response)

    async def run(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().run(request, *args, **kwargs)
        except NotAuthenticated as exc:
            return JSONResponse(
                {"errors": [{"message": exc.message, "extensions": {"code": exc.code}}]},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        except (PersistedOperationError, UnstorableText) as exc:
            return JSONResponse(
                {"errors": [{"message": exc.message, "extensions": {"code": exc.code}}]},
                status_code=400,
            )


class Services:
    """What a request needs, built once per process from settings."""

    def __init__(self, settings: Settings, db: Database, keyring: KeyRing) -> None:
        self.settings = settings
        self.db = db
        self.keyring = keyring
        self.verifier = TokenVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            hs256_secret=None if settings.env is Env.PROD else settings.jwt_signing_secret(),
            rs256_public_key=settings.jwt_public_key,
        )

    def authenticate(self, header: str | None) -> Principal:
        if not header:
            return ANONYMOUS
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("Authorization header must be 'Bearer <token>'")
        return self.verifier.verify(token.strip())

    def context(
        self, principal: Principal, *, request: Any = None, response: Any = None
    ) -> Context:
        from hub.core.telemetry import current_request_id

        return Context(
            principal=principal,
            db=self.db,
            settings=self.settings,
            keyring=self.keyring,
            request_id=current_request_id(),
            request=request,
            response=response,
        )


def build_services(settings: Settings) -> Services:
    url = resolve_url(settings.database_url, settings.data_dir)
    db = Database(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_s=settings.db_pool_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        batch_calls=settings.db_batch_calls,
    )
    return Services(settings, db, settings.keyring())


def _settle_garbage_collector() -> None:
    """Once the app is built: what start-up made (modules, the schema, the program) moves to the
    collector's permanent generation, and young collections run less often. A full collection
    otherwise walks every one of those objects, and each pause lands on every request in flight
    (measured with ``bench/profile_query.py``: the tail of the latency distribution)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    ide_tokens: dict[str, str] | None = None,
) -> Starlette:
    """The ASGI app. Process-wide logging and telemetry are set up by the caller (`hub serve`).

    ``ide_tokens`` (role → token, the demo's) sign GraphiQL's example tabs in.
    """
    svc = services or build_services(settings)
    head = head_revision()
    known = known_revisions()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await svc.db.ping()
            await svc.db.require_migrated(head, known)
        except (DatabaseUnavailable, NotMigrated) as exc:
            return JSONResponse({"status": "unavailable", "reason": exc.message}, status_code=503)
        except HubError as exc:  # pragma: no cover - defensive
            return JSONResponse({"status": "unavailable", "reason": exc.code}, status_code=503)
        return JSONResponse({"status": "ready", "schema": head})

    async def ingest_endpoint(request: Request) -> Response:
        return await ingest_upload(request, svc)

    schema = build_schema(
        max_depth=settings.graphql_max_depth,
        max_tokens=settings.graphql_max_tokens,
        max_aliases=settings.graphql_max_aliases,
        max_cost=settings.graphql_max_cost,
        rate_limit=TokenBuckets(
            rate_per_s=settings.rate_limit_cost_per_s, burst=settings.rate_limit_burst
        )
        if settings.rate_limit_cost_per_s > 0
        else None,
        introspection=settings.env is not Env.PROD,
    )
    manifest = Manifest.load()
    mode = PersistedMode(
        settings.persisted_operations or ("enforce" if settings.env is Env.PROD else "off")
    )
    graphql = HubGraphQL(
        services=svc,
        persisted=(manifest, mode),
        schema=schema,
        graphql_ide="graphiql" if settings.env is Env.DEV else None,
        allow_queries_via_get=settings.env is Env.DEV,
    )
    graphql.ide_tokens = ide_tokens

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        fix_mmap_threshold()
        _settle_garbage_collector()
        yield
        await svc.db.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/ingest/{source}", ingest_endpoint, methods=["POST"]),
            # The agents' console: static files and the ids of its persisted operations.
            *console_routes(manifest.names),
        ],
        lifespan=lifespan,
    )
    app.state.services = svc
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        overrides={"/ingest/": settings.max_ingest_bytes},
    )
    app.add_middleware(TelemetryMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
