"""The ledger against a pure model: random accruals, refunds, partial refunds, cancellations,
pending releases, expiry, adjustments, merges, unmerges and replays; every invariant after every
step. Runs ``MAX_EXAMPLES`` × up to ``STEPS`` steps (see the settings at the bottom)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from ledger_model import STORE, TAOBAO, MAccrual, Model
from ledger_support import attach, make_activity, make_member, make_record, problems, set_status
from loyalty_helpers import shanghai, variant
from sqlalchemy import text

from hub.core.audit import Actor
from hub.core.db import Database
from hub.core.errors import HubError
from hub.loyalty import jobs
from hub.loyalty.accrual import accrue_activities
from hub.loyalty.adjustments import adjust_points
from hub.loyalty.attribution import follow_merge, reattribute
from hub.loyalty.program import parse_program
from tests.conftest import _truncate_all

MAX_EXAMPLES = 40
STEPS = 25
PROGRAM = parse_program(
    variant(
        ("[earn_rules.multipliers]\nV2 = 2\n", ""), ("[earn_rules.multipliers]\nV3 = 1.5\n", "")
    )
)
RECORDS = [("pos", STORE), ("pos", STORE), ("taobao", TAOBAO), ("taobao", TAOBAO)]
MEMBERS = 3


class LedgerMachine(RuleBasedStateMachine):
    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.db = Database(self.url, pool_size=2, max_overflow=0)
        self.now = shanghai(2026, 1, 10, 9)
        self.members: list[int] = []
        self.records: list[int] = []
        self.activities: list[tuple[int, MAccrual, str]] = []  # (db id, model, external id)
        self.model = Model(owners={})
        self.seq = 0
        # Examples share the database (no per-example TRUNCATE: it dominated the run time), so
        # every key an example writes is its own: source keys, external ids, the agent.
        self.tag = uuid.uuid4().hex[:8]
        self.agent = Actor(id=f"agent-{self.tag}", role="agent")

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.db.dispose())
        finally:
            self.loop.close()

    @initialize()
    def setup(self) -> None:
        async def go() -> None:
            async with self.db.unit_of_work() as s:
                self.members = [await make_member(s) for _ in range(MEMBERS)]
                for i, (source, line) in enumerate(RECORDS):
                    self.records.append(
                        await make_record(
                            s,
                            source=source,
                            key=f"{self.tag}k{i}",
                            line=line,
                            member_id=self.members[i % 3],
                        )
                    )
                    self.model.owners[i] = i % MEMBERS

        self.run(go())

    # -- activity -------------------------------------------------------------------------
    @rule(record=st.integers(0, 3), amount=st.integers(0, 80_000), shipping=st.integers(0, 1_500))
    def purchase(self, record: int, amount: int, shipping: int) -> None:
        source, line = RECORDS[record]
        self.seq += 1
        external = f"{self.tag}o{self.seq}"

        async def go() -> int:
            async with self.db.unit_of_work() as s:
                act = await make_activity(
                    s,
                    external_id=external,
                    key=f"{self.tag}k{record}",
                    source=source,
                    line=line,
                    amount_fen=amount,
                    occurred_at=self.now,
                    details={"shipping_fen": shipping},
                )
                await accrue_activities(
                    session=s, program=PROGRAM, activity_ids=[act], now=self.now
                )
            return act

        act = self.run(go())
        from ledger_model import earn

        points, growth = earn(line, amount, shipping)
        acc = MAccrual(
            record=record, line=line, amount_fen=amount, points=points, growth=growth, lot=None
        )
        self.model.accrue(acc, self.now, shipping)
        self.activities.append((act, acc, external))

    @precondition(lambda self: self.activities)
    @rule(pick=st.integers(0, 10_000), share=st.floats(0.01, 1.0))
    def refund(self, pick: int, share: float) -> None:
        act, acc, external = self.activities[pick % len(self.activities)]
        left = acc.amount_fen - acc.refunded_fen
        amount = max(1, int(left * share))
        source = RECORDS[acc.record][0]
        self.seq += 1

        async def go() -> None:
            async with self.db.unit_of_work() as s:
                rid = await make_activity(
                    s,
                    external_id=f"{self.tag}r{self.seq}",
                    key=None,
                    source=source,
                    line=acc.line,
                    kind="refund",
                    amount_fen=amount,
                    original=external,
                    occurred_at=self.now,
                )
                await accrue_activities(
                    session=s, program=PROGRAM, activity_ids=[rid], now=self.now
                )

        self.run(go())
        if not acc.cancelled:
            self.model.reverse(acc, amount, self.now)

    @precondition(lambda self: self.activities)
    @rule(pick=st.integers(0, 10_000))
    def cancel(self, pick: int) -> None:
        act, acc, _ = self.activities[pick % len(self.activities)]

        async def go() -> None:
            async with self.db.unit_of_work() as s:
                await set_status(s, act, "cancelled")
                await accrue_activities(
                    session=s, program=PROGRAM, activity_ids=[act], now=self.now
                )

        self.run(go())
        if not acc.cancelled:
            acc.cancelled = True
            self.model.reverse(acc, None, self.now)

    @precondition(lambda self: self.activities)
    @rule(pick=st.integers(0, 10_000))
    def replay_accrual(self, pick: int) -> None:
        act = self.activities[pick % len(self.activities)][0]

        async def go() -> None:
            async with self.db.unit_of_work() as s:
                await accrue_activities(
                    session=s, program=PROGRAM, activity_ids=[act], now=self.now
                )

        self.run(go())

    # -- time and jobs ----------------------------------------------------------------------
    @rule(days=st.sampled_from([1, 3, 10, 16, 90, 200, 400]))
    def advance(self, days: int) -> None:
        self.now += timedelta(days=days)

    @rule(twice=st.booleans())
    def release(self, twice: bool) -> None:
        async def go() -> None:
            for _ in range(2 if twice else 1):
                async with self.db.unit_of_work() as s:
                    await jobs.release_pending(session=s, program=PROGRAM, as_of=self.now)

        self.run(go())
        self.model.release(self.now)

    @rule(twice=st.booleans())
    def expire(self, twice: bool) -> None:
        async def go() -> None:
            for _ in range(2 if twice else 1):
                async with self.db.unit_of_work() as s:
                    await jobs.expire(session=s, program=PROGRAM, as_of=self.now)

        self.run(go())
        self.model.expire(self.now)

    # -- agents -----------------------------------------------------------------------------
    @rule(
        member=st.integers(0, MEMBERS - 1),
        amount=st.integers(-500, 500).filter(bool),
        key=st.sampled_from(["a", "b", "c", "d", "e", "f"]),
    )
    def adjust(self, member: int, amount: int, key: str) -> None:
        model = self.model
        key = f"{key}{self.now.date()}"

        async def go() -> str | None:
            try:
                async with self.db.unit_of_work() as s:
                    await adjust_points(
                        session=s,
                        program=PROGRAM,
                        actor=self.agent,
                        member_id=self.members[member],
                        amount=amount,
                        reason="测试调整",
                        idempotency_key=key,
                        now=self.now,
                    )
            except HubError as exc:
                return exc.code
            return None

        error = self.run(go())
        day = self.now.date()
        if key in model.keys:
            expected = None if model.keys[key] == (member, amount) else "IDEMPOTENCY_CONFLICT"
        elif member in model.merged:
            expected = "NOT_FOUND"
        elif model.used_today.get(day, 0) + abs(amount) > PROGRAM.agent.daily_adjustment_cap_points:
            expected = "ADJUSTMENT_CAP_EXCEEDED"
        elif amount < 0 and sum(x.remaining for x in model.spendable(member, self.now)) < -amount:
            expected = "INSUFFICIENT_POINTS"
        else:
            expected = None
            model.keys[key] = (member, amount)
            model.used_today[day] = model.used_today.get(day, 0) + abs(amount)
            model.adjust(member, amount, self.now)
        assert error == expected

    # -- identity ---------------------------------------------------------------------------
    @rule(absorbed=st.integers(0, MEMBERS - 1), survivor=st.integers(0, MEMBERS - 1))
    def merge(self, absorbed: int, survivor: int) -> None:
        if absorbed == survivor or absorbed in self.model.merged or survivor in self.model.merged:
            return

        async def go() -> None:
            a, b = self.members[absorbed], self.members[survivor]
            async with self.db.unit_of_work() as s:
                await s.execute(
                    text("UPDATE source_record SET member_id = :b WHERE member_id = :a"),
                    {"a": a, "b": b},
                )
                await s.execute(
                    text("UPDATE member SET status = 'merged', merged_into = :b WHERE id = :a"),
                    {"a": a, "b": b},
                )
                await follow_merge(session=s, program=PROGRAM, absorbed=a, survivor=b, now=self.now)

        self.run(go())
        self.model.merge(absorbed, survivor)

    @rule(record=st.integers(0, 3), member=st.integers(0, MEMBERS - 1))
    def unmerge(self, record: int, member: int) -> None:
        async def go() -> None:
            m = self.members[member]
            async with self.db.unit_of_work() as s:
                await attach(s, self.records[record], m)
                await s.execute(
                    text("UPDATE member SET status = 'active', merged_into = NULL WHERE id = :m"),
                    {"m": m},
                )
                await reattribute(
                    session=s,
                    program=PROGRAM,
                    source_record_ids=[self.records[record]],
                    now=self.now,
                )

        self.run(go())
        self.model.move(record, member)

    # -- checks -----------------------------------------------------------------------------
    @invariant()
    def matches_model_and_invariants(self) -> None:
        if not self.members:
            return

        async def go() -> tuple[list[str], dict[int, dict[str, int]], dict[int, int]]:
            mine = "(" + ", ".join(str(m) for m in self.members) + ")"
            async with self.db.read() as s:
                found = await problems(s)
                rows = await s.execute(
                    text(
                        "SELECT member_id, kind, balance FROM loyalty_account WHERE member_id IN "
                        + mine
                    )
                )
                balances: dict[int, dict[str, int]] = {}
                for m, kind, balance in rows:
                    balances.setdefault(m, {})[kind.removeprefix("member_")] = balance
                growth = dict(
                    (
                        await s.execute(
                            text(
                                "SELECT member_id, sum(amount) FROM loyalty_growth "
                                "WHERE member_id IN " + mine + " GROUP BY 1"
                            )
                        )
                    ).all()
                )
            return found, balances, growth

        found, balances, growth = self.run(go())
        assert found == []
        for i, m in enumerate(self.members):
            got = {k: balances.get(m, {}).get(k, 0) for k in ("available", "pending", "debt")}
            assert got == self.model.balances(i), f"member {i}"
            assert int(growth.get(m, 0)) == self.model.member_growth(i), f"growth of member {i}"


@pytest.fixture
def machine(database_url: str) -> Iterator[type[LedgerMachine]]:
    LedgerMachine.url = database_url
    yield LedgerMachine

    async def clean() -> None:
        db = Database(database_url, pool_size=1)
        try:
            await _truncate_all(db)
        finally:
            await db.dispose()

    asyncio.run(clean())


def test_ledger_matches_model(machine: type[LedgerMachine]) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
