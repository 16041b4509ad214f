"""Persisted operations: the documents the app and partner clients ship, by id.

Each ``schema/operations/<client>/<Name>.graphql`` holds one operation; its id is the SHA-256 of
the file's text (what Apollo-style clients send as ``extensions.persistedQuery.sha256Hash``,
or as a top-level ``id``). Modes (``HUB_PERSISTED_OPERATIONS``):

- ``off``      any document is accepted (dev);
- ``log``      unknown documents run, and their digest is logged for review (a rollout step);
- ``enforce``  unknown documents are refused before parsing (production default).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
OPERATIONS_DIR = Path(__file__).with_name("operations")


class PersistedMode(StrEnum):
    OFF = "off"
    LOG = "log"
    ENFORCE = "enforce"


def digest(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    documents: dict[str, str]  # id -> document
    names: dict[str, str]  # id -> "client/Name"

    @classmethod
    def load(cls, folder: Path = OPERATIONS_DIR) -> Manifest:
        documents: dict[str, str] = {}
        names: dict[str, str] = {}
        for path in sorted(folder.glob("*/*.graphql")):
            text = path.read_text(encoding="utf-8")
            op_id = digest(text)
            documents[op_id] = text
            names[op_id] = f"{path.parent.name}/{path.stem}"
        return cls(documents, names)


class PersistedOperationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def resolve(body: dict[str, Any], manifest: Manifest, mode: PersistedMode) -> dict[str, Any]:
    """The request body with its document filled in from the manifest, or an error."""
    if mode is PersistedMode.OFF and not body.get("id") and not _hash(body):
        return body
    op_id = body.get("id") or _hash(body)
    query = body.get("query")
    if query is None:
        if not op_id:
            return body  # strawberry reports the missing query itself
        document = manifest.documents.get(str(op_id))
        if document is None:
            raise PersistedOperationError(
                "PERSISTED_OPERATION_NOT_FOUND", f"no persisted operation with id {op_id}"
            )
        return {**body, "query": document}
    if not isinstance(query, str):
        return body
    known = digest(query) in manifest.documents
    if op_id and str(op_id) != digest(query):
        raise PersistedOperationError(
            "PERSISTED_OPERATION_MISMATCH", "the document does not match its id"
        )
    if not known and mode is PersistedMode.ENFORCE:
        raise PersistedOperationError(
            "PERSISTED_OPERATION_REQUIRED",
            "this hub only runs its persisted operations; send an operation id",
        )
    if not known and mode is PersistedMode.LOG:
        log.warning("unpersisted GraphQL document sha256=%s", digest(query))
    return body


def _hash(body: dict[str, Any]) -> str | None:
    ext = body.get("extensions")
    if isinstance(ext, dict):
        pq = ext.get("persistedQuery")
        if isinstance(pq, dict) and isinstance(pq.get("sha256Hash"), str):
            return str(pq["sha256Hash"])
    return None
