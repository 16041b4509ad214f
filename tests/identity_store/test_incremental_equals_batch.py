from __future__ import annotations

import random
import tomllib
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import pytest

from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.records import SourceRecord
from hub.flows.resolution import IdentityHooks, NoLoyalty, resolve_all
from hub.generator import generate
from hub.importer import run_import
from identity import store
from identity.config import MatchingConfig, parse_config
from identity.resolver import Resolver
from tests.identity_store.conftest import T0, Land, partition, person, phone


async def _import(db: Database, keyring: KeyRing, out: Path, hooks: object, batch: int) -> None:
    await run_import(
        db=db,
        keyring=keyring,
        connector="auto",
        paths=[out],
        actor="test",
        hooks=hooks,  # type: ignore[arg-type]
        batch_size=batch,
    )


def _tight(block: int = 2) -> MatchingConfig:
    """Limits small enough that blocks and keys go over them in a 150-person data set."""
    data = tomllib.loads(
        resources.files("identity").joinpath("default_matching.toml").read_text("utf-8")
    )
    data["limits"].update(max_block_size=block, bridge_cluster_size=3, max_cluster_size=5)
    for key in data["keys"].values():
        key["fanout_limit"] = 2
    return parse_config(data)


@pytest.mark.parametrize(("tight", "batch"), [(False, 97), (True, 13)])
async def test_incremental_batches_give_the_batch_partition(
    db: Database, keyring: KeyRing, tmp_path: Path, tight: bool, batch: int
) -> None:
    config = _tight() if tight else None
    generate(150, 7, tmp_path)
    hooks = IdentityHooks(keyring=keyring, config=config, loyalty=NoLoyalty())
    await _import(db, keyring, tmp_path, hooks, batch=batch)
    incremental = await partition(db)

    # The same records resolved at once by the engine give the same sets.
    async with db.read() as session:
        page = await store.record_page(session=session, keyring=keyring, after_id=0, limit=100_000)
    engine = Resolver(keyring=keyring, config=config)
    whole = engine.resolve_batch(r.record for r in page if r.record is not None)
    assert incremental == {frozenset(c) for c in whole.clusters}
    if tight:
        assert whole.stats["blocks_oversized"] > 0
        assert whole.stats["keys_over_fanout"] > 0

    # And a batch re-resolution of the database changes nothing.
    settled = await resolve_all(db=db, keyring=keyring, config=config, loyalty=NoLoyalty())
    assert settled.changed == []
    assert await partition(db) == incremental
    assert len(incremental) < len(page)


def _crowd(seed: int, n: int = 90) -> list[SourceRecord]:
    """Few names, birthdays, phones and ids shared by many: blocks and keys go over the limits
    while records of one component are resolved, which is where incremental could drift."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ids: list[tuple[str, str] | tuple[str, str, dict[str, object]]] = []
        if rng.random() < 0.6:
            ids.append(phone(f"+86138000{rng.randrange(12):05d}", verified=rng.random() < 0.7))
        if rng.random() < 0.4:
            ids.append(("app_user_id", f"u{rng.randrange(15)}", {"scope": "app"}))
        if rng.random() < 0.3:
            ids.append(("email", f"p{rng.randrange(10)}@example.com"))
        out.append(
            person(
                rng.choice(["app", "pos", "hotel", "taobao"]),
                f"k{i}",
                *ids,
                name=rng.choice(["测试甲", "测试乙", "样例丙", "示例丁"]),
                birthday=date(1990 + rng.randrange(3), 5, 1 + rng.randrange(3)),
                city=rng.choice(["上海", "杭州"]),
                seen=T0 + timedelta(days=rng.randrange(30)),
            )
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_incremental_equals_batch_when_limits_are_crossed(
    db: Database, keyring: KeyRing, land: Land, seed: int
) -> None:
    config = _tight(block=3)
    records = _crowd(seed)
    hooks = IdentityHooks(keyring=keyring, config=config, loyalty=NoLoyalty())
    await land(records, hooks, batch_size=7)
    whole = Resolver(keyring=keyring, config=config).resolve_batch(records)
    assert whole.stats["blocks_oversized"] > 0
    assert whole.stats["keys_over_fanout"] > 0
    assert await partition(db) == {frozenset(c) for c in whole.clusters}
    assert (
        await resolve_all(db=db, keyring=keyring, config=config, loyalty=NoLoyalty())
    ).changed == []
