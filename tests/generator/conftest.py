from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.generator import GenerationSummary, generate, layout

PEOPLE = 300
SEED = 20240601


@dataclass(frozen=True)
class DataSet:
    out: Path
    summary: GenerationSummary

    def rows(self, name: str, encoding: str = "utf-8") -> list[dict[str, str]]:
        text = (self.out / name).read_bytes().decode(encoding)
        return list(csv.DictReader(io.StringIO(text, newline="")))

    def objects(self, name: str) -> list[dict]:
        return [json.loads(line) for line in (self.out / name).read_text("utf-8").splitlines()]

    def truth(self) -> list[dict[str, str]]:
        return self.rows(layout.TRUTH)

    def person_of(self) -> dict[tuple[str, str], str]:
        return {(r["source"], r["source_key"]): r["person_id"] for r in self.truth()}

    def sources_by_person(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for r in self.truth():
            found[r["person_id"]].add(r["source"])
        return found


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DataSet:
    out = tmp_path_factory.mktemp("generated")
    return DataSet(out=out, summary=generate(PEOPLE, SEED, out))
