"""Golden-record survivorship and stable member ids."""

from __future__ import annotations

from datetime import date, timedelta

from identity_testkit import T0, ident, rec

from identity.config import load_config
from identity.member_ids import assign_member_ids
from identity.survivorship import build_golden

CFG = load_config()


def test_verified_phone_survives_over_a_newer_unverified_one():
    golden = build_golden(
        [
            rec("pos", "p", ident("phone", "+8613800000002"), seen=T0 + timedelta(days=30)),
            rec("app", "a", ident("phone", "+8613800000001", verified=True), seen=T0),
        ],
        config=CFG,
    )
    assert golden.identifiers["phone"] == "+8613800000001"
    assert golden.sources["phone"] == "app:a"


def test_source_priority_beats_recency_and_recency_breaks_ties():
    older_hotel = rec("hotel", "h", name="测试甲", seen=T0)
    newer_pos = rec("pos", "p", name="测试乙", seen=T0 + timedelta(days=9))
    assert build_golden([newer_pos, older_hotel], config=CFG).name == "测试甲"
    newer_hotel = rec("hotel", "h2", name="测试丙", seen=T0 + timedelta(days=1))
    assert build_golden([older_hotel, newer_hotel], config=CFG).name == "测试丙"


def test_masked_values_never_survive():
    golden = build_golden(
        [
            rec("douyin", "d", name="测**", seen=T0 + timedelta(days=5)),
            rec("pos", "p", name="测试甲", birthday=date(1990, 1, 1), seen=T0),
        ],
        config=CFG,
    )
    assert golden.name == "测试甲"
    assert golden.birthday == date(1990, 1, 1)


def test_golden_record_is_recomputed_when_a_record_joins(resolver):
    state = resolver.new_state()
    union = ident("wechat_unionid", "oUNION1", scope="open1")
    resolver.resolve_one(rec("pos", "p", union, name="测试乙"), state)
    decision = resolver.resolve_one(rec("hotel", "h", union, name="测试甲"), state)
    assert decision.golden[0].name == "测试甲"  # hotel outranks pos in the default priority


def test_unchanged_clusters_keep_their_ids_on_a_rerun():
    clusters = [frozenset({"a", "b"}), frozenset({"c"})]
    first = assign_member_ids({}, clusters, next_id=1)
    again = assign_member_ids(first.by_record, list(reversed(clusters)), next_id=first.next_id)
    assert again.by_record == first.by_record
    assert again.new_ids == ()


def test_merged_cluster_keeps_the_oldest_id_and_retires_the_other():
    previous = {"a": 1, "b": 1, "c": 2}
    result = assign_member_ids(previous, [frozenset({"a", "b", "c"})], next_id=3)
    assert result.by_record == {"a": 1, "b": 1, "c": 1}
    assert result.retired == {2: 1}


def test_split_keeps_the_id_with_the_larger_part_and_new_records_get_new_ids():
    previous = {"a": 5, "b": 5, "c": 5}
    result = assign_member_ids(
        previous, [frozenset({"c"}), frozenset({"a", "b"}), frozenset({"z"})], next_id=9
    )
    assert result.by_record["a"] == result.by_record["b"] == 5
    assert result.by_record["c"] == 9
    assert result.by_record["z"] == 10
    assert result.next_id == 11
