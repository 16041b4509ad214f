"""Deterministic rules, scopes, placeholders, protections, weak evidence, review band, explain."""

from __future__ import annotations

from datetime import date, timedelta

from identity_testkit import T0, config_with, ident, rec

from hub.core.pii import KeyRing
from identity.graph import ReviewReason
from identity.resolver import Resolver


def _together(partition, a: str, b: str) -> bool:
    return any(a in c and b in c for c in partition.clusters)


def test_shared_unionid_joins_records_with_nothing_else_in_common(resolver):
    p = resolver.resolve_batch(
        [
            rec("app", "u1", ident("wechat_unionid", "oUNION1", scope="open1"), name="测试甲"),
            rec("pos", "c1", ident("wechat_unionid", "oUNION1", scope="open1"), name="样例乙"),
        ]
    )
    assert _together(p, "app:u1", "pos:c1")
    assert [link.rule for link in p.links] == ["key:wechat_unionid"]


def test_each_strong_key_kind_joins_deterministically(resolver):
    cases = [
        ident("phone", "+8613800000001", verified=True),
        ident("douyin_union_id", "dyu_1", scope="brand"),
        ident("id_document", "PASSPORT:E00000001"),
    ]
    for identifier in cases:
        p = resolver.resolve_batch([rec("app", "a", identifier), rec("hotel", "h", identifier)])
        assert _together(p, "app:a", "hotel:h"), identifier.kind
        assert p.links[0].rule == f"key:{identifier.kind.value}"


def test_same_source_key_is_one_record_and_the_later_version_wins(resolver, keyring):
    old = rec("app", "u1", name="测试甲", seen=T0)
    new = rec("app", "u1", name="测试乙", seen=T0 + timedelta(days=1))
    state = resolver.build_state([new, old])
    assert list(state.records) == ["app:u1"]
    assert state.records["app:u1"].name == "测试乙"


def test_unverified_phone_alone_is_not_a_deterministic_join(resolver):
    p = resolver.resolve_batch(
        [
            rec("pos", "a", ident("phone", "+8613800000002"), name="测试甲"),
            rec("pos", "b", ident("phone", "+8613800000002"), name="样例乙"),
        ]
    )
    assert not _together(p, "pos:a", "pos:b")
    assert all(not link.rule.startswith("key:") for link in p.links)


def test_scoped_openids_only_meet_inside_their_scope(resolver):
    p = resolver.resolve_batch(
        [
            rec("app", "a", ident("wechat_openid", "oOPEN1", scope="app_a")),
            rec("app", "b", ident("wechat_openid", "oOPEN1", scope="app_b")),
            rec("app", "c", ident("wechat_openid", "oOPEN1", scope="app_a")),
        ]
    )
    assert _together(p, "app:a", "app:c")
    assert not _together(p, "app:a", "app:b")


def test_placeholder_phone_joins_nobody_and_is_counted(resolver):
    p = resolver.resolve_batch(
        [
            rec("pos", "a", ident("phone", "+8613800000000", verified=True), name="测试甲"),
            rec("pos", "b", ident("phone", "+8613800000000", verified=True), name="样例乙"),
        ]
    )
    assert len(p.clusters) == 2
    assert p.stats["placeholders_dropped"] == 2


def test_key_over_fanout_limit_joins_nobody(resolver):
    shared = ident("phone", "+8613800000009", verified=True)  # limit 5 in the default config
    names = ["测试甲", "样例乙", "示例丙", "范本丁", "模型戊", "演练己"]
    records = [rec("pos", f"k{i}", shared, name=n) for i, n in enumerate(names)]
    p = resolver.resolve_batch(records)
    assert len(p.clusters) == 6
    assert p.stats["keys_over_fanout"] == 1


def test_conflicting_id_documents_block_a_key_merge_and_create_a_review_item(resolver):
    card = ident("membership_id", "M0001", scope="brand")  # strong, not a family-shared kind
    p = resolver.resolve_batch(
        [
            rec("hotel", "h1", card, ident("id_document", "ID_CARD:11010119900101000X")),
            rec("hotel", "h2", card, ident("id_document", "ID_CARD:110101199001020001")),
        ]
    )
    assert not _together(p, "hotel:h1", "hotel:h2")
    [item] = p.review
    assert item.reason is ReviewReason.CONFLICT
    assert item.detail == "id_document:ID_CARD"


def test_a_phone_held_by_two_id_documents_is_a_shared_value(resolver):
    phone = ident("phone", "+8613800000003", verified=True)
    p = resolver.resolve_batch(
        [
            rec("hotel", "h1", phone, ident("id_document", "ID_CARD:11010119900101000X")),
            rec("hotel", "h2", phone, ident("id_document", "ID_CARD:110101199001020001")),
        ]
    )
    assert not _together(p, "hotel:h1", "hotel:h2")
    assert p.stats["keys_over_fanout"] == 1
    assert p.review == ()  # two ID cards are two people: nothing to propose


def test_passport_and_resident_id_of_one_person_are_no_conflict(resolver):
    phone = ident("phone", "+8613800000003", verified=True)
    p = resolver.resolve_batch(
        [
            rec("hotel", "h1", phone, ident("id_document", "ID_CARD:11010119900101000X")),
            rec("hotel", "h2", phone, ident("id_document", "PASSPORT:E00000001")),
        ]
    )
    assert _together(p, "hotel:h1", "hotel:h2")


def test_two_recently_verified_phones_conflict_but_a_stale_one_does_not(resolver):
    union = ident("wechat_unionid", "oUNION7", scope="open1")
    recent = [
        rec("app", "a", union, ident("phone", "+8613800000011", verified=True, verified_at=T0)),
        rec("app", "b", union, ident("phone", "+8613800000012", verified=True, verified_at=T0)),
    ]
    p = resolver.resolve_batch(recent)
    assert not _together(p, "app:a", "app:b")
    assert p.review[0].reason is ReviewReason.CONFLICT
    stale_at = T0 - timedelta(days=800)
    stale = [
        recent[0],
        rec(
            "app", "b", union, ident("phone", "+8613800000012", verified=True, verified_at=stale_at)
        ),
    ]
    assert _together(resolver.resolve_batch(stale), "app:a", "app:b")


def test_weak_evidence_alone_never_merges(resolver):
    # masked phone + masked receiver name + same city: the classic Douyin collision
    def douyin(key: str):
        return rec(
            "douyin",
            key,
            ident("phone_masked", "13*******01"),
            name="测**",
            city="杭州市",
            province="浙江省",
        )

    state = resolver.build_state([douyin("o1"), douyin("o2")])
    p = resolver.partition(state)
    assert len(p.clusters) == 2
    assert all(
        item.reason in (ReviewReason.WEAK_EVIDENCE, ReviewReason.SCORE_BAND) for item in p.review
    )


def test_weak_evidence_can_raise_a_score(resolver):
    full = rec("app", "a", ident("phone", "+8613800000001"), name="测试甲", city="杭州市")
    masked = rec("douyin", "d", ident("phone_masked", "13*******01"), name="测**", city="杭州市")
    other = rec("douyin", "e", ident("phone_masked", "13*******99"), name="样**", city="杭州市")
    state = resolver.build_state([full, masked, other])
    with_weak = resolver.explain(state, "app:a", "douyin:d")
    without = resolver.explain(state, "app:a", "douyin:e")
    assert with_weak.score_bits > without.score_bits
    assert len(resolver.partition(state).clusters) == 3


def test_name_match_alone_lands_in_the_review_band(resolver):
    p = resolver.resolve_batch(
        [
            rec("pos", "a", name="测试甲", city="杭州市"),
            rec("hotel", "b", name="测试甲", city="杭州市"),
        ]
    )
    assert len(p.clusters) == 2
    [item] = p.review
    assert item.reason is ReviewReason.SCORE_BAND


def test_name_and_birthday_across_scripts_merge_by_score(resolver):
    bday = date(1990, 1, 1)
    p = resolver.resolve_batch(
        [
            rec("pos", "a", name="测试甲", birthday=bday, city="杭州市"),
            rec("hotel", "b", name_latin="JIA CESHI", birthday=bday, city="杭州"),
        ]
    )
    assert _together(p, "pos:a", "hotel:b")
    assert p.links[0].rule == "score"


def test_explain_lists_rule_score_and_field_comparisons(resolver):
    bday = date(1990, 1, 1)
    records = [
        rec("pos", "a", name="测试甲", birthday=bday, city="杭州市"),
        rec("hotel", "b", name_latin="CESHI JIA", birthday=bday, city="杭州市"),
    ]
    state = resolver.build_state(records)
    [link] = resolver.partition(state).links
    explain = resolver.explain(state, link.a, link.b, link.rule)
    levels = {c.field: c.level for c in explain.comparisons}
    assert levels["name"] == "pinyin_equal"
    assert levels["birthday"] == "exact"
    assert levels["phone"] == "null"
    assert explain.rule == "score"
    assert explain.probability > 0.99
    assert explain.as_dict()["comparisons"][0]["field"] == "name"


def test_max_cluster_size_refuses_growth_beyond_the_limit(keyring):
    resolver = Resolver(keyring=keyring, config=config_with(limits={"max_cluster_size": 3}))
    union = ident("wechat_unionid", "oUNION9", scope="open1")
    p = resolver.resolve_batch([rec("app", f"a{i}", union) for i in range(4)])
    assert max(len(c) for c in p.clusters) == 3
    assert any(item.reason is ReviewReason.MAX_SIZE for item in p.review)


def test_record_bridging_two_large_clusters_goes_to_review(keyring):
    cfg = config_with(limits={"bridge_cluster_size": 2})
    resolver = Resolver(keyring=keyring, config=cfg)
    u1 = ident("wechat_unionid", "oUNION1", scope="open1")
    u2 = ident("douyin_union_id", "dyu_2", scope="brand")
    bridge = ident("phone", "+8613800000005", verified=True)
    p = resolver.resolve_batch(
        [
            rec("app", "a1", u1, bridge),
            rec("app", "a2", u1),
            rec("douyin", "d1", u2, bridge),
            rec("douyin", "d2", u2),
        ]
    )
    assert len(p.clusters) == 2
    assert [item.reason for item in p.review] == [ReviewReason.BRIDGE]


def test_matching_never_sees_plain_identifier_values(resolver):
    state = resolver.build_state([rec("app", "a", ident("phone", "+8613800000001", verified=True))])
    f = state.features["app:a"]
    assert all("13800000001" not in digest for _, digest in f.strong)
    assert all("13800000001" not in str(key) for key in state.blocks_of["app:a"])


def test_a_different_pepper_gives_different_keys():
    records = [rec("app", "a", ident("phone", "+8613800000001", verified=True))]
    one = Resolver(keyring=KeyRing.generate()).build_state(records).features["app:a"].strong
    two = Resolver(keyring=KeyRing.generate()).build_state(records).features["app:a"].strong
    assert one != two
