"""Redemption calls made at the same moment go to the server together (``hub.core.batch``): each
must still resolve exactly once, see what the calls before it in its batch wrote, and leave the
ledger and settlement tying out (the ``ledger`` fixture checks every invariant afterwards)."""

from __future__ import annotations

import asyncio
from collections import Counter

from hub.loyalty.redemption import cancel, capture, run_redemption
from hub.loyalty.redemption_errors import AlreadyCancelled, AlreadyCaptured
from tests.redemption.support import POS, available, earn, make_member, pos_hold, shanghai

T0 = shanghai(2026, 10, 10, 12)
HOLDS = 12


async def test_holds_resolved_many_times_at_once_resolve_once_each(ledger, program):
    async with ledger.unit_of_work() as s:
        member = await make_member(s)
        await earn(s, program, member, 1_000, line="taobao", at=shanghai(2026, 10, 1, 9))
    assert ledger.batcher is not None

    holds = await asyncio.gather(
        *(pos_hold(ledger, program, member, 10, f"b-{i}", at=T0) for i in range(HOLDS))
    )
    assert sorted(h.available for h in holds) == list(range(1_000 - 10 * HOLDS, 1_000, 10))

    def resolve(kind, hold_id, key):
        service = capture if kind == "capture" else cancel
        return run_redemption(
            db=ledger,
            work=lambda s: service(
                session=s, program=program, actor=POS, hold_id=hold_id, idempotency_key=key, now=T0
            ),
        )

    # Every hold captured twice and cancelled once, all at once: the three calls of one hold
    # share a batch or race across two.
    before = ledger.batcher.stats.statements
    calls = [(kind, h.id) for h in holds for kind in ("capture", "cancel", "capture")]
    outcomes = await asyncio.gather(
        *(
            resolve(kind, hold_id, f"{kind}-{hold_id}-{n}")
            for n, (kind, hold_id) in enumerate(calls)
        ),
        return_exceptions=True,
    )
    assert ledger.batcher.stats.statements - before < len(calls)  # batches formed
    per_hold: dict[int, Counter[str]] = {h.id: Counter() for h in holds}
    for (_, hold_id), outcome in zip(calls, outcomes, strict=True):
        if isinstance(outcome, AlreadyCaptured | AlreadyCancelled):
            per_hold[hold_id]["refused"] += 1
        else:
            assert not isinstance(outcome, BaseException), outcome
            per_hold[hold_id][outcome.state] += 1
    for counts in per_hold.values():
        assert counts["refused"] == 2
        assert counts["captured"] + counts["cancelled"] == 1
    captured = sum(c["captured"] for c in per_hold.values())
    async with ledger.read() as s:
        assert await available(s, member) == 1_000 - 10 * captured
