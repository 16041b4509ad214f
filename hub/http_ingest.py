"""``POST /ingest/{source}``: a partner line pushes a raw file the way a connector reads it.

The body is the file itself (CSV, NDJSON, JSON, XML or XLSX), spooled to disk as it arrives,
then imported with the same connector and pipeline as `hub import`; the response is the same
JSON import report. A partner token may only push for its own business line; admins for any.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.registry import CONNECTORS
from hub.core.db import Database
from hub.core.errors import HubError, NotAuthenticated
from hub.core.pii import KeyRing
from hub.core.tokens import Principal, Role
from hub.importer import ingest_hooks, run_import


class Services(Protocol):
    db: Database
    keyring: KeyRing

    def authenticate(self, header: str | None) -> Principal: ...


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


async def ingest_upload(request: Request, svc: Services) -> Response:
    source = request.path_params["source"]
    connector = CONNECTORS.get(source)
    if connector is None:
        return _error(404, "NOT_FOUND", f"no connector {source!r}; one of {', '.join(CONNECTORS)}")
    try:
        principal = svc.authenticate(request.headers.get("authorization"))
    except NotAuthenticated as exc:
        return _error(401, exc.code, exc.message)
    if principal.role not in (Role.PARTNER, Role.ADMIN):
        return _error(403, "PERMISSION_DENIED", "pushing data needs a partner token")
    if principal.role is Role.PARTNER and principal.business_line != connector.business_line:
        return _error(
            403,
            "PERMISSION_DENIED",
            f"a {principal.business_line} partner may not push {connector.business_line} data",
        )
    given = request.headers.get("x-filename") or request.query_params.get("filename") or source
    filename = _SAFE_NAME.sub("_", Path(given).name)[:100] or source
    with tempfile.TemporaryDirectory(prefix="hub-ingest-") as folder:
        path = Path(folder) / filename
        with path.open("wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
        if path.stat().st_size == 0:
            return _error(400, "EMPTY_BODY", "the request body is empty; send the file as the body")
        try:
            report = await run_import(
                db=svc.db,
                keyring=svc.keyring,
                connector=source,
                paths=[path],
                actor=f"{principal.role.value}:{principal.subject}",
                hooks=ingest_hooks(svc.keyring),
            )
        except HubError as exc:
            return _error(422, exc.code, exc.message)
    body = report.as_dict()
    if report.refused_files:
        return JSONResponse(body, status_code=422)
    return JSONResponse(body)
