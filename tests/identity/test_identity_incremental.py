"""Incremental resolution gives the batch partition, whatever the arrival order."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from identity_testkit import T0, config_with, ident, rec

from hub.core.pii import KeyRing
from identity.resolver import Resolver
from identity.synthetic import make_people


def _incremental(resolver, records):
    state = resolver.new_state()
    for r in records:
        resolver.resolve_one(r, state)
    return resolver.partition(state), state


def _check_same(resolver, records, seeds=(1, 2, 3)):
    batch = resolver.resolve_batch(records)
    for seed in seeds:
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        inc, _ = _incremental(resolver, shuffled)
        assert inc.as_sets() == batch.as_sets(), seed
        assert {(i.a, i.b, i.reason) for i in inc.review} == {
            (i.a, i.b, i.reason) for i in batch.review
        }
    return batch


def test_incremental_equals_batch_on_synthetic_people(keyring):
    records, _ = make_people(400, seed=3)
    resolver = Resolver(keyring=keyring).fit(records)
    batch = _check_same(resolver, records)
    assert len(batch.clusters) < len(records)  # there were merges to get right


def test_incremental_equals_batch_when_blocks_and_keys_overflow(keyring):
    cfg = config_with(limits={"max_block_size": 3, "max_cluster_size": 4, "bridge_cluster_size": 3})
    resolver = Resolver(keyring=keyring, config=cfg)
    records, _ = make_people(250, seed=11, dup_rate=0.8)
    shared = ident("phone", "+8613800000077", verified=True)
    records += [rec("pos", f"shared{i}", shared, name="测试甲", city="杭州市") for i in range(7)]
    batch = _check_same(resolver, records)
    assert batch.stats["blocks_oversized"] > 0
    assert batch.stats["keys_over_fanout"] > 0


def test_resending_a_record_and_removing_one_match_batch(keyring):
    resolver = Resolver(keyring=keyring)
    records, _ = make_people(120, seed=5)
    state = resolver.new_state()
    for r in records:
        resolver.resolve_one(r, state)
    # a newer version of one record with a different phone, and a deletion
    changed = records[0]
    newer = rec(
        changed.source,
        changed.source_key,
        ident("phone", "+8613899999999", verified=True),
        name="样例新",
        seen=changed.observed_at + timedelta(days=1),
    )
    resolver.resolve_one(newer, state)
    gone = records[1]
    resolver.remove(f"{gone.source}:{gone.source_key}", state)
    expected = resolver.resolve_batch([newer, *records[2:]])
    assert resolver.partition(state).as_sets() == expected.as_sets()


def test_resolve_one_reports_the_join_with_its_link_and_golden_record(resolver):
    state = resolver.new_state()
    union = ident("wechat_unionid", "oUNION1", scope="open1")
    first = resolver.resolve_one(rec("app", "a", union, name="测试甲"), state)
    assert first.outcome == "new"
    second = resolver.resolve_one(rec("pos", "b", union, name="测试甲", seen=T0), state)
    assert second.outcome == "joined"
    assert second.cluster == {"app:a", "pos:b"}
    assert [link.rule for link in second.links] == ["key:wechat_unionid"]
    assert second.golden[0].name == "测试甲"
    assert second.elapsed_ms < 1000


_names = st.sampled_from(["测试甲", "测试乙", "CESHI JIA", "样例丙", "ANNA EXAMPLE", None])
_phones = st.sampled_from(["+8613800000001", "+8613800000002", "+8613800000003", None])
_unions = st.sampled_from(["u1", "u2", None])


@st.composite
def _record(draw, i):
    ids = []
    phone = draw(_phones)
    if phone:
        ids.append(ident("phone", phone, verified=draw(st.booleans())))
    union = draw(_unions)
    if union:
        ids.append(ident("wechat_unionid", union, scope="open1"))
    return rec(
        "app", f"r{i}", *ids, name=draw(_names), city=draw(st.sampled_from(["杭州市", None]))
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), min_size=2, max_size=12, unique=True).flatmap(
        lambda ids: st.tuples(*[_record(i) for i in ids])
    ),
    st.randoms(use_true_random=False),
)
def test_incremental_equals_batch_for_any_small_set(records, rnd):
    resolver = Resolver(keyring=_KEYRING)
    order = list(records)
    rnd.shuffle(order)
    inc, _ = _incremental(resolver, order)
    assert inc.as_sets() == resolver.resolve_batch(records).as_sets()


_KEYRING = KeyRing.generate()
