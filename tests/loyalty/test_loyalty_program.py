from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from loyalty_helpers import PROGRAM_TOML, variant

from hub.core.errors import ConfigError
from hub.loyalty.errors import UnknownBusinessLine, UnknownTier
from hub.loyalty.program import (
    ExpiryKind,
    PendingFrom,
    RefundPolicy,
    configured_program,
    default_program,
    load_program,
    parse_program,
)


def test_default_program_declares_the_group_lines_and_v1_to_v8():
    program = default_program()
    assert list(program.lines) == ["store", "app", "taobao", "douyin", "hotel"]
    assert [t.code for t in program.tiers] == [f"V{i}" for i in range(1, 9)]
    assert program.timezone.key == "Asia/Shanghai"
    assert all(line.timezone.key == "Asia/Shanghai" for line in program.lines.values())
    assert set(program.settlement_fen_per_point) == set(program.lines)
    assert program.expiry.kind is ExpiryKind.END_OF_NEXT_YEAR
    assert program.line("hotel").pending_from is PendingFrom.CHECKOUT
    assert program.rule_for("app", "signup") is not None


def test_program_reads_rates_and_policies(program):
    rule = program.rule_for("taobao", "purchase")
    assert rule is not None
    assert rule.points_per_yuan == Decimal("1.5")
    assert rule.exclude == ("shipping_fen",)
    assert dict(rule.multipliers) == {"V2": Decimal(2)}
    assert program.line("store").refund_policy is RefundPolicy.ALLOW_NEGATIVE
    assert program.line("taobao").redemption_fen_per_point is None
    assert program.settlement_fen_per_point["hotel"] == Decimal("1.2")
    assert program.agent.daily_adjustment_cap_points == 2000


def test_float_rate_in_toml_is_read_as_the_written_decimal():
    program = parse_program(variant(("points_per_yuan = 1.5", "points_per_yuan = 1.1")))
    rule = program.rule_for("taobao", "purchase")
    assert rule is not None
    assert rule.points_per_yuan == Decimal("1.1")


def test_program_lookups_raise_domain_errors(program):
    with pytest.raises(UnknownBusinessLine):
        program.line("douyin")
    with pytest.raises(UnknownTier):
        program.tier("V9")


def test_configured_program_reads_hub_program_path(tmp_path: Path):
    path = tmp_path / "program.toml"
    path.write_text(variant(('name = "测试计划"', 'name = "样例计划"')), encoding="utf-8")
    assert configured_program({"HUB_PROGRAM": str(path)}).name == "样例计划"
    assert configured_program({}).name == default_program().name


def test_missing_program_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read loyalty program"):
        load_program(tmp_path / "nope.toml")


def test_broken_toml_is_a_config_error():
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_program(PROGRAM_TOML + "\n[agent\n")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("points_per_yuan = 1.5", "points_per_yuan = 0"),
            "earn_rules[1].points_per_yuan: must be a positive integer or decimal",
        ),
        (
            ("points_per_yuan = 1.5", 'points_per_yuan = "lots"'),
            "earn_rules[1].points_per_yuan: must be a positive integer or decimal",
        ),
        (
            ("points_per_yuan = 1.5", "points_per_yuan = 1.1234567"),
            "earn_rules[1].points_per_yuan: must have at most 6 decimal places",
        ),
        (
            ("points_per_yuan = 1.5", "point_per_yuan = 1.5"),
            "earn_rules[1].point_per_yuan: unknown key (check the spelling)",
        ),
        (
            ('line = "hotel"\nkind = "stay"', 'line = "hotle"\nkind = "stay"'),
            "earn_rules[2].line: 'hotle' is not a declared business line "
            "(declared: store, taobao, hotel)",
        ),
        (
            ('line = "hotel"\nkind = "stay"', 'line = "hotel"\nkind = "refund"'),
            "earn_rules[2].kind: must be one of 'purchase', 'stay', 'signup', 'other'",
        ),
        (
            ('line = "taobao"\nkind = "purchase"', 'line = "store"\nkind = "purchase"'),
            "earn_rules[1]: repeats line/kind store/purchase of earn_rules[0]",
        ),
        (
            ("points_per_yuan = 1\n", "points_per_night = 1\n"),
            "earn_rules[0].points_per_night: only applies to kind 'stay'",
        ),
        (
            ("V2 = 2", "V9 = 2"),
            "earn_rules[1].multipliers.V9: 'V9' is not a declared tier",
        ),
        (
            ("growth_threshold = 5000", "growth_threshold = 1000"),
            "tiers[2].growth_threshold: must be greater than the previous tier's (1000)",
        ),
        (
            ("retention_growth = 600", "retention_growth = 1200"),
            "tiers[1].retention_growth: must not exceed growth_threshold (1000)",
        ),
        (
            ("growth_threshold = 0\n", "growth_threshold = 10\n"),
            "tiers[0]: the lowest tier needs growth_threshold = 0 and retention_growth = 0",
        ),
        (
            ('min_tier = "V2"', 'min_tier = "V5"'),
            "benefits[0].min_tier: 'V5' is not a declared tier (declared: V1, V2, V3)",
        ),
        (
            ('period = "month"', 'period = "week"'),
            "benefits[0].period: must be one of 'month', 'quarter', 'year'",
        ),
        (
            ("hotel = 1.2\n", ""),
            "settlement_fen_per_point.hotel: is required: every business line needs a "
            "settlement price",
        ),
        (
            ("max_single_adjustment_points = 500", "max_single_adjustment_points = 5000"),
            "agent.max_single_adjustment_points: must not exceed daily_adjustment_cap_points "
            "(2000)",
        ),
        (
            ("daily_adjustment_cap_points = 2000", ""),
            "agent.daily_adjustment_cap_points: is required",
        ),
        (
            ('policy = "end_of_next_year"', 'policy = "end_of_next_year"\ndays = 30'),
            "expiry.days: only applies when policy = 'days'",
        ),
        (
            ('policy = "end_of_next_year"', 'policy = "days"'),
            "expiry.days: is required",
        ),
        (
            ('timezone = "Asia/Shanghai"', 'timezone = "Asia/Beijing"'),
            "program.timezone: unknown time zone 'Asia/Beijing'",
        ),
        (
            ('refund_policy = "allow_negative"', 'refund_policy = "negative"'),
            "lines.store.refund_policy: must be one of 'within_balance', 'allow_negative'",
        ),
        (
            ("pending_days = 15", "pending_days = -1"),
            "lines.taobao.pending_days: must be an integer from 0 to 366",
        ),
        (
            ("[lines.hotel]", "[lines.Hotel]"),
            "lines.Hotel: must be a lower-case slug like 'taobao'",
        ),
        (
            ("[agent]", "[agnet]"),
            "agent: is required",
        ),
    ],
)
def test_invalid_program_names_the_key_path(edit, message):
    with pytest.raises(ConfigError) as info:
        parse_program(variant(edit))
    assert info.value.message.startswith(message), info.value.message


def test_unknown_top_level_table_is_rejected():
    with pytest.raises(ConfigError, match=r"^tier_rules: unknown key"):
        parse_program(PROGRAM_TOML + '\n[tier_rules]\nperiod = "year"\n')


def test_rule_that_earns_nothing_is_rejected():
    text = variant(("points_per_night = 100\ngrowth_per_night = 10\n", ""))
    text = text.replace("points_per_yuan = 2\n", "")
    with pytest.raises(ConfigError, match=r"^earn_rules\[2\]: earns nothing"):
        parse_program(text)
