"""Matching configuration: one TOML file holds every rule the resolver follows.

``load_config(path=None)`` reads ``default_matching.toml`` (shipped with the package, documented
line by line) or the given file, validates it and returns a frozen ``MatchingConfig``. Every
problem is a ``ConfigError`` naming the TOML path (``fields.name.levels.exact.m``) and what a
valid value looks like, so an operator can fix the file without reading this code.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hub.core.errors import ConfigError
from hub.core.records import IdentifierKind

STRENGTHS = ("strong", "medium", "weak", "none")
CONFLICT_MODES = ("none", "any", "recent")

#: Levels each comparator emits, most similar first; the last one is "they differ".
COMPARATOR_LEVELS: Mapping[str, tuple[str, ...]] = {
    "name": ("exact", "pinyin_equal", "fuzzy_high", "fuzzy_low", "different"),
    "date": ("exact", "partial", "same_year", "different"),
    "identifier": ("exact", "different"),
    "address": ("district", "city", "province", "different"),
    "postcode": ("exact", "different"),
    "text": ("exact", "fuzzy_high", "fuzzy_low", "different"),
    "gender": ("exact", "different"),
    "phone_mask": ("exact", "different"),
    "name_masked": ("exact", "different"),
}
#: Levels whose weight the term-frequency table may adjust.
TF_LEVELS = frozenset({"exact", "pinyin_equal"})

BLOCKING_FEATURES = frozenset(
    {
        "key",
        "name_key",
        "name_initial",
        "surname_key",
        "birthdate",
        "birth_year",
        "birth_md",
        "city",
        "district",
        "postcode",
        "phone_mask",
        "name_masked",
    }
)
TEXT_FEATURES = frozenset({"street", "city", "district", "province", "postcode"})


@dataclass(frozen=True, slots=True)
class KeyRule:
    kind: IdentifierKind
    strength: str
    unverified: str
    scoped: bool
    conflict: str
    fanout_limit: int
    rank: int  # position in the [keys] table: deterministic joins are tried in this order
    guard: bool = False  # holders that describe different people (name, birthday) never join
    one_per_person: bool = False  # two values in one scope are two people (for guarded keys)

    def strength_of(self, *, verified: bool) -> str:
        return self.strength if verified else self.unverified


@dataclass(frozen=True, slots=True)
class Level:
    name: str
    m: float
    u: float


@dataclass(frozen=True, slots=True)
class FieldConfig:
    name: str
    comparator: str
    levels: tuple[Level, ...]
    weak: bool
    tf: bool
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Limits:
    max_cluster_size: int
    bridge_cluster_size: int
    recent_verification_days: int
    max_block_size: int
    phone_mask_styles: tuple[tuple[int, int], ...]
    mask_block_digits: int = 6


@dataclass(frozen=True, slots=True)
class ModelConfig:
    prior: float
    em_max_iterations: int
    em_tolerance: float
    u_sample_pairs: int
    prior_weight_pairs: int
    tf_max_adjust_bits: float
    random_seed: int


@dataclass(frozen=True, slots=True)
class MatchingConfig:
    keys: Mapping[IdentifierKind, KeyRule]
    placeholder_values: frozenset[str]
    placeholder_patterns: tuple[re.Pattern[str], ...]
    placeholder_names: frozenset[str]
    limits: Limits
    blocking_rules: tuple[tuple[str, ...], ...]
    upper: float
    lower: float
    model: ModelConfig
    fields: tuple[FieldConfig, ...]
    source_priority: tuple[str, ...]
    keys_by_name: Mapping[str, KeyRule]

    def key_rule(self, kind: IdentifierKind) -> KeyRule:
        return self.keys[kind]

    def is_placeholder(self, value: str) -> bool:
        if value.lower() in self.placeholder_values:
            return True
        return any(p.search(value) for p in self.placeholder_patterns)


class _Reader:
    """Typed access into the parsed TOML that reports the full path of anything wrong."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self.data = data
        self.path = path

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def sub(self, key: str, *, required: bool = True) -> _Reader:
        value = self.data.get(key, None if required else {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self._where(key)}: must be a table")
        return _Reader(value, self._where(key))

    def get(
        self,
        key: str,
        kind: type,
        default: Any = ...,
        *,
        low: float | None = None,
        high: float | None = None,
    ) -> Any:
        if key not in self.data:
            if default is ...:
                raise ConfigError(f"{self._where(key)}: is required")
            return default
        value = self.data[key]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(f"{self._where(key)}: must be {kind.__name__}, got {value!r}")
        if low is not None and value < low:
            raise ConfigError(f"{self._where(key)}: must be at least {low}, got {value!r}")
        if high is not None and value > high:
            raise ConfigError(f"{self._where(key)}: must be at most {high}, got {value!r}")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in options:
            raise ConfigError(
                f"{self._where(key)}: must be one of {', '.join(options)}, got {value!r}"
            )
        return str(value)

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self._where(key)}: must be a list of strings")
        return tuple(value)

    def unknown(self, allowed: set[str]) -> None:
        extra = sorted(set(self.data) - allowed)
        if extra:
            raise ConfigError(f"{self.path or 'config'}: unknown setting(s) {', '.join(extra)}")


def _keys(root: _Reader) -> dict[IdentifierKind, KeyRule]:
    section = root.sub("keys")
    valid = {k.value for k in IdentifierKind}
    for name in section.data:
        if name not in valid:
            raise ConfigError(
                f"keys.{name}: not an identifier kind (one of {', '.join(sorted(valid))})"
            )
    rules = {}
    listed = list(section.data)
    order = {name: i for i, name in enumerate(listed)}
    for kind in IdentifierKind:
        r = section.sub(kind.value, required=False)
        r.unknown(
            {
                "strength",
                "unverified",
                "scoped",
                "conflict",
                "fanout_limit",
                "guard",
                "one_per_person",
            }
        )
        strength = r.choice("strength", STRENGTHS, "none")
        rules[kind] = KeyRule(
            kind=kind,
            strength=strength,
            unverified=r.choice("unverified", STRENGTHS, strength),
            scoped=r.get("scoped", bool, False),
            conflict=r.choice("conflict", CONFLICT_MODES, "none"),
            fanout_limit=r.get("fanout_limit", int, 3, low=1, high=10_000),
            rank=order.get(kind.value, len(listed)),
            guard=r.get("guard", bool, False),
            one_per_person=r.get("one_per_person", bool, False),
        )
    if rules[IdentifierKind.PHONE_MASKED].strength == "strong":
        raise ConfigError("keys.phone_masked.strength: a masked phone can never be a strong key")
    return rules


def _field(name: str, r: _Reader) -> FieldConfig:
    r.unknown({"comparator", "levels", "weak", "tf", "params"})
    comparator = r.choice("comparator", tuple(COMPARATOR_LEVELS))
    levels_r = r.sub("levels")
    expected = COMPARATOR_LEVELS[comparator]
    missing = [lvl for lvl in expected if lvl not in levels_r.data]
    extra = [lvl for lvl in levels_r.data if lvl not in expected]
    if missing or extra:
        raise ConfigError(
            f"fields.{name}.levels: comparator {comparator!r} needs exactly {', '.join(expected)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(extra)}" if extra else "")
        )
    levels = []
    for lvl in expected:
        lr = levels_r.sub(lvl)
        lr.unknown({"m", "u"})
        levels.append(
            Level(
                lvl, lr.get("m", float, low=1e-9, high=1.0), lr.get("u", float, low=1e-12, high=1.0)
            )
        )
    params = dict(r.sub("params", required=False).data)
    if comparator == "identifier":
        kinds = r.sub("params").strings("kinds")
        valid = {k.value for k in IdentifierKind}
        bad = [k for k in kinds if k not in valid]
        if bad or not kinds:
            raise ConfigError(
                f"fields.{name}.params.kinds: unknown identifier kind(s) {bad or '(empty)'}"
            )
    if comparator == "text" and params.get("feature") not in TEXT_FEATURES:
        raise ConfigError(
            f"fields.{name}.params.feature: must be one of {', '.join(sorted(TEXT_FEATURES))}"
        )
    for p in ("fuzzy_high", "fuzzy_low"):
        if p in params:
            r.sub("params").get(p, float, low=0.0, high=1.0)
    tf = r.get("tf", bool, False)
    if tf and comparator not in ("name", "text"):
        raise ConfigError(
            f"fields.{name}.tf: term-frequency adjustment needs a name or text comparator"
        )
    return FieldConfig(name, comparator, tuple(levels), r.get("weak", bool, False), tf, params)


def parse_config(data: Mapping[str, Any]) -> MatchingConfig:  # noqa: C901 - one flat validation pass
    """Validate a parsed TOML document (see ``default_matching.toml`` for every setting)."""
    root = _Reader(data, "")
    root.unknown(
        {
            "version",
            "keys",
            "placeholders",
            "limits",
            "blocking",
            "thresholds",
            "model",
            "fields",
            "survivorship",
        }
    )
    if root.get("version", int, 1) != 1:
        raise ConfigError("version: only version 1 is understood")
    ph = root.sub("placeholders", required=False)
    ph.unknown({"values", "patterns", "names"})
    patterns = []
    for i, text in enumerate(ph.strings("patterns", [])):
        try:
            patterns.append(re.compile(text))
        except re.error as exc:
            raise ConfigError(
                f"placeholders.patterns[{i}]: not a regular expression ({exc})"
            ) from None
    lim = root.sub("limits")
    lim.unknown(
        {
            "max_cluster_size",
            "bridge_cluster_size",
            "recent_verification_days",
            "max_block_size",
            "phone_mask_styles",
            "mask_block_digits",
        }
    )
    styles = lim.get("phone_mask_styles", list, [[3, 4], [2, 2]])
    if not all(
        isinstance(s, list) and len(s) == 2 and all(isinstance(n, int) and 0 <= n <= 7 for n in s)
        for s in styles
    ):
        raise ConfigError(
            "limits.phone_mask_styles: must be a list of [leading, trailing] digit counts (0-7)"
        )
    limits = Limits(
        max_cluster_size=lim.get("max_cluster_size", int, low=2, high=100_000),
        bridge_cluster_size=lim.get("bridge_cluster_size", int, low=2, high=100_000),
        recent_verification_days=lim.get("recent_verification_days", int, 365, low=1),
        max_block_size=lim.get("max_block_size", int, low=2, high=100_000),
        phone_mask_styles=tuple((a, b) for a, b in styles),
        mask_block_digits=lim.get("mask_block_digits", int, 6, low=0, high=15),
    )
    blk = root.sub("blocking")
    blk.unknown({"rules"})
    rules_raw = blk.get("rules", list)
    rules: list[tuple[str, ...]] = []
    for i, rule in enumerate(rules_raw):
        if not isinstance(rule, list) or not rule or not all(isinstance(f, str) for f in rule):
            raise ConfigError(f"blocking.rules[{i}]: must be a non-empty list of feature names")
        bad = [f for f in rule if f not in BLOCKING_FEATURES]
        if bad:
            raise ConfigError(
                f"blocking.rules[{i}]: unknown feature(s) {', '.join(bad)} "
                f"(one of {', '.join(sorted(BLOCKING_FEATURES))})"
            )
        rules.append(tuple(rule))
    th = root.sub("thresholds")
    th.unknown({"upper", "lower"})
    upper = th.get("upper", float, low=0.0, high=1.0)
    lower = th.get("lower", float, low=0.0, high=1.0)
    if not 0.0 < lower < upper < 1.0:
        raise ConfigError(
            f"thresholds: need 0 < lower < upper < 1, got lower={lower} upper={upper}"
        )
    mo = root.sub("model")
    mo.unknown(
        {
            "prior",
            "em_max_iterations",
            "em_tolerance",
            "u_sample_pairs",
            "prior_weight_pairs",
            "tf_max_adjust_bits",
            "random_seed",
        }
    )
    model = ModelConfig(
        prior=mo.get("prior", float, low=1e-9, high=0.5),
        em_max_iterations=mo.get("em_max_iterations", int, 25, low=0, high=1000),
        em_tolerance=mo.get("em_tolerance", float, 1e-4, low=0.0),
        u_sample_pairs=mo.get("u_sample_pairs", int, 100_000, low=0, high=100_000_000),
        prior_weight_pairs=mo.get("prior_weight_pairs", int, 200, low=0),
        tf_max_adjust_bits=mo.get("tf_max_adjust_bits", float, 6.0, low=0.0, high=30.0),
        random_seed=mo.get("random_seed", int, 1),
    )
    fields_r = root.sub("fields")
    fields = tuple(_field(name, fields_r.sub(name)) for name in fields_r.data)
    if not fields:
        raise ConfigError("fields: at least one field comparison is required")
    sv = root.sub("survivorship", required=False)
    sv.unknown({"source_priority"})
    keys = _keys(root)
    return MatchingConfig(
        keys=keys,
        keys_by_name={k.value: v for k, v in keys.items()},
        placeholder_values=frozenset(v.lower() for v in ph.strings("values", [])),
        placeholder_patterns=tuple(patterns),
        placeholder_names=frozenset(v.lower() for v in ph.strings("names", [])),
        limits=limits,
        blocking_rules=tuple(rules),
        upper=upper,
        lower=lower,
        model=model,
        fields=fields,
        source_priority=sv.strings("source_priority", []),
    )


def load_config(path: Path | str | None = None) -> MatchingConfig:
    """The shipped default, or the TOML file at ``path``."""
    if path is None:
        text = resources.files("identity").joinpath("default_matching.toml").read_text("utf-8")
        where = "default_matching.toml"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read matching config {str(path)!r}: {exc.strerror}"
            ) from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    return parse_config(data)
