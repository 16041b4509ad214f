"""The per-request GraphQL context: who is calling, the database, and fresh DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.core.audit import Actor
from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.settings import Settings
from hub.core.tokens import Principal


@dataclass
class Loaders:
    """DataLoaders live one request (named ``<Thing>By<Key>Loader``); domains add theirs here."""

    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    principal: Principal
    db: Database
    settings: Settings
    keyring: KeyRing
    request_id: str | None = None
    loaders: Loaders = field(default_factory=Loaders)
    request: Any = None  # starlette Request over HTTP; None in direct schema.execute tests
    response: Any = None

    @property
    def actor(self) -> Actor:
        return Actor(id=self.principal.subject, role=self.principal.role or "anonymous")
