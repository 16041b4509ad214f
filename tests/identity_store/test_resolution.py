from __future__ import annotations

from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.flows.resolution import Engine, IdentityHooks
from tests.identity_store.conftest import Land, member_of, partition, person, phone, scalar
from tests.identity_store.test_agent_ops import RecordingLoyalty


async def test_ingest_forms_members_from_shared_strong_keys(db: Database, land: Land) -> None:
    await land(
        [
            person("app", "u1", phone("+8613800001111")),
            person("pos", "c1", phone("+8613800001111"), ("card_no", "c1", {"scope": "brand"})),
            person("hotel", "h1", phone("+8613800002222"), name="测试乙"),
        ]
    )
    assert await partition(db) == {
        frozenset({"app:u1", "pos:c1"}),
        frozenset({"hotel:h1"}),
    }
    assert await scalar(db, "SELECT count(*) FROM member WHERE status = 'active'") == 2
    assert await scalar(db, "SELECT count(*) FROM identity_event WHERE kind = 'attach'") == 3
    assert await scalar(db, "SELECT count(*) FROM member WHERE golden_enc IS NULL") == 0


def test_stored_block_keys_name_exactly_the_engines_blocks(keyring: KeyRing) -> None:
    engine = Engine(keyring=keyring)
    samples = [
        person("app", "u1", phone("+8613800001111"), name="测试甲"),
        person("hotel", "h1", ("email", "a@example.com"), name="Jia Ceshi", city=None),
        person("pos", "c1", name=None, birthday=None, city=None),
    ]
    assert all(engine.check_blocks(r) for r in samples)


async def test_a_bridging_record_merges_members_and_the_ledger_follows(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    loyalty = RecordingLoyalty()
    hooks = IdentityHooks(keyring=keyring, loyalty=loyalty)
    profile = ("hotel_profile_id", "P-1", {"scope": "pms"})
    await land(
        [
            person("app", "u1", phone("+8613800001111")),
            person("hotel", "h1", profile, name=None, birthday=None, city=None),
        ],
        hooks,
    )
    a, b = await member_of(db, "app", "u1"), await member_of(db, "hotel", "h1")
    assert a != b
    await land([person("hotel", "h2", phone("+8613800001111"), profile)], hooks)
    assert await partition(db) == {frozenset({"app:u1", "hotel:h1", "hotel:h2"})}
    assert await member_of(db, "hotel", "h1") == min(a, b)  # the older id survives
    assert ("follow_merge", (max(a, b), min(a, b))) in loyalty.calls
    kinds = await scalar(db, "SELECT string_agg(kind, ',' ORDER BY kind) FROM identity_event")
    assert kinds == "attach,attach,attach,merge"
    assert await scalar(db, "SELECT status FROM member WHERE id = :m", m=max(a, b)) == "merged"
