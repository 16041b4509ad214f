"""Every GraphQL example in docs/ runs against the real schema and database, as the role the
page says, and comes back without errors: the docs cannot drift from the schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
BLOCK = re.compile(
    r"<!-- as: (?P<role>\w+) -->\s*\n(?:<!-- variables: (?P<vars>.*?) -->\s*\n)?```graphql\n(?P<doc>.*?)```",
    re.S,
)


def _examples() -> list[tuple[str, str, dict[str, Any], str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for m in BLOCK.finditer(page.read_text(encoding="utf-8")):
            found.append((page.name, m["role"], json.loads(m["vars"] or "{}"), m["doc"]))
    return found


EXAMPLES = _examples()


def test_the_docs_have_examples_for_each_audience() -> None:
    roles = {role for _, role, _, _ in EXAMPLES}
    assert {"member", "partner", "agent"} <= roles, roles
    untagged = sum(p.read_text(encoding="utf-8").count("```graphql") for p in DOCS.glob("*.md"))
    assert untagged == len(EXAMPLES), "every ```graphql block needs an <!-- as: role --> line"


@pytest.mark.parametrize(
    ("page", "role", "variables", "document"),
    EXAMPLES,
    ids=[f"{p}:{i}" for i, (p, *_rest) in enumerate(EXAMPLES)],
)
async def test_doc_example_runs(
    execute: Any, page: str, role: str, variables: dict[str, Any], document: str
) -> None:
    result = await execute(document, as_=role, **variables)
    assert result.errors is None, f"{page}: {result.errors}"
    assert result.data
