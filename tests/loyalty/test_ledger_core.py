from __future__ import annotations

import asyncio

import pytest
from ledger_support import balances, make_member
from loyalty_helpers import shanghai
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from hub.core.audit import Actor
from hub.core.db import Database
from hub.core.errors import IdempotencyConflict
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Identifier,
    IdentifierKind,
    SourceRecord,
)
from hub.flows.ingest import IngestReport, ingest
from hub.loyalty.adjustments import adjust_points
from hub.loyalty.errors import InsufficientPoints
from hub.loyalty.hooks import LoyaltyHooks
from hub.loyalty.ledger import (
    AccountKind,
    Transfer,
    TransferCode,
    line_accounts,
    member_accounts,
    post_transfer,
)
from hub.loyalty_cli import loyalty_app

NOW = shanghai(2026, 3, 1, 12)


async def _grant(s, member, amount, key):
    accounts = (await member_accounts(session=s, member_ids=[member]))[member]
    pool = (await line_accounts(session=s, kind=AccountKind.ADJUSTMENT, lines=[None]))[None]
    return (
        accounts,
        pool,
        await post_transfer(
            session=s,
            transfer=Transfer(
                debit=accounts.available,
                credit=pool,
                amount=-amount,
                code=TransferCode.ADJUST_DEBIT,
                key=key,
                effective_at=NOW,
            )
            if amount < 0
            else Transfer(
                debit=pool,
                credit=accounts.pending,
                amount=amount,
                code=TransferCode.ADJUST,
                key=key,
                effective_at=NOW,
            ),
        ),
    )


async def test_post_transfer_is_idempotent_and_refuses_a_changed_replay(db):
    async with db.unit_of_work() as s:
        member = await make_member(s)
        accounts, pool, first = await _grant(s, member, 10, "t1")
        _, _, second = await _grant(s, member, 10, "t1")
        assert (first, second) == (True, False)
        assert (await balances(s, member))["pending"] == 10
        with pytest.raises(IdempotencyConflict):
            await _grant(s, member, 11, "t1")


async def test_post_transfer_refuses_to_overdraw_a_member_account(db):
    async with db.unit_of_work() as s:
        member = await make_member(s)
        with pytest.raises(InsufficientPoints):
            await _grant(s, member, -5, "t1")


async def test_transfers_are_append_only_and_balances_are_checked_by_the_database(db):
    async with db.unit_of_work() as s:
        member = await make_member(s)
        await _grant(s, member, 10, "t1")
    for sql in (
        "UPDATE loyalty_transfer SET amount = 1",
        "DELETE FROM loyalty_transfer",
        "UPDATE loyalty_account SET balance = -1 WHERE member_id IS NOT NULL",
    ):
        with pytest.raises(DBAPIError):
            async with db.unit_of_work() as s:
                await s.execute(text(sql))


async def test_ingested_activities_accrue_through_the_hooks(ledger, keyring, program):
    record = SourceRecord(
        source="pos",
        source_key="88000000001",
        business_line="store",
        observed_at=NOW,
        identifiers=(Identifier(IdentifierKind.CARD_NO, "88000000001", scope="brand"),),
    )
    sale = Activity(
        source="pos",
        external_id="S1",
        kind=ActivityKind.PURCHASE,
        business_line="store",
        occurred_at=NOW,
        status=ActivityStatus.CONFIRMED,
        source_key="88000000001",
        amount_fen=25_000,
    )

    class AttachEveryone:  # stands in for identity resolution
        async def batch_landed(self, *, session, batch):
            for record_id in batch.written.new_records.values():
                member = await make_member(session)
                await session.execute(
                    text("UPDATE source_record SET member_id = :m WHERE id = :r"),
                    {"m": member, "r": record_id},
                )

    class Both:
        def __init__(self):
            self.loyalty = LoyaltyHooks(program, now=NOW)

        async def batch_landed(self, *, session, batch):
            await AttachEveryone().batch_landed(session=session, batch=batch)
            await self.loyalty.batch_landed(session=session, batch=batch)

    hooks = Both()
    items = [("f.csv", record), ("f.csv", sale)]
    await ingest(
        db=ledger, keyring=keyring, items=items, report=IngestReport(connector="pos"), hooks=hooks
    )
    await ingest(
        db=ledger, keyring=keyring, items=items, report=IngestReport(connector="pos"), hooks=hooks
    )
    async with ledger.read() as s:
        member = await s.scalar(text("SELECT member_id FROM source_record"))
        assert await balances(s, member) == {"available": 250, "pending": 0, "debt": 0}
    assert (hooks.loyalty.report.accrued, hooks.loyalty.report.points) == (1, 250)


async def test_activities_that_landed_before_their_record_accrue_when_it_lands(
    ledger, keyring, program
):
    sale = Activity(
        source="pos",
        external_id="S2",
        kind=ActivityKind.PURCHASE,
        business_line="store",
        occurred_at=NOW,
        status=ActivityStatus.CONFIRMED,
        source_key="88000000002",
        amount_fen=12_000,
    )
    record = SourceRecord(
        source="pos",
        source_key="88000000002",
        business_line="store",
        observed_at=NOW,
        identifiers=(Identifier(IdentifierKind.CARD_NO, "88000000002", scope="brand"),),
    )

    class AttachThenAccrue:
        def __init__(self):
            self.loyalty = LoyaltyHooks(program, now=NOW)

        async def batch_landed(self, *, session, batch):
            for record_id in batch.written.new_records.values():
                await session.execute(
                    text("UPDATE source_record SET member_id = :m WHERE id = :r"),
                    {"m": await make_member(session), "r": record_id},
                )
            await self.loyalty.batch_landed(session=session, batch=batch)

    hooks = AttachThenAccrue()
    for item in (sale, record):
        await ingest(
            db=ledger,
            keyring=keyring,
            items=[("f.csv", item)],
            report=IngestReport(connector="pos"),
            hooks=hooks,
        )
    async with ledger.read() as s:
        member = await s.scalar(text("SELECT member_id FROM source_record"))
        assert await balances(s, member) == {"available": 120, "pending": 0, "debt": 0}
    assert hooks.loyalty.report.skipped == {"no_member_yet": 1}


def test_ledger_check_prints_each_check_and_fails_on_a_violation(
    db, database_url, monkeypatch, tmp_path, program
):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))

    async def seed(tamper: bool) -> None:
        database = Database(database_url, pool_size=1)
        try:
            async with database.unit_of_work() as s:
                if not tamper:
                    member = await make_member(s)
                    await adjust_points(
                        session=s,
                        program=program,
                        actor=Actor("agent-1", "agent"),
                        member_id=member,
                        amount=10,
                        reason="测试",
                        idempotency_key="k",
                        now=NOW,
                    )
                else:
                    await s.execute(
                        text(
                            "UPDATE loyalty_account SET balance = balance + 5 "
                            "WHERE kind = 'member_available'"
                        )
                    )
        finally:
            await database.dispose()

    asyncio.run(seed(False))
    ok = CliRunner().invoke(loyalty_app, ["ledger", "check"])
    asyncio.run(seed(True))
    broken = CliRunner().invoke(loyalty_app, ["ledger", "check"])
    assert ok.exit_code == 0, ok.output
    assert "check_balances_match_postings: ok" in ok.output
    assert broken.exit_code == 1
    assert "holds 15 but postings sum to 10" in broken.output


def test_jobs_run_from_the_command_line(db, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    for args in (
        ["expire", "--as-of", "2027-01-01"],
        ["tiers", "evaluate", "--as-of", "2027-01-01"],
        ["pending", "release", "--as-of", "2026-03-20"],
    ):
        result = runner.invoke(loyalty_app, args)
        assert result.exit_code == 0, result.output
        assert "items=0" in result.output
