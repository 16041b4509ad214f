from __future__ import annotations

import pytest

from hub.core.pii import KeyRing
from identity.resolver import Resolver


@pytest.fixture(scope="session")
def keyring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
def resolver(keyring: KeyRing) -> Resolver:
    return Resolver(keyring=keyring)
