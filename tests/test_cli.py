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


def test_sigterm_stops_the_embedded_postgres_too(tmp_path: Path) -> None:
    # `hub serve` on the embedded PostgreSQL, ended the way a service manager ends it: the
    # database server it started must not outlive it.
    import signal
    import socket
    import time

    import httpx
    import psutil

    from tests.test_import import KEY_ENV

    env = {k: v for k, v in os.environ.items() if k != "HUB_DATABASE_URL"}
    env |= {
        **KEY_ENV,
        "HUB_ENV": "test",
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_JWT_SECRET": JWT_SECRET,
    }
    migrated = subprocess.run(
        [*HUB, "migrate"], env=env, capture_output=True, text=True, timeout=180
    )
    assert migrated.returncode == 0, migrated.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [*HUB, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "hub serve exited"
            assert time.monotonic() < deadline, "hub serve did not become ready"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        postmaster = int((tmp_path / "pg" / "postmaster.pid").read_text().split()[0])
        assert psutil.pid_exists(postmaster)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 30
    while psutil.pid_exists(postmaster) and time.monotonic() < deadline:
        time.sleep(0.2)
    outlived = psutil.pid_exists(postmaster)
    if outlived:
        psutil.Process(postmaster).terminate()  # not left behind by a failing run
    assert not outlived, "the embedded PostgreSQL outlived hub serve"
