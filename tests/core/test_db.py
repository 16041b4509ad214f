from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hub.core.audit import Actor, list_audit, record_audit
from hub.core.db import Database
from hub.core.errors import DatabaseUnavailable, NotMigrated
from hub.core.migrate import head_revision, known_revisions


async def test_unit_of_work_commits_on_success(db: Database) -> None:
    async with db.unit_of_work() as session:
        await record_audit(session=session, actor=Actor("a1", "agent"), action="test.ok")
    async with db.read() as session:
        rows = await list_audit(session=session, action="test.ok")
    assert [r.actor for r in rows] == ["a1"]


async def test_unit_of_work_rolls_back_everything_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            await record_audit(session=session, actor=Actor("a1", "agent"), action="test.lost")
            raise RuntimeError("boom")
    async with db.read() as session:
        assert await list_audit(session=session, action="test.lost") == []


async def test_audit_log_rejects_update_and_delete(db: Database) -> None:
    async with db.unit_of_work() as session:
        await record_audit(
            session=session,
            actor=Actor("a1", "agent"),
            action="member.unmask",
            subject="member:1",
            reason="customer called",
            details={"member_id": 1},
        )
    for sql in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.unit_of_work() as session:
                await session.execute(text(sql))


async def test_audit_refuses_pii_looking_details(db: Database) -> None:
    with pytest.raises(ValueError, match="looks like PII"):
        async with db.unit_of_work() as session:
            await record_audit(
                session=session,
                actor=Actor("a1", "agent"),
                action="x",
                details={"phone": "13800000001"},
            )


async def test_require_migrated_passes_at_head_and_names_the_gap(db: Database) -> None:
    await db.require_migrated(head_revision(), known_revisions())
    # The database is at a revision this code calls old: not ready.
    with pytest.raises(NotMigrated, match="run `hub migrate`"):
        await db.require_migrated("9999", known_revisions() | {"9999"} | {head_revision()})


async def test_a_newer_unknown_schema_keeps_old_code_ready(db: Database) -> None:
    # During a rolling update the new release migrates first; the old pods must stay ready.
    await db.require_migrated("0000-old-code-head", known=frozenset({"0000-old-code-head"}))


async def test_ping_reports_an_unreachable_server() -> None:
    down = Database("postgresql://postgres@127.0.0.1:1/none", pool_size=1, max_overflow=0)
    with pytest.raises(DatabaseUnavailable):
        await down.ping(timeout_s=2)
    await down.dispose()
