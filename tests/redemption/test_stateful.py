"""Hypothesis stateful test: holds, captures, cancels, expiry and refunds against a model of each
hold's state, with every ledger and redemption invariant (settlement tie-out included) checked
after each step."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from hub.core.db import Database
from hub.loyalty import jobs, settlement
from hub.loyalty.errors import InsufficientPoints
from hub.loyalty.redemption import (
    cancel,
    capture,
    expire_holds,
    place_hold,
    refund_redemption,
    run_redemption,
)
from hub.loyalty.redemption_errors import (
    AlreadyCancelled,
    AlreadyCaptured,
    HoldExpired,
    NotCaptured,
    RefundExceedsCaptured,
)
from tests.conftest import _truncate_all
from tests.redemption.support import POS, earn, make_member, problems, program, shanghai

RESOLVED_ERROR = {
    "captured": AlreadyCaptured,
    "refunded": AlreadyCaptured,
    "cancelled": AlreadyCancelled,
    "expired": HoldExpired,
}


class Redemptions(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.db = Database(DATABASE_URL[0], pool_size=2, max_overflow=0)
        self.program = program()
        self.now = shanghai(2026, 10, 1, 10)
        self.members: list[int] = []
        self.model: dict[int, dict] = {}  # hold id → state, points, captured, refunded, expires
        self.keys = 0
        self.run_id = uuid.uuid4().hex

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def key(self) -> str:
        self.keys += 1
        return f"{self.run_id}-{self.keys}"  # examples share the database: keys must not repeat

    @initialize()
    def members_with_points(self) -> None:
        async def go():
            async with self.db.unit_of_work() as s:
                for i in range(2):
                    member = await make_member(s)
                    for j, line in enumerate(("taobao", "hotel", "store")):
                        await earn(
                            s,
                            self.program,
                            member,
                            100 + 50 * j,
                            line=line,
                            at=self.now - timedelta(days=20 - 5 * j + i),
                        )
                    self.members.append(member)

        self.run(go())

    @rule(
        target=holds,
        who=st.integers(0, 1),
        points=st.integers(1, 400),
        ttl=st.sampled_from([60, 3600, 86_400]),
        line=st.sampled_from(["store", "hotel"]),
    )
    def hold(self, who, points, ttl, line):
        try:
            hold = self.run(
                run_redemption(
                    db=self.db,
                    work=lambda s: place_hold(
                        session=s,
                        program=self.program,
                        actor=POS,
                        member_id=self.members[who],
                        line=line,
                        points=points,
                        order_ref="O",
                        idempotency_key=self.key(),
                        hold_ttl_s=ttl,
                        now=self.now,
                    ),
                )
            )
        except InsufficientPoints:
            return multiple()
        self.model[hold.id] = {
            "state": "pending",
            "points": points,
            "captured": 0,
            "refunded": 0,
            "expires": self.now + timedelta(seconds=ttl),
        }
        return hold.id

    def _expected_resolution_error(self, hold_id):
        m = self.model[hold_id]
        if m["state"] != "pending":
            return RESOLVED_ERROR[m["state"]]
        if m["expires"] <= self.now:
            m["state"] = "expired"
            return HoldExpired
        return None

    @rule(hold_id=holds, part=st.integers(0, 3))
    def capture(self, hold_id, part):
        expected = self._expected_resolution_error(hold_id)
        m = self.model[hold_id]
        points = None if part == 0 else max(1, m["points"] * part // 4)
        try:
            done = self.run(
                run_redemption(
                    db=self.db,
                    work=lambda s: capture(
                        session=s,
                        program=self.program,
                        actor=POS,
                        hold_id=hold_id,
                        points=points,
                        now=self.now,
                    ),
                )
            )
        except (AlreadyCaptured, AlreadyCancelled, HoldExpired) as exc:
            failure: type[Exception] | None = type(exc)
        else:
            failure = None
        assert failure is expected
        if failure is not None:
            return
        assert expected is None
        m["state"], m["captured"] = "captured", points or m["points"]
        assert done.captured_points == m["captured"]

    @rule(hold_id=holds)
    def cancel(self, hold_id):
        expected = self._expected_resolution_error(hold_id)
        try:
            self.run(
                run_redemption(
                    db=self.db,
                    work=lambda s: cancel(
                        session=s, program=self.program, actor=POS, hold_id=hold_id, now=self.now
                    ),
                )
            )
        except (AlreadyCaptured, AlreadyCancelled, HoldExpired) as exc:
            failure: type[Exception] | None = type(exc)
        else:
            failure = None
        assert failure is expected
        if failure is not None:
            return
        assert expected is None
        self.model[hold_id]["state"] = "cancelled"

    @rule(hold_id=holds, points=st.integers(1, 200) | st.none())
    def refund(self, hold_id, points):
        m = self.model[hold_id]
        left = m["captured"] - m["refunded"]
        try:
            done = self.run(
                run_redemption(
                    db=self.db,
                    work=lambda s: refund_redemption(
                        session=s,
                        program=self.program,
                        actor=POS,
                        hold_id=hold_id,
                        idempotency_key=self.key(),
                        points=points,
                        now=self.now,
                    ),
                )
            )
        except NotCaptured:
            assert m["state"] not in ("captured", "refunded")
            return
        except RefundExceedsCaptured:
            assert m["state"] in ("captured", "refunded") and (points or left) > left or left == 0
            return
        m["refunded"] += points or left
        m["state"] = "refunded" if m["refunded"] == m["captured"] else "captured"
        assert (done.state, done.refunded_points) == (m["state"], m["refunded"])

    @rule(hours=st.sampled_from([1, 24, 24 * 9]))
    def time_passes(self, hours):
        self.now += timedelta(hours=hours)

        async def go():
            async with self.db.unit_of_work() as s:
                run = await expire_holds(session=s, program=self.program, as_of=self.now)
                await jobs.expire(session=s, program=self.program, as_of=self.now)
            return run

        run = self.run(go())
        due = [
            h for h, m in self.model.items() if m["state"] == "pending" and m["expires"] <= self.now
        ]
        assert run.holds == len(due)
        for h in due:
            self.model[h]["state"] = "expired"

    @invariant()
    def ledger_holds(self):
        async def go():
            async with self.db.read() as s:
                found = await problems(s)
                report = await settlement.settle(session=s, period="2026-10")
                later = await settlement.settle(session=s, period="2026-11")
            return found, report, later

        if not self.members:
            return
        found, report, later = self.run(go())
        assert found == []
        assert report.ties_out
        assert later.ties_out

    def teardown(self):
        self.run(_truncate_all(self.db))  # each example starts from an empty ledger
        self.run(self.db.dispose())
        self.loop.close()


DATABASE_URL: list[str] = []


def test_redemption_state_machine(database_url):
    DATABASE_URL[:] = [database_url]
    test = Redemptions.TestCase
    test.settings = settings(
        max_examples=10,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    try:
        test().runTest()
    finally:
        cleanup = asyncio.new_event_loop()
        database = Database(database_url, pool_size=1)
        cleanup.run_until_complete(_truncate_all(database))
        cleanup.run_until_complete(database.dispose())
        cleanup.close()
