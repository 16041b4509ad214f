"""Matching configuration validation and features."""

from __future__ import annotations

import pytest
from identity_testkit import default_toml

from hub.core.errors import ConfigError
from identity.config import load_config, parse_config
from identity.features import name_parts


def _broken(mutate) -> str:
    data = default_toml()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    return err.value.message


def test_default_config_loads_with_every_identifier_kind():
    cfg = load_config()
    assert cfg.keys_by_name["wechat_unionid"].strength == "strong"
    assert cfg.keys_by_name["phone"].strength_of(verified=False) == "medium"
    assert cfg.is_placeholder("+8613800000000")
    assert not cfg.is_placeholder("+8613800000001")


def test_missing_level_is_named_with_its_path():
    msg = _broken(lambda d: d["fields"]["name"]["levels"].pop("pinyin_equal"))
    assert msg.startswith("fields.name.levels:")
    assert "missing pinyin_equal" in msg


def test_probability_out_of_range_names_the_setting():
    def bad(d):
        d["fields"]["birthday"]["levels"]["exact"]["m"] = 1.5

    assert _broken(bad) == "fields.birthday.levels.exact.m: must be at most 1.0, got 1.5"


def test_thresholds_must_be_ordered():
    assert "need 0 < lower < upper < 1" in _broken(lambda d: d["thresholds"].update(lower=0.995))


def test_masked_phone_can_never_be_strong():
    assert "never be a strong key" in _broken(
        lambda d: d["keys"]["phone_masked"].update(strength="strong")
    )


def test_unknown_blocking_feature_and_unknown_key_kind_are_rejected():
    assert "unknown feature(s) shoe_size" in _broken(
        lambda d: d["blocking"]["rules"].append(["shoe_size"])
    )
    assert "keys.icq: not an identifier kind" in _broken(lambda d: d["keys"].update(icq={}))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read matching config"):
        load_config(tmp_path / "nope.toml")


def test_chinese_name_meets_its_pinyin_in_either_order():
    _, zh, _ = name_parts("测试甲")
    _, given_first, _ = name_parts("JIA CESHI")
    _, family_first, _ = name_parts("Ceshi Jia")
    assert zh & given_first
    assert zh & family_first
    assert not zh & name_parts("YANG LIYI")[1]
