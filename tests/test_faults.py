"""Faults: PostgreSQL stopped immediately (`pg_ctl stop -m immediate`) in the middle of work.

These tests run their own embedded server, so they can crash it without touching the suite's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pgserver
import psutil
import pytest
from pgserver._commands import pg_ctl

from hub.app import Services, create_app
from hub.core.db import Database, plain_url
from hub.core.migrate import upgrade
from hub.core.settings import Settings
from hub.generator import generate
from tests.conftest import TEST_KEYS, _admin, _with_database
from tests.test_import import STATE_SQL

KEY_ENV = {
    "HUB_HASH_KEYS": json.dumps(TEST_KEYS["hash_keys"]),
    "HUB_HASH_KEY_ID": "h1",
    "HUB_ENCRYPTION_KEYS": json.dumps(TEST_KEYS["enc_keys"]),
    "HUB_ENCRYPTION_KEY_ID": "k1",
}


class Crashable:
    def __init__(self, folder: Path) -> None:
        self.server = pgserver.get_server(folder, cleanup_mode=None)

    @property
    def url(self) -> str:
        return str(self.server.get_uri())

    def crash(self) -> None:
        pg_ctl(["-m", "immediate", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def close(self) -> None:
        # pgserver stops only the postmaster it started: one restarted by `start` would outlive
        # its deleted folder (until it noticed, up to a minute later).
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)
        self.server.cleanup_mode = "delete"
        # pgserver then signals the postmaster it started if that still looks alive; one that
        # the stop above was just ending is gone by the signal (psutil.NoSuchProcess), which
        # would skip deleting the folder: delete it here either way.
        with contextlib.suppress(psutil.NoSuchProcess):
            self.server.cleanup()
        shutil.rmtree(self.server.pgdata, ignore_errors=True)

    def start(self) -> None:
        # Crash recovery (fsync of the data folder, WAL redo) can outlast pgserver's own 10 s
        # start timeout on a busy machine: start it the same way, with a longer wait.
        pgdata = Path(self.server.pgdata)
        pg_ctl(
            [
                "-w",
                "-t",
                "120",
                "-o",
                '-h ""',
                "-o",
                f"-k {pgdata}",
                "-l",
                str(pgdata / "log"),
                "start",
            ],
            pgdata=pgdata,
            user=self.server.system_user,
            timeout=130,
        )


@pytest.fixture
def crashable() -> Iterator[Crashable]:
    # Not pytest's tmp_path: a concurrent pytest run resets its root to 0700, and the embedded
    # server runs as its own user, which then cannot reach its data folder.
    folder = Path(tempfile.mkdtemp(prefix="hub-crash-"))
    folder.chmod(0o755)
    server = Crashable(folder / "pg")
    yield server
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


async def _count(url: str, sql: str) -> int:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.read() as session:
            from sqlalchemy import text

            return int(await session.scalar(text(sql)) or 0)
    except Exception:  # noqa: BLE001 - the server may be down: that is the point
        return -1
    finally:
        await db.dispose()


async def _state(url: str) -> list[Any]:
    from sqlalchemy import text

    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.read() as session:
            return [tuple(r) for r in (await session.execute(text(STATE_SQL))).all()]
    finally:
        await db.dispose()


def _import(url: str, data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "import", "auto", str(data), "--batch-size", "200"],
        env={**os.environ, **KEY_ENV, "HUB_DATABASE_URL": url, "HUB_DATA_DIR": str(data / ".d")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_an_import_survives_a_database_crash_and_rerun_equals_a_clean_run(
    crashable: Crashable, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = crashable.url
    crashed, clean = _with_database(base, "crashed"), _with_database(base, "clean")
    for name in ("crashed", "clean"):
        asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    upgrade(crashed)
    upgrade(clean)
    data = tmp_path_factory.mktemp("crashdata")
    generate(700, 9, data)
    proc = _import(crashed, data)
    deadline = time.monotonic() + 60
    while asyncio.run(_count(crashed, "SELECT count(*) FROM activity")) < 300:
        assert proc.poll() is None, "the import ended before the crash; use more data"
        assert time.monotonic() < deadline, "the import made no progress"
        time.sleep(0.05)
    crashable.crash()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0  # the import noticed
    crashable.start()
    rerun = _import(crashed, data)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    reference = _import(clean, data)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    assert asyncio.run(_state(crashed)) == asyncio.run(_state(clean))


async def test_readyz_reports_the_outage_and_recovers_without_a_restart(
    crashable: Crashable, settings: Settings
) -> None:
    url = crashable.url
    upgrade(url)
    db = Database(url, pool_size=2, max_overflow=0)
    app = create_app(settings, services=Services(settings, db, settings.keyring()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/readyz")).status_code == 200
        await asyncio.to_thread(crashable.crash)
        down = await c.get("/readyz")
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        await asyncio.to_thread(crashable.start)
        for _ in range(50):
            if (await c.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("/readyz did not recover after the database came back")
    await db.dispose()


def test_plain_url_keeps_the_socket_host() -> None:
    assert "host=" in plain_url("postgresql+asyncpg://postgres:@/postgres?host=/tmp/x")
