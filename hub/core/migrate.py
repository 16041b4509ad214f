"""Alembic, driven from code: ``upgrade``/``downgrade`` against a URL, and the head revision.

The migration scripts live in ``hub/migrations``; there is no alembic.ini to keep in sync.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from hub.core.db import plain_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = plain_url(url)
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("postgresql://x/y")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; merge them")
    return heads[0]


def known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(alembic_config("postgresql://x/y"))
    return frozenset(rev.revision for rev in script.walk_revisions())


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def earlier_migration(stem: str) -> ModuleType:
    """The migration module ``versions/{stem}.py``, loaded by path (the folder is not a
    package): a later migration restores or rewrites the SQL an earlier one holds."""
    path = Path(__file__).resolve().parent.parent / "migrations" / "versions" / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"hub_migration_{stem}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - the file is part of the hub
        raise RuntimeError(f"no migration {stem}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
