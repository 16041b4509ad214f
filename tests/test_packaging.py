"""Our top-level names (hub, identity, connectors, schema) are also names of unrelated PyPI
packages. If one of those gets installed, imports silently resolve to the wrong code."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("hub", "identity", "connectors", "schema")


@pytest.mark.parametrize("name", OURS)
def test_no_other_distribution_provides_our_top_level_names(name: str) -> None:
    providers = importlib.metadata.packages_distributions().get(name, [])
    strangers = sorted({p for p in providers if p != "member-hub"})
    assert not strangers, f"{strangers} also install a top-level {name!r}; uninstall them"


@pytest.mark.parametrize("name", OURS)
def test_our_names_import_from_this_checkout(name: str) -> None:
    module = __import__(name)
    assert Path(module.__file__ or "").resolve().is_relative_to(ROOT)
