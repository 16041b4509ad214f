from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from tests.conftest import JWT_SECRET

HUB = [sys.executable, "-m", "hub.cli"]


def _run(
    args: list[str], env: dict[str, str], timeout: int = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUB, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "migrate", "demo", "token", "schema"])
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    result = _run([command, "--help"], {"HUB_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_token_prints_a_verifiable_agent_token(tmp_path: Path) -> None:
    result = _run(
        ["token", "--role", "agent", "--business-line", "hotel"],
        {"HUB_DATA_DIR": str(tmp_path), "HUB_JWT_SECRET": JWT_SECRET},
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(
        result.stdout.strip(), JWT_SECRET, algorithms=["HS256"], audience="member-hub"
    )
    assert claims["role"] == "agent"
    assert claims["line"] == "hotel"


def test_token_for_a_member_needs_its_id(tmp_path: Path) -> None:
    result = _run(["token", "--role", "member"], {"HUB_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "member-id" in result.stderr


def test_bad_settings_exit_with_the_variable_named(tmp_path: Path) -> None:
    result = _run(["migrate"], {"HUB_DATA_DIR": str(tmp_path), "HUB_DB_POOL_SIZE": "-3"})
    assert result.returncode == 2
    assert "HUB_DB_POOL_SIZE" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unmigrated_database(server_url: str, tmp_path: Path) -> None:
    import asyncio
    import uuid

    from tests.conftest import _admin, _with_database

    name = f"hub_unmigrated_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        result = _run(
            ["serve", "--port", "8799"],
            {"HUB_DATA_DIR": str(tmp_path), "HUB_DATABASE_URL": _with_database(server_url, name)},
        )
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert result.returncode == 1
    assert "run `hub migrate` first" in result.stderr.replace("\n", " ")
