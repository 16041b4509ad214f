"""Read and validate the loyalty program file (DESIGN.md §4: the program is configuration).

``default_program()`` loads the documented ``default_program.toml`` shipped next to this module;
``configured_program()`` honours ``HUB_PROGRAM``. Every problem is a ``ConfigError`` naming the
key path, e.g. ``earn_rules[2].points_per_yuan: must be a positive integer or decimal`` (array
indexes are 0-based), and unknown keys are errors so a misspelt setting cannot be ignored.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.core.errors import ConfigError
from hub.core.records import ActivityKind
from hub.loyalty._config import Section, fail
from hub.loyalty.model import (
    AgentPolicy,
    Benefit,
    BusinessLine,
    DowngradeRule,
    EarnRule,
    EvaluationPeriod,
    ExpiryKind,
    ExpiryPolicy,
    PendingFrom,
    Program,
    QuotaPeriod,
    RefundPolicy,
    Tier,
    TierPolicy,
)

__all__ = [
    "AgentPolicy",
    "Benefit",
    "BusinessLine",
    "DowngradeRule",
    "EarnRule",
    "EvaluationPeriod",
    "ExpiryKind",
    "ExpiryPolicy",
    "PendingFrom",
    "Program",
    "QuotaPeriod",
    "RefundPolicy",
    "Tier",
    "TierPolicy",
    "configured_program",
    "default_program",
    "load_program",
    "parse_program",
]

PROGRAM_ENV = "HUB_PROGRAM"
MAX_FILE_BYTES = 1 << 20
MAX_LINES = 32
MAX_RULES = 256
MAX_TIERS = 16
MAX_BENEFITS = 512
MAX_MULTIPLIER = Decimal(100)
_LINE_CODE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # the same shape as records' business_line
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_EARNING_KINDS = tuple(k.value for k in ActivityKind if k is not ActivityKind.REFUND)
_RATES = ("points_per_yuan", "points_per_night", "growth_per_yuan", "growth_per_night")


def load_program(path: str | os.PathLike[str]) -> Program:
    """Read and validate a program file; raises ``ConfigError`` naming the offending key."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read loyalty program {file}: {exc.strerror}") from None
    return parse_program(raw, source=str(file))


def parse_program(raw: bytes | str, *, source: str = "<program>") -> Program:
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_FILE_BYTES} bytes")
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    return _program(Section(parsed, ""))


@cache
def default_program() -> Program:
    text = resources.files("hub.loyalty").joinpath("default_program.toml").read_bytes()
    return parse_program(text, source="default_program.toml")


def configured_program(environ: Mapping[str, str] | None = None) -> Program:
    """The program named by ``HUB_PROGRAM``, or the shipped default when it is unset or empty."""
    env = os.environ if environ is None else environ
    path = env.get(PROGRAM_ENV, "").strip()
    return load_program(path) if path else default_program()


def _program(root: Section) -> Program:
    head = root.section("program")
    name = head.text("name")
    version = head.integer("version", minimum=1, maximum=1_000_000)
    timezone = _zone(head, "timezone", default="Asia/Shanghai")
    head.finish()

    lines = {
        code: _line(code, sec, timezone)
        for code, sec in root.named_sections("lines", limit=MAX_LINES)
    }
    tiers = _tiers(root)
    rules = _earn_rules(root, lines, tiers)
    program = Program(
        name=name,
        version=version,
        timezone=timezone,
        lines=MappingProxyType(lines),
        earn_rules=rules,
        expiry=_expiry(root.section("expiry")),
        tiers=tiers,
        tier_policy=_tier_policy(root.section("tier_policy")),
        benefits=_benefits(root, lines, tiers),
        settlement_fen_per_point=_settlement(root.section("settlement_fen_per_point"), lines),
        agent=_agent(root.section("agent")),
    )
    root.finish()
    return program


def _zone(sec: Section, key: str, *, default: str) -> ZoneInfo:
    name = sec.text(key, default=default, max_len=64)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        reason = f"unknown time zone {name!r} (an IANA name like 'Asia/Shanghai')"
        raise fail(sec.at(key), reason) from None


def _code(value: str, path: str, *, line: bool = False) -> str:
    if not (_LINE_CODE if line else _CODE).match(value):
        shape = "a lower-case slug like 'taobao'" if line else "letters, digits and '_' (≤ 32)"
        raise fail(path, f"must be {shape}")
    return value


def _known(value: str, known: Mapping[str, object], path: str, what: str) -> str:
    if value not in known:
        declared = ", ".join(known)
        raise fail(path, f"{value!r} is not a declared {what} (declared: {declared})")
    return value


def _line(code: str, sec: Section, timezone: ZoneInfo) -> BusinessLine:
    _code(code, sec.path, line=True)
    rate = sec.decimal("redemption_fen_per_point") if "redemption_fen_per_point" in sec else None
    line = BusinessLine(
        code=code,
        name=sec.text("name"),
        timezone=_zone(sec, "timezone", default=timezone.key),
        pending_days=sec.integer("pending_days", maximum=366, default=0),
        pending_from=PendingFrom(
            sec.choice("pending_from", tuple(PendingFrom), default=PendingFrom.OCCURRED_AT)
        ),
        refund_policy=RefundPolicy(sec.choice("refund_policy", tuple(RefundPolicy))),
        redemption_fen_per_point=rate,
    )
    sec.finish()
    return line


def _tiers(root: Section) -> tuple[Tier, ...]:
    sections = root.sections("tiers", limit=MAX_TIERS)
    if not sections:
        raise fail("tiers", "must declare at least one tier ([[tiers]])")
    tiers: list[Tier] = []
    for rank, sec in enumerate(sections):
        tier = Tier(
            code=_code(sec.text("code"), sec.at("code")),
            name=sec.text("name"),
            rank=rank,
            growth_threshold=sec.integer("growth_threshold"),
            retention_growth=sec.integer("retention_growth"),
        )
        sec.finish()
        if any(t.code == tier.code for t in tiers):
            raise fail(sec.at("code"), f"tier {tier.code!r} is declared twice")
        if rank == 0 and (tier.growth_threshold or tier.retention_growth):
            raise fail(
                sec.path, "the lowest tier needs growth_threshold = 0 and retention_growth = 0"
            )
        if tiers and tier.growth_threshold <= tiers[-1].growth_threshold:
            raise fail(
                sec.at("growth_threshold"),
                f"must be greater than the previous tier's ({tiers[-1].growth_threshold}); "
                "list tiers from lowest to highest",
            )
        if tier.retention_growth > tier.growth_threshold:
            raise fail(
                sec.at("retention_growth"),
                f"must not exceed growth_threshold ({tier.growth_threshold})",
            )
        tiers.append(tier)
    return tuple(tiers)


def _earn_rules(
    root: Section, lines: Mapping[str, BusinessLine], tiers: tuple[Tier, ...]
) -> tuple[EarnRule, ...]:
    tier_codes = {t.code: t for t in tiers}
    rules: dict[tuple[str, str], EarnRule] = {}
    for index, sec in enumerate(root.sections("earn_rules", limit=MAX_RULES)):
        rates = {k: sec.decimal(k) if k in sec else Decimal(0) for k in _RATES}
        multipliers = sec.section("multipliers", default={})
        factors: dict[str, Decimal] = {}
        for tier in multipliers.names():
            _known(tier, tier_codes, multipliers.at(tier), "tier")
            factors[tier] = multipliers.decimal(tier)
            if factors[tier] > MAX_MULTIPLIER:
                raise fail(multipliers.at(tier), f"must be at most {MAX_MULTIPLIER}")
        rule = EarnRule(
            index=index,
            line=_known(sec.text("line"), lines, sec.at("line"), "business line"),
            kind=ActivityKind(sec.choice("kind", _EARNING_KINDS)),
            fixed_points=sec.integer("fixed_points", maximum=10_000_000, default=0),
            fixed_growth=sec.integer("fixed_growth", maximum=10_000_000, default=0),
            min_amount_fen=sec.integer("min_amount_fen", default=0),
            max_points=sec.optional_integer("max_points"),
            max_growth=sec.optional_integer("max_growth"),
            exclude=sec.text_list("exclude"),
            multipliers=MappingProxyType(factors),
            **rates,
        )
        sec.finish()
        for rate in ("points_per_night", "growth_per_night"):
            if rates[rate] and rule.kind is not ActivityKind.STAY:
                raise fail(sec.at(rate), "only applies to kind 'stay' (nights are its quantity)")
        if not (any(rates.values()) or rule.fixed_points or rule.fixed_growth):
            raise fail(sec.path, "earns nothing: set a points_*/growth_* rate or fixed_points")
        key = (rule.line, rule.kind.value)
        if key in rules:
            first = rules[key].index
            raise fail(sec.path, f"repeats line/kind {key[0]}/{key[1]} of earn_rules[{first}]")
        rules[key] = rule
    return tuple(rules.values())


def _expiry(sec: Section) -> ExpiryPolicy:
    kind = ExpiryKind(sec.choice("policy", tuple(ExpiryKind)))
    for key, owner in (("days", ExpiryKind.DAYS), ("months", ExpiryKind.END_OF_MONTH)):
        if key in sec and kind is not owner:
            raise fail(sec.at(key), f"only applies when policy = {owner.value!r}")
    policy = ExpiryPolicy(
        kind=kind,
        days=sec.integer("days", minimum=1, maximum=3660) if kind is ExpiryKind.DAYS else 0,
        months=sec.integer("months", maximum=120) if kind is ExpiryKind.END_OF_MONTH else 0,
    )
    sec.finish()
    return policy


def _tier_policy(sec: Section) -> TierPolicy:
    policy = TierPolicy(
        evaluation_period=EvaluationPeriod(
            sec.choice("evaluation_period", tuple(EvaluationPeriod))
        ),
        downgrade=DowngradeRule(sec.choice("downgrade", tuple(DowngradeRule))),
    )
    sec.finish()
    return policy


def _benefits(
    root: Section, lines: Mapping[str, BusinessLine], tiers: tuple[Tier, ...]
) -> tuple[Benefit, ...]:
    tier_codes = {t.code: t for t in tiers}
    benefits: dict[str, Benefit] = {}
    for sec in root.sections("benefits", limit=MAX_BENEFITS):
        benefit = Benefit(
            code=_code(sec.text("code"), sec.at("code")),
            line=_known(sec.text("line"), lines, sec.at("line"), "business line"),
            min_tier=_known(sec.text("min_tier"), tier_codes, sec.at("min_tier"), "tier"),
            quota=sec.integer("quota", minimum=1, maximum=10_000),
            period=QuotaPeriod(sec.choice("period", tuple(QuotaPeriod))),
            description=sec.text("description", max_len=500),
        )
        sec.finish()
        if benefit.code in benefits:
            raise fail(sec.at("code"), f"benefit {benefit.code!r} is declared twice")
        benefits[benefit.code] = benefit
    return tuple(benefits.values())


def _settlement(sec: Section, lines: Mapping[str, BusinessLine]) -> Mapping[str, Decimal]:
    prices: dict[str, Decimal] = {}
    for code in sec.names():
        _known(code, lines, sec.at(code), "business line")
        prices[code] = sec.decimal(code)
    for code in lines:
        if code not in prices:
            raise fail(sec.at(code), "is required: every business line needs a settlement price")
    return MappingProxyType(prices)


def _agent(sec: Section) -> AgentPolicy:
    policy = AgentPolicy(
        daily_adjustment_cap_points=sec.integer(
            "daily_adjustment_cap_points", minimum=1, maximum=100_000_000
        ),
        max_single_adjustment_points=sec.integer(
            "max_single_adjustment_points", minimum=1, maximum=100_000_000
        ),
    )
    sec.finish()
    if policy.max_single_adjustment_points > policy.daily_adjustment_cap_points:
        raise fail(
            sec.at("max_single_adjustment_points"),
            f"must not exceed daily_adjustment_cap_points ({policy.daily_adjustment_cap_points})",
        )
    return policy
