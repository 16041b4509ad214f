"""Shared test data for tests/loyalty (a module, not conftest, so tests can import it)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

# A small program whose numbers make the arithmetic in the tests easy to follow.
PROGRAM_TOML = """
[program]
name = "测试计划"
version = 1
timezone = "Asia/Shanghai"

[lines.store]
name = "测试门店"
refund_policy = "allow_negative"
redemption_fen_per_point = 1

[lines.taobao]
name = "测试淘宝店"
pending_days = 15
refund_policy = "within_balance"

[lines.hotel]
name = "测试酒店"
pending_days = 1
pending_from = "checkout"
refund_policy = "within_balance"

[[earn_rules]]
line = "store"
kind = "purchase"
points_per_yuan = 1
growth_per_yuan = 1

[[earn_rules]]
line = "taobao"
kind = "purchase"
points_per_yuan = 1.5
growth_per_yuan = 1
exclude = ["shipping_fen"]
max_points = 1000
[earn_rules.multipliers]
V2 = 2

[[earn_rules]]
line = "hotel"
kind = "stay"
points_per_yuan = 2
points_per_night = 100
growth_per_night = 10
[earn_rules.multipliers]
V3 = 1.5

[expiry]
policy = "end_of_next_year"

[tier_policy]
evaluation_period = "calendar_year"
downgrade = "one_tier"

[[tiers]]
code = "V1"
name = "普通"
growth_threshold = 0
retention_growth = 0

[[tiers]]
code = "V2"
name = "银卡"
growth_threshold = 1000
retention_growth = 600

[[tiers]]
code = "V3"
name = "金卡"
growth_threshold = 5000
retention_growth = 3000

[[benefits]]
code = "store_gift"
line = "store"
min_tier = "V2"
quota = 2
period = "month"
description = "测试礼品"

[settlement_fen_per_point]
store = 1
taobao = 0.9
hotel = 1.2

[agent]
max_single_adjustment_points = 500
daily_adjustment_cap_points = 2000
"""


def variant(*edits: tuple[str, str]) -> str:
    """PROGRAM_TOML with exact text edits; fails loudly if an edit no longer matches."""
    text = PROGRAM_TOML
    for old, new in edits:
        assert text.count(old) == 1, f"edit target not unique: {old!r}"
        text = text.replace(old, new)
    return text


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]
