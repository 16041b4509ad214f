"""What moving hold, capture and cancel into database functions (migration 0008) must not change:
results read the same first time and on replay, a typed error leaves nothing behind but the key,
and errors Python decides before the call are remembered under the key like the others."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hub.core.db import Database, plain_url
from hub.core.errors import IdempotencyConflict
from hub.loyalty.errors import InsufficientPoints
from hub.loyalty.redemption import cancel, capture, run_redemption
from hub.loyalty.redemption_codes import issue_redemption_code
from hub.loyalty.redemption_errors import InvalidRedemptionCode
from hub.loyalty.redemption_resolve import _price_literals
from tests.redemption.support import POS, available, earn, make_member, pos_hold, shanghai

T0 = shanghai(2026, 10, 10, 12)


async def _member(db, program, points):
    async with db.unit_of_work() as s:
        member = await make_member(s)
        await earn(s, program, member, points, line="taobao", at=shanghai(2026, 10, 1, 9))
    return member


def _same(a, b):
    return a.to_json() | {"replayed": None} == b.to_json() | {"replayed": None}


async def test_results_read_the_same_first_time_and_on_replay(ledger, program):
    member = await _member(ledger, program, 300)
    first = await pos_hold(ledger, program, member, 120, "h", at=T0)
    assert _same(first, await pos_hold(ledger, program, member, 120, "h", at=T0))

    def cap(key):
        return run_redemption(
            db=ledger,
            work=lambda s: capture(
                session=s,
                program=program,
                actor=POS,
                hold_id=first.id,
                points=100,
                idempotency_key=key,
                now=T0,
            ),
        )

    done = await cap("c")
    again = await cap("c")
    assert again.replayed
    assert not done.replayed
    assert _same(done, again)
    assert (done.state, done.captured_points, done.available, done.amount_fen) == (
        "captured",
        100,
        200,
        100,
    )
    assert done.resolved_at == T0
    assert done.created_at == T0


async def test_a_typed_error_leaves_the_code_unused_and_nothing_else_behind(
    ledger, program, keyring
):
    member = await _member(ledger, program, 50)
    async with ledger.unit_of_work() as s:
        issued = await issue_redemption_code(
            session=s, keyring=keyring, member_id=member, now=shanghai(2026, 10, 10, 11, 59)
        )
    with pytest.raises(InsufficientPoints):
        await pos_hold(ledger, program, None, 51, "a", at=T0, code=issued.code, keyring=keyring)
    async with ledger.read() as s:
        used = await s.scalar(text("SELECT used_at FROM redemption_code"))
        holds = await s.scalar(text("SELECT count(*) FROM redemption_hold"))
    assert (used, holds) == (None, 0)
    held = await pos_hold(ledger, program, None, 50, "b", at=T0, code=issued.code, keyring=keyring)
    assert held.member_id == member
    with pytest.raises(InvalidRedemptionCode) as caught:
        await pos_hold(ledger, program, None, 1, "c", at=T0, code=issued.code, keyring=keyring)
    assert caught.value.reason == "was already used"


async def test_an_error_found_before_the_call_is_remembered_under_the_key(ledger, program, keyring):
    member = await _member(ledger, program, 50)
    with pytest.raises(InvalidRedemptionCode):
        await pos_hold(ledger, program, None, 10, "k", at=T0, code="12", keyring=keyring)
    with pytest.raises(InvalidRedemptionCode) as caught:
        await pos_hold(ledger, program, None, 10, "k", at=T0, code="12", keyring=keyring)
    assert caught.value.reason == "must be 12 digits"
    with pytest.raises(IdempotencyConflict) as conflict:
        await pos_hold(ledger, program, member, 10, "k", at=T0)
    assert conflict.value.field == "member_id"


async def test_cancel_through_the_function_restores_the_balance(ledger, program):
    member = await _member(ledger, program, 80)
    held = await pos_hold(ledger, program, member, 80, "x", at=T0)
    done = await run_redemption(
        db=ledger,
        work=lambda s: cancel(session=s, program=program, actor=POS, hold_id=held.id, now=T0),
    )
    assert (done.state, done.available, done.lots[0].points) == ("cancelled", 80, 80)
    async with ledger.read() as s:
        assert await available(s, member) == 80


async def test_a_whole_capture_in_time_takes_no_lock_of_the_member(ledger, program, database_url):
    """Migration 0010: nothing of the member changes, so only the hold is locked (a partial
    capture, which gives points back, takes the member's available account first)."""
    member = await _member(ledger, program, 100)
    whole = await pos_hold(ledger, program, member, 40, "w", at=T0)
    part = await pos_hold(ledger, program, member, 40, "p", at=T0)
    # A capture that waited for the lock would fail on this timeout instead of hanging.
    waiting = Database(database_url, pool_size=1, max_overflow=0, statement_timeout_ms=3_000)
    try:
        async with ledger.unit_of_work() as s:
            await s.execute(
                text(
                    "SELECT id FROM loyalty_account WHERE member_id = :m "
                    "AND kind = 'member_available' FOR UPDATE"
                ),
                {"m": member},
            )
            done = await run_redemption(
                db=waiting,
                work=lambda t: capture(
                    session=t, program=program, actor=POS, hold_id=whole.id, now=T0
                ),
            )
            assert (done.state, done.captured_points, done.available) == ("captured", 40, 20)
    finally:
        await waiting.dispose()
    done = await run_redemption(
        db=ledger,
        work=lambda t: capture(
            session=t, program=program, actor=POS, hold_id=part.id, points=10, now=T0
        ),
    )
    assert (done.captured_points, done.available) == (10, 50)


async def test_accounts_that_transfers_name_are_never_deleted(ledger, program):
    member = await _member(ledger, program, 10)
    with pytest.raises(DBAPIError, match="never deleted"):
        async with ledger.unit_of_work() as s:
            await s.execute(text("DELETE FROM loyalty_account WHERE member_id = :m"), {"m": member})


async def test_a_hold_finds_its_key_through_the_index_however_few_keys_there_were(db, database_url):
    """Migration 0024: a hold's plans made while ``idempotency_key`` was known to be empty (a new
    database, vacuumed) must not stay sequential scans as the table grows (13 of them here
    without it)."""
    hold = (
        "SELECT redemption_place_hold('t', $1, 'h', '{}', $2::jsonb, NULL, NULL, 'pos', 'partner',"
        " 'store', 1, 'o', 1, NULL, now(), now(), NULL)"
    )
    early = '{"error": "INVALID_REDEMPTION", "args": {"field": "points", "reason": "r"}}'
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await conn.execute("VACUUM ANALYZE idempotency_key")
        async with conn.transaction():
            for i in range(12):  # past the plan cache's five custom plans
                assert "error" in await conn.fetchval(hold, f"k{i}", early)
            await conn.execute(
                "INSERT INTO idempotency_key (scope, key, operation, request_hash) "
                "SELECT 't', 'more' || g, 'redeem_points', 'h' FROM generate_series(1, 5000) g"
            )
            assert "replay" in await conn.fetchval(hold, "k3", early)
            scans = await conn.fetchrow(
                "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables "
                "WHERE relname = 'idempotency_key'"
            )
        assert (scans["seq_scan"], scans["idx_scan"] > 0) == (0, True)
    finally:
        await conn.close()


async def test_without_batching_each_call_is_a_statement_of_its_own(ledger, program, database_url):
    """``batch_calls=1``: no batcher; hold and capture still commit, each on its own."""
    member = await _member(ledger, program, 50)
    alone = Database(database_url, pool_size=1, max_overflow=0, batch_calls=1)
    try:
        assert alone.batcher is None
        held = await pos_hold(alone, program, member, 30, "solo", at=T0)
        done = await run_redemption(
            db=alone,
            work=lambda s: capture(session=s, program=program, actor=POS, hold_id=held.id, now=T0),
        )
    finally:
        await alone.dispose()
    assert (done.state, done.captured_points, done.available) == ("captured", 30, 20)


async def test_functions_planned_without_seqscans_are_never_jit_compiled(db):
    """Migration 0025: under enable_seqscan = off a query with no index to take (the settlement
    period's closed-month fallback) is costed past jit_above_cost; JIT compiled it per call."""
    async with db.read() as s:
        configs = (
            await s.execute(
                text(
                    "SELECT proname, proconfig FROM pg_proc "
                    "WHERE 'enable_seqscan=off' = ANY (proconfig) ORDER BY proname"
                )
            )
        ).all()
    assert [name for name, _ in configs] == [
        "redemption_cancel",
        "redemption_capture",
        "redemption_expire",
        "redemption_place_hold",
    ]
    assert all("jit=off" in config for _, config in configs)


async def test_a_connection_remembers_line_accounts_and_a_rollback_forgets_them(db, database_url):
    """Migration 0026: a line account's id is kept in a session setting once found; one found
    (and created) in a transaction that rolls back is not kept, so no id of a row that was never
    committed is ever used."""
    setting = "SELECT current_setting('hub_account.issuance.' || $1, true)"
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        assert await conn.fetchval(setting, "spa") is None
        async with conn.transaction():
            first = await conn.fetchval("SELECT redemption_line_id('issuance', 'spa')")
        assert await conn.fetchval(setting, "spa") == str(first)
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                made = await conn.fetchval("SELECT redemption_line_id('issuance', 'gym')")
                assert await conn.fetchval(setting, "gym") == str(made)
                raise RuntimeError("roll back")
        assert await conn.fetchval(setting, "gym") == ""  # undone with the transaction
        again = await conn.fetchval("SELECT redemption_line_id('issuance', 'gym')")
        stored = await conn.fetchval(
            "SELECT id FROM loyalty_account WHERE kind = 'issuance' AND line = 'gym'"
        )
        assert (again, await conn.fetchval(setting, "gym")) == (stored, str(stored))
        assert await conn.fetchval("SELECT redemption_line_id('issuance', 'spa')") == first
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ("kind = 'expiry'", "kind = 'issuance'"),
        ("line = 'elsewhere'", "kind = 'issuance'"),
        ("id = id + 1000", "kind = 'issuance'"),
        ("member_id = NULL", "member_id = {member}"),
    ],
)
async def test_an_accounts_identity_never_changes(ledger, program, change, target):
    """Migration 0026: a remembered line-account id must keep naming the same account."""
    member = await _member(ledger, program, 10)
    target = target.format(member=member)
    async with ledger.read() as s:
        assert await s.scalar(text(f"SELECT count(*) FROM loyalty_account WHERE {target}"))
    with pytest.raises(DBAPIError, match="never deleted, renumbered or given another kind"):
        async with ledger.unit_of_work() as s:
            await s.execute(text(f"UPDATE loyalty_account SET {change} WHERE {target}"))


async def test_capture_sends_the_programs_prices_as_literals_that_read_back_exactly(database_url):
    """The capture's issuers and prices go as array literals: any text and any Decimal must
    come back as they were."""
    prices = (("app", Decimal("1.25")), ('q"u\\o,te}', Decimal("0.800")), ("x", Decimal("1E+1")))
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        issuers, fen = await conn.fetchrow(
            "SELECT $1::text::text[], $2::text::numeric[]", *_price_literals(prices)
        )
    finally:
        await conn.close()
    assert (issuers, fen) == ([line for line, _ in prices], [price for _, price in prices])


@pytest.mark.parametrize("table", ["loyalty_account", "member CASCADE"])
async def test_the_accounts_are_never_truncated(ledger, program, table):
    """Migration 0026: a TRUNCATE skips row triggers; a statement trigger refuses it, directly
    or through a cascade, so no connection is left remembering the id of a vanished account."""
    await _member(ledger, program, 10)
    with pytest.raises(DBAPIError, match="never deleted"):
        async with ledger.unit_of_work() as s:
            await s.execute(text(f"TRUNCATE {table}"))
