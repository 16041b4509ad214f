"""Family-shared phones, masked identifier values, 汉字 name levels and masked-phone blocking."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date
from typing import Any

from identity_testkit import config_with, ident, rec

from hub.core.pii import KeyRing
from identity.compare import NameComparer
from identity.graph import ReviewReason
from identity.resolver import Resolver

PHONE = "+8613800000123"


def _together(partition, a: str, b: str) -> bool:
    return any(a in c and b in c for c in partition.clusters)


def _phone(**kw):
    return ident("phone", PHONE, verified=True, **kw)


def test_a_phone_held_by_two_different_people_joins_nobody(resolver):
    parent = rec("pos", "c1", _phone(), name="测试甲", birthday=date(1970, 3, 1))
    child = rec("pos", "c2", _phone(), name="测试乙", birthday=date(2005, 8, 9))
    app = rec("app", "a1", _phone())  # only the phone: could be either of them
    p = resolver.resolve_batch([parent, child, app])
    assert len(p.clusters) == 3
    assert p.stats["keys_over_fanout"] == 1  # counted as a shared value


def test_a_phone_held_by_one_person_still_joins_everyone(resolver):
    card = rec("pos", "c1", _phone(), name="测试甲", birthday=date(1970, 3, 1))
    hotel = rec("hotel", "h1", _phone(), name="CESHI JIA", birthday=date(1970, 3, 1))
    app = rec("app", "a1", _phone())
    p = resolver.resolve_batch([card, hotel, app])
    assert len(p.clusters) == 1


def test_same_phone_and_a_typo_in_the_name_is_still_one_person(resolver):
    card = rec("pos", "c1", _phone(), name="测试甲", birthday=date(1970, 3, 1))
    other = rec("pos", "c2", _phone(), name="测试乙", birthday=date(1970, 3, 1))
    assert len(resolver.resolve_batch([card, other]).clusters) == 1


def test_names_that_share_only_a_surname_are_different_people_without_birthdays(resolver):
    a = rec("pos", "c1", _phone(), name="张伟")
    b = rec("pos", "c2", _phone(), name="张丽")
    assert len(resolver.resolve_batch([a, b]).clusters) == 2


def test_two_accounts_of_one_app_on_one_phone_are_two_people(resolver):
    a = rec("app", "u1", ident("app_user_id", "appuser_1", scope="ios"), _phone())
    b = rec("app", "u2", ident("app_user_id", "appuser_2", scope="ios"), _phone())
    other_app = rec("app", "u3", ident("app_user_id", "appuser_1", scope="android"), _phone())
    p = resolver.resolve_batch([a, b, other_app])
    assert len(p.clusters) == 3


def test_phone_join_between_clusters_of_different_people_goes_to_review(resolver):
    records = [
        rec("app", "a1", ident("wechat_unionid", "oU1", scope="open"), _phone()),
        rec(
            "pos",
            "c1",
            ident("wechat_unionid", "oU1", scope="open"),
            name="测试甲",
            birthday=date(1970, 3, 1),
        ),
        rec("douyin", "d1", ident("douyin_union_id", "dyu_1", scope="brand"), _phone()),
        rec(
            "pos",
            "c2",
            ident("douyin_union_id", "dyu_1", scope="brand"),
            name="样例乙",
            birthday=date(1995, 6, 2),
        ),
    ]
    p = resolver.resolve_batch(records)
    assert _together(p, "app:a1", "pos:c1")
    assert _together(p, "douyin:d1", "pos:c2")
    assert not _together(p, "app:a1", "douyin:d1")
    assert ReviewReason.DIFFERENT_PEOPLE in {item.reason for item in p.review}


def test_shared_phone_decisions_are_the_same_incrementally(keyring):
    resolver = Resolver(keyring=keyring)
    records = [
        rec("pos", "c1", _phone(), name="测试甲", birthday=date(1970, 3, 1)),
        rec("app", "a1", _phone()),
        rec("hotel", "h1", _phone(), name="CESHI JIA", birthday=date(1970, 3, 1)),
        rec("pos", "c2", _phone(), name="测试乙", birthday=date(2005, 8, 9)),
        rec("app", "a2", ident("app_user_id", "x", scope="ios"), _phone()),
    ]
    batch = resolver.resolve_batch(records)
    for seed, partition in _incremental(resolver, records):
        assert partition.as_sets() == batch.as_sets(), seed
    # the child's card makes the phone shared: only name + birthday joins the parent's records
    assert _together(batch, "pos:c1", "hotel:h1")
    assert not _together(batch, "pos:c1", "app:a1")
    # removing the child makes the phone private again: everything re-joins
    state = resolver.build_state(records)
    resolver.remove("pos:c2", state)
    assert (
        resolver.partition(state).as_sets()
        == resolver.resolve_batch([r for r in records if r.source_key != "c2"]).as_sets()
    )


def test_masked_identifier_values_are_never_keys(resolver):
    a = rec("taobao", "o1", ident("taobao_mix_nick", "t**1_mix", scope="SHOP1"))
    b = rec("taobao", "o2", ident("taobao_mix_nick", "t**1_mix", scope="SHOP1"))
    state = resolver.build_state([a, b])
    assert len(resolver.partition(state).clusters) == 2
    assert state.features["taobao:o1"].masked == 1
    assert not state.features["taobao:o1"].ids


def test_chinese_name_levels_tell_typos_from_relatives(resolver):
    names = NameComparer(0.92, 0.82)

    def level(x: str, y: str) -> int:
        state = resolver.build_state([rec("pos", "x", name=x), rec("pos", "y", name=y)])
        return names(state.features["pos:x"], state.features["pos:y"])

    assert level("测试甲", "测试甲") == 0
    assert level("刘燕", "刘艳") == 1  # same pinyin
    assert level("测试甲", "测试乙") == 2  # one character of three mistyped
    assert level("张伟", "张丽") == 3  # a whole given name differs
    assert level("王小明", "李大红") == 4


def test_masked_name_keeps_only_the_visible_surname(resolver):
    state = resolver.build_state(
        [rec("taobao", "n1", name="张*"), rec("douyin", "r1", name="张**")]
    )
    assert state.features["taobao:n1"].name_masked == state.features["douyin:r1"].name_masked


def test_a_masked_phone_showing_few_digits_is_evidence_but_no_block(keyring):
    resolver = Resolver(keyring=keyring, config=config_with(limits={"mask_block_digits": 6}))
    full = rec("app", "a", ident("phone", "+8613812345678", verified=True), name="测试甲")
    long_mask = rec("taobao", "t", ident("phone_masked", "138****5678"), name="测*")
    short_mask = rec("douyin", "d", ident("phone_masked", "13*******78"), name="测**")
    state = resolver.build_state([full, long_mask, short_mask])
    assert len(state.features["app:a"].phone_masks) == 2
    assert state.features["douyin:d"].mask_blocks == ()
    assert len(state.features["taobao:t"].mask_blocks) == 1
    assert state.blocks.shares_valid_block(state.blocks_of["app:a"], state.blocks_of["taobao:t"])
    assert not state.blocks.shares_valid_block(
        state.blocks_of["app:a"], state.blocks_of["douyin:d"]
    )


def test_in_memory_hashes_are_truncated_keyed_digests():
    records = [rec("app", "a", ident("phone", PHONE, verified=True))]
    f = Resolver(keyring=KeyRing.generate()).build_state(records).features["app:a"]
    ((_kind, digest),) = f.strong
    assert len(digest) == 22
    assert "13800000123" not in digest


def _household(*, same_unionid: bool):
    """The generator's household: the head's two WeChat accounts and a POS card all carry one
    verified phone; a nameless native-app account carries it too. With another unionid the app
    account is a relative's (two Open Platform ids are two people), with the same one it is the
    head's own."""
    other = "oUNION_HEAD" if same_unionid else "oUNION_CHILD"
    return [
        rec(
            "app",
            "wx1",
            ident("wechat_openid", "oOPEN1", scope="wx"),
            _unionid("oUNION_HEAD"),
            _phone(),
        ),
        rec(
            "pos",
            "c1",
            ident("card_no", "8801", scope="pos"),
            _phone(),
            name="测试甲",
            birthday=date(1970, 3, 1),
        ),
        rec(
            "app", "ios1", ident("app_user_id", "appuser_1", scope="ios"), _unionid(other), _phone()
        ),
    ]


def _unionid(value: str):
    return ident("wechat_unionid", value)  # unscoped, as the app connector reads it


def test_a_nameless_record_on_a_household_phone_goes_to_review_not_to_a_member(resolver):
    state = resolver.build_state(_household(same_unionid=False))
    p = resolver.partition(state)
    # two unionids on one phone: the phone is shared, neither nameless account joins the card
    assert not _together(p, "app:ios1", "pos:c1")
    assert not _together(p, "app:wx1", "pos:c1")
    assert not _together(p, "app:ios1", "app:wx1")
    assert p.stats["keys_over_fanout"] == 1
    shared = sorted((i.a, i.b) for i in p.review if i.reason is ReviewReason.SHARED_KEY)
    # each account is proposed against the card; the two accounts are two people: no proposal
    assert shared == [("app:ios1", "pos:c1"), ("app:wx1", "pos:c1")]
    item = next(i for i in p.review if i.a == "app:ios1")
    assert (item.rule, item.detail) == ("key:phone", "shared_value")
    explain = resolver.explain(state, item.a, item.b, item.rule)
    assert explain.rule == "key:phone"
    # the explain says why: both hold the phone, but it is shared, so it weighs nothing
    phone = next(c for c in explain.comparisons if c.field == "phone")
    assert (phone.level, phone.weight_bits) == ("shared_value", 0.0)


def test_the_same_persons_accounts_on_that_phone_still_merge(resolver):
    p = resolver.resolve_batch(_household(same_unionid=True))
    assert len(p.clusters) == 1
    assert not [i for i in p.review if i.reason is ReviewReason.SHARED_KEY]


def test_household_phone_review_is_the_same_incrementally(keyring):
    resolver = Resolver(keyring=keyring)
    for same in (False, True):
        records = _household(same_unionid=same)
        batch = resolver.resolve_batch(records)
        for seed, inc in _incremental(resolver, records):
            assert inc.as_sets() == batch.as_sets(), (same, seed)
            assert [(i.a, i.b, i.reason) for i in inc.review] == [
                (i.a, i.b, i.reason) for i in batch.review
            ], (same, seed)


def test_relatives_on_one_phone_are_each_proposed_for_the_nameless_account(resolver):
    parent = rec("pos", "c1", _phone(), name="测试甲", birthday=date(1970, 3, 1))
    child = rec("pos", "c2", _phone(), name="测试乙", birthday=date(2005, 8, 9))
    app = rec("app", "a1", _phone())
    p = resolver.resolve_batch([parent, child, app])
    shared = sorted((i.a, i.b) for i in p.review if i.reason is ReviewReason.SHARED_KEY)
    assert shared == [("app:a1", "pos:c1"), ("app:a1", "pos:c2")]  # never parent with child


def _incremental(resolver: Resolver, records: list[Any]) -> Iterator[tuple[int, Any]]:
    """The partition of resolving ``records`` one at a time, in six shuffled orders."""
    for seed in range(6):
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        state = resolver.new_state()
        for r in shuffled:
            resolver.resolve_one(r, state)
        yield seed, resolver.partition(state)
