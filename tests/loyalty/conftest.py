from __future__ import annotations

from collections.abc import Callable

import pytest
from loyalty_helpers import PROGRAM_TOML, variant

from hub.loyalty.program import Program, parse_program


@pytest.fixture(scope="session")
def program() -> Program:
    return parse_program(PROGRAM_TOML)


@pytest.fixture(scope="session")
def with_policy() -> Callable[..., Program]:
    def build(*edits: tuple[str, str]) -> Program:
        return parse_program(variant(*edits))

    return build
