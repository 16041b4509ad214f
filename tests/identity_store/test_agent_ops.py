from __future__ import annotations

from datetime import timedelta

import pytest

from hub.core.audit import Actor
from hub.core.db import Database
from hub.core.errors import IdempotencyConflict
from hub.core.pii import KeyRing
from hub.flows import members as ops
from hub.flows.resolution import resolve_all
from tests.identity_store.conftest import T0, Land, member_of, partition, person, phone, scalar

AGENT = Actor(id="agent-1", role="agent")
A = person("app", "u1", phone("+8613800001111"), name="测试甲")
B = person("hotel", "h1", phone("+8613800002222", verified=False), name="样例乙", city="杭州")


def passport(value: str) -> tuple[str, str]:
    return ("id_document", f"PASSPORT:{value}")


async def test_merge_then_unmerge_restores_the_exact_partition(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    await land([A, B, person("app", "u2", phone("+8613800001111"))])
    before = await partition(db)
    a, b = await member_of(db, "app", "u1"), await member_of(db, "hotel", "h1")
    async with db.unit_of_work() as session:
        merged = await ops.merge_members(
            session=session, keyring=keyring, a=b, b=a, reason="same guest", actor=AGENT
        )
    assert (merged.survivor, merged.absorbed) == (min(a, b), max(a, b))
    assert len(await partition(db)) == 1
    assert (
        await scalar(db, "SELECT status FROM member WHERE id = :m", m=merged.absorbed) == "merged"
    )

    async with db.unit_of_work() as session:
        undone = await ops.unmerge_member(
            session=session,
            keyring=keyring,
            member=merged.survivor,
            to_event_id=None,
            reason="agent error",
            actor=AGENT,
        )
    assert await partition(db) == before
    assert undone.restored_members == (merged.absorbed,)
    assert await member_of(db, "hotel", "h1") == b  # the old id comes back
    assert await scalar(db, "SELECT count(*) FROM member WHERE status = 'active'") == 2
    kinds = await scalar(
        db, "SELECT string_agg(DISTINCT action, ',' ORDER BY action) FROM audit_log"
    )
    assert kinds == "identity.merge,identity.unmerge"
    async with db.unit_of_work() as session:
        with pytest.raises(ops.NothingToUnmerge):
            await ops.unmerge_member(
                session=session,
                keyring=keyring,
                member=merged.survivor,
                to_event_id=None,
                reason="again",
                actor=AGENT,
            )


async def test_agent_decisions_survive_later_resolution(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    await land([A, person("pos", "c1", phone("+8613800001111"))])
    assert len(await partition(db)) == 1
    record = await scalar(db, "SELECT id FROM source_record WHERE source = 'pos'")
    async with db.unit_of_work() as session:
        moved = await ops.move_source_record(
            session=session,
            keyring=keyring,
            record=record,
            to_member=None,
            reason="shared store phone",
            actor=AGENT,
        )
    assert moved.from_member != moved.to_member
    split = await partition(db)
    assert split == {frozenset({"app:u1"}), frozenset({"pos:c1"})}
    # A newer copy of the moved record and a batch re-run keep the agent's decision.
    newer = person("pos", "c1", phone("+8613800001111"), name="测试甲", seen=T0 + timedelta(days=1))
    await land([newer])
    await resolve_all(db=db, keyring=keyring)
    assert await partition(db) == split
    event = await scalar(
        db,
        "SELECT kind FROM identity_event WHERE source_record_id = :r ORDER BY id DESC LIMIT 1",
        r=record,
    )
    assert event == "move"


async def test_conflicting_strong_keys_are_never_merged(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    await land(
        [
            person("app", "u1", phone("+8613800003333"), passport("E00000001")),
            person("hotel", "h1", phone("+8613800003333"), passport("E00000002")),
        ]
    )
    assert len(await partition(db)) == 2  # the shared verified phone did not join them
    assert await scalar(db, "SELECT reason FROM review_item") == "conflicting_strong_keys"
    a, b = await member_of(db, "app", "u1"), await member_of(db, "hotel", "h1")
    async with db.unit_of_work() as session:
        with pytest.raises(ops.ConflictingStrongKeys):
            await ops.merge_members(
                session=session, keyring=keyring, a=a, b=b, reason="looks same", actor=AGENT
            )
    # The agent who reviews exactly that conflict may still decide they are one person.
    item = await scalar(db, "SELECT id FROM review_item")
    async with db.unit_of_work() as session:
        decided = await ops.resolve_review(
            session=session, keyring=keyring, item=item, accept=True, reason="checked", actor=AGENT
        )
    assert decided.survivor == min(a, b)
    assert len(await partition(db)) == 1
    async with db.unit_of_work() as session:
        with pytest.raises(ops.ReviewAlreadyResolved):
            await ops.resolve_review(
                session=session, keyring=keyring, item=item, accept=False, reason="x", actor=AGENT
            )


async def test_rejected_review_keeps_members_apart(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    await land(
        [
            person("app", "u1", phone("+8613800003333"), passport("E00000001")),
            person("hotel", "h1", phone("+8613800003333"), passport("E00000002")),
        ]
    )
    item = await scalar(db, "SELECT id FROM review_item")
    async with db.unit_of_work() as session:
        decided = await ops.resolve_review(
            session=session,
            keyring=keyring,
            item=item,
            accept=False,
            reason="two people",
            actor=AGENT,
        )
    assert decided.status == "rejected"
    assert await scalar(db, "SELECT count(*) FROM source_record WHERE member_pinned") == 2
    await resolve_all(db=db, keyring=keyring)
    assert await scalar(db, "SELECT status FROM review_item WHERE id = :i", i=item) == "rejected"
    assert len(await partition(db)) == 2


async def test_mutations_replay_by_idempotency_key(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    await land([A, B])
    a, b = await member_of(db, "app", "u1"), await member_of(db, "hotel", "h1")
    results = []
    for _ in range(2):
        async with db.unit_of_work() as session:
            results.append(
                await ops.merge_members(
                    session=session,
                    keyring=keyring,
                    a=a,
                    b=b,
                    reason="same",
                    actor=AGENT,
                    idempotency_key="k-1",
                )
            )
    assert results[0] == results[1]
    assert await scalar(db, "SELECT count(*) FROM audit_log") == 1
    assert await scalar(db, "SELECT count(*) FROM identity_event WHERE kind = 'merge'") == 1
    async with db.unit_of_work() as session:
        with pytest.raises(IdempotencyConflict):
            await ops.merge_members(
                session=session,
                keyring=keyring,
                a=a,
                b=b,
                reason="other",
                actor=AGENT,
                idempotency_key="k-1",
            )


async def test_unmask_is_audited_and_masked_view_has_no_plaintext(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    await land([A])
    m = await member_of(db, "app", "u1")
    masked = await scalar(db, "SELECT golden_masked::text FROM member WHERE id = :m", m=m)
    assert "测试甲" not in masked
    assert "13800001111" not in masked
    assert "138****1111" in masked
    async with db.unit_of_work() as session:
        with pytest.raises(ops.ReasonRequired):
            await ops.unmask_member(
                session=session, keyring=keyring, member=m, reason=" ", actor=AGENT
            )
    async with db.unit_of_work() as session:
        golden = await ops.unmask_member(
            session=session, keyring=keyring, member=m, reason="caller verified", actor=AGENT
        )
    assert golden["name"] == "测试甲"
    assert golden["identifiers"]["phone"] == "+8613800001111"
    assert await scalar(db, "SELECT reason FROM audit_log WHERE action = 'identity.unmask'") == (
        "caller verified"
    )


class RecordingLoyalty:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    async def reattribute(self, *, session: object, source_record_ids: list[int]) -> None:
        self.calls.append(("reattribute", sorted(source_record_ids)))

    async def follow_merge(self, *, session: object, absorbed: int, survivor: int) -> None:
        self.calls.append(("follow_merge", (absorbed, survivor)))


async def test_the_ledger_follows_every_partition_change(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    await land([A, B])
    a, b = await member_of(db, "app", "u1"), await member_of(db, "hotel", "h1")
    hotel = await scalar(db, "SELECT id FROM source_record WHERE source = 'hotel'")
    loyalty = RecordingLoyalty()
    async with db.unit_of_work() as session:
        await ops.merge_members(
            session=session, keyring=keyring, a=a, b=b, reason="same", actor=AGENT, loyalty=loyalty
        )
        await ops.unmerge_member(
            session=session,
            keyring=keyring,
            member=a,
            to_event_id=None,
            reason="undo",
            actor=AGENT,
            loyalty=loyalty,
        )
        await ops.move_source_record(
            session=session,
            keyring=keyring,
            record=hotel,
            to_member=a,
            reason="same after all",
            actor=AGENT,
            loyalty=loyalty,
        )
    assert loyalty.calls == [
        ("follow_merge", (b, a)),
        ("reattribute", [hotel]),
        ("follow_merge", (b, a)),  # the move emptied b: what it still holds follows
        ("reattribute", [hotel]),
    ]
