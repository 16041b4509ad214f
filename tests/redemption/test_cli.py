from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from hub.core.db import Database
from hub.loyalty import jobs
from hub.loyalty.program import default_program
from hub.loyalty.redemption import capture, run_redemption
from hub.redemption_cli import redemption_app
from tests.redemption.support import POS, earn, make_member, pos_hold, shanghai


def test_holds_expire_and_settle_from_the_command_line(db, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    program = default_program()

    async def seed() -> None:
        database = Database(database_url, pool_size=1)
        try:
            async with database.unit_of_work() as s:
                member = await make_member(s)
                await earn(s, program, member, 300, line="app", at=shanghai(2025, 1, 1))
                # the app's 7-day return window closes before the points are spent
                await jobs.release_pending(session=s, program=program, as_of=shanghai(2025, 1, 9))
            at = shanghai(2025, 1, 10, 12)
            spent = await pos_hold(database, program, member, 200, "a", at=at)
            await run_redemption(
                db=database,
                work=lambda s: capture(
                    session=s, program=program, actor=POS, hold_id=spent.id, now=at
                ),
            )
            await pos_hold(database, program, member, 50, "b", at=at, ttl=60)
        finally:
            await database.dispose()

    asyncio.run(seed())
    runner = CliRunner()
    expired = runner.invoke(redemption_app, ["holds", "expire", "--as-of", "2025-01-10T13:00"])
    assert expired.exit_code == 0, expired.output
    assert "holds=1 points=50 timers=2" in expired.output  # the captured hold's timer too
    out = tmp_path / "settlement.csv"
    settled = runner.invoke(
        redemption_app, ["settle", "--period", "2025-01", "--close", "--csv", str(out)]
    )
    assert settled.exit_code == 0, settled.output
    assert "ties_out=True" in settled.output
    assert "closed now" in settled.output
    assert out.read_text(encoding="utf-8").splitlines()[1:] == [
        "gross,2025-01,app,store,200,200",
        "net,2025-01,app,store,200,200",
    ]
    again = runner.invoke(redemption_app, ["settle", "--period", "2025-01", "--close"])
    assert "was already closed" in again.output
    assert "state=closed" in again.output
    bad = runner.invoke(redemption_app, ["settle", "--period", "2025-13"])
    assert bad.exit_code == 1
    assert "must be a month" in bad.output
    purged = runner.invoke(redemption_app, ["holds", "purge-keys", "--days", "30"])
    assert purged.exit_code == 0
    assert "deleted=0" in purged.output
