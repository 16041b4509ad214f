"""Test data for redemption: a small program, members with points earned through accrual."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.audit import Actor
from hub.core.pii import KeyRing
from hub.loyalty.accrual import accrue_activities
from hub.loyalty.invariants import run_checks
from hub.loyalty.program import Program, parse_program
from hub.loyalty.redemption import Redemption, place_hold, run_redemption
from hub.loyalty.redemption_invariants import run_redemption_checks

SHANGHAI = ZoneInfo("Asia/Shanghai")
POS = Actor(id="pos-1", role="partner")
AGENT = Actor(id="agent-1", role="agent")

# store and hotel take points; taobao issues but does not take them. Points expire 30 days after
# the local day earned so tests can watch a lot expire while it is held.
PROGRAM_TOML = """
[program]
name = "测试兑换计划"
version = 1
timezone = "Asia/Shanghai"

[lines.store]
name = "测试门店"
refund_policy = "allow_negative"
redemption_fen_per_point = 1

[lines.hotel]
name = "测试酒店"
refund_policy = "within_balance"
redemption_fen_per_point = 0.5

[lines.taobao]
name = "测试淘宝店"
refund_policy = "within_balance"

[[earn_rules]]
line = "store"
kind = "purchase"
points_per_yuan = 1

[[earn_rules]]
line = "hotel"
kind = "purchase"
points_per_yuan = 1

[[earn_rules]]
line = "taobao"
kind = "purchase"
points_per_yuan = 1

[expiry]
policy = "days"
days = 30

[tier_policy]
evaluation_period = "calendar_year"
downgrade = "one_tier"

[[tiers]]
code = "V1"
name = "普通"
growth_threshold = 0
retention_growth = 0

[settlement_fen_per_point]
store = 1
hotel = 1.2
taobao = 0.9

[agent]
max_single_adjustment_points = 5000
daily_adjustment_cap_points = 20000
"""

_seq = itertools.count(1)


def program() -> Program:
    return parse_program(PROGRAM_TOML)


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


async def make_member(session: AsyncSession) -> int:
    return int(await session.scalar(text("INSERT INTO member DEFAULT VALUES RETURNING id")))


async def earn(
    session: AsyncSession, prog: Program, member: int, points: int, *, line: str, at: datetime
) -> None:
    """``points`` for ``member`` from a purchase at ``line`` (1 point per yuan), accrued now."""
    n = next(_seq)
    source = {"store": "pos", "hotel": "hotel", "taobao": "taobao", "app": "app"}[line]
    key = f"测试-{member}-{line}"
    await session.execute(
        text(
            "INSERT INTO source_record (source, source_key, business_line, observed_at, "
            "content_hash, member_id) VALUES (:s, :k, :l, :at, 'h', :m) "
            "ON CONFLICT DO NOTHING"
        ),
        {"s": source, "k": key, "l": line, "at": at, "m": member},
    )
    activity = await session.scalar(
        text(
            "INSERT INTO activity (source, external_id, kind, business_line, source_key, "
            "amount_fen, quantity, occurred_at, status, details, content_hash) "
            "VALUES (:s, :e, 'purchase', :l, :k, :a, 0, :at, 'confirmed', '{}'::jsonb, 'h') "
            "RETURNING id"
        ),
        {"s": source, "e": f"ORDER-{n}", "l": line, "k": key, "a": points * 100, "at": at},
    )
    report = await accrue_activities(
        session=session, program=prog, activity_ids=[int(activity)], now=at
    )
    assert report.accrued == 1, report


def pos_hold(
    db: Any,
    program: Program,
    member: int | None,
    points: int,
    key: str = "k1",
    *,
    at: datetime,
    line: str = "store",
    ttl: int | None = None,
    code: str | None = None,
    keyring: KeyRing | None = None,
) -> Awaitable[Redemption]:
    """A point of sale's hold of ``points`` at ``line`` under ``key``, for ``member`` or the
    member whose one-time ``code`` it was given."""
    return run_redemption(
        db=db,
        work=lambda s: place_hold(
            session=s,
            program=program,
            actor=POS,
            member_id=member,
            redemption_code=code,
            keyring=keyring,
            line=line,
            points=points,
            order_ref="POS-0001",
            idempotency_key=key,
            hold_ttl_s=ttl,
            now=at,
        ),
    )


async def available(session: AsyncSession, member: int) -> int:
    value = await session.scalar(
        text(
            "SELECT balance FROM loyalty_account WHERE member_id = :m AND kind = 'member_available'"
        ),
        {"m": member},
    )
    return int(value or 0)


async def lot_remaining(session: AsyncSession, member: int) -> dict[str, int]:
    rows = await session.execute(
        text("SELECT issuer_line, sum(remaining) FROM loyalty_lot WHERE member_id = :m GROUP BY 1"),
        {"m": member},
    )
    return {line: int(n) for line, n in rows}


async def problems(session: AsyncSession) -> list[str]:
    found: list[Any] = []
    for results in (await run_checks(session), await run_redemption_checks(session)):
        found += [f"{p.check}: {p.detail}" for ps in results.values() for p in ps]
    return found
