"""An import's engine keeps decoded records between batches while their stored content holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.flows import resolution
from hub.flows.resolution import Engine
from identity import store
from tests.identity_store.conftest import T0, Land, partition, person, phone, scalar


async def _load(
    db: Database, keyring: KeyRing, cache: store.RecordCache
) -> dict[str, store.StoredRecord]:
    ids = await _ids(db)
    async with db.read() as session:
        loaded = await store.load_records(session=session, keyring=keyring, ids=ids, cache=cache)
    return {f"{r.source}:{r.source_key}": r for r in loaded.values()}


async def _ids(db: Database) -> list[int]:
    async with db.read() as session:
        return [r[0] for r in await session.execute(text("SELECT id FROM source_record"))]


async def test_a_record_is_decoded_again_only_when_its_content_or_time_changed(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    await land([person("app", "u1", phone("+8613800001111")), person("app", "u2", name="测试乙")])
    cache: store.RecordCache = {}
    first = await _load(db, keyring, cache)
    again = await _load(db, keyring, cache)
    assert again["app:u1"].record is first["app:u1"].record
    assert again["app:u2"].record is first["app:u2"].record

    # Membership is read fresh every time, even for a record taken from the cache.
    async with db.unit_of_work() as session:
        await session.execute(
            text("UPDATE source_record SET member_pinned = true WHERE source_key = 'u1'")
        )
    moved = await _load(db, keyring, cache)
    assert moved["app:u1"].pinned
    assert not first["app:u1"].pinned
    assert moved["app:u1"].record is first["app:u1"].record

    # New content (a new name) and a later observation of the same content: decoded again.
    later = T0 + timedelta(days=1)
    await land([person("app", "u1", phone("+8613800001111"), name="测试丙", seen=later)])
    changed = await _load(db, keyring, cache)
    assert changed["app:u1"].record is not first["app:u1"].record
    assert changed["app:u1"].record is not None
    assert changed["app:u1"].record.name == "测试丙"
    assert changed["app:u2"].record is first["app:u2"].record

    # An erased record is not loaded, cache or not.
    async with db.unit_of_work() as session:
        await session.execute(
            text("UPDATE source_record SET erased_at = now() WHERE source_key = 'u2'")
        )
    assert set(await _load(db, keyring, cache)) == {"app:u1"}


async def test_the_cache_is_bounded(
    db: Database, keyring: KeyRing, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "RECORD_CACHE_LIMIT", 2)
    await land([person("app", f"u{i}", name=None, birthday=None) for i in range(5)])
    cache: store.RecordCache = {}
    loaded = await _load(db, keyring, cache)
    assert len(loaded) == 5
    assert 1 <= len(cache) <= 2


async def test_an_import_resolves_the_same_with_records_kept(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    """Batches of one import share the engine's kept records; the partition is the one a
    fresh engine per batch gives (here: the later batches re-meet the first batch's records)."""
    people = [
        person("app", f"u{i}", phone(f"+86138000020{i:02d}"), name=f"测试{i}") for i in range(12)
    ] + [
        person("hotel", f"h{i}", phone(f"+86138000020{i:02d}"), name=f"测试{i}") for i in range(12)
    ]
    hooks = await land(people, batch_size=5)
    assert hooks.engine.records  # records were kept between the batches
    assert len(await partition(db)) == 12
    assert await scalar(db, "SELECT count(DISTINCT member_id) FROM source_record") == 12


def test_only_an_engine_that_keeps_records_keeps_their_features(keyring: KeyRing) -> None:
    record = person("app", "u1", phone("+8613800003333"))
    for keep in (False, True):
        engine = Engine(keyring=keyring, keep_records=keep)
        first = engine.resolver.extractor.extract(record)
        assert engine.resolver.extractor.extract(record) is first  # within a step, always once
        keys = engine.keys(record)
        engine.end_step()
        assert (engine.resolver.extractor.extract(record) is first) is keep
        assert (engine.keys(record) is keys) is keep


def test_a_batch_step_extracts_every_record_once_however_many(
    keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound is for records kept across steps: a batch run's one step over the whole
    table must not lose features between reading keys and building the state."""
    monkeypatch.setattr(resolution, "KEPT_LIMIT", 2)
    engine = Engine(keyring=keyring)
    records = [person("app", f"u{i}") for i in range(5)]
    first = [engine.resolver.extractor.extract(r) for r in records]
    assert all(
        engine.resolver.extractor.extract(r) is f for r, f in zip(records, first, strict=True)
    )
