"""Fellegi–Sunter scoring: match weights from m/u, EM training, term-frequency adjustment.

A pair's score is ``log2(prior / (1 - prior)) + Σ log2(m / u)`` over its fields' agreement levels
(null levels weigh nothing), in bits. ``Model`` is frozen: batch and incremental resolution score
with the same parameters, which is what lets them agree on the partition. ``train_model`` fits it:

- u (how often a level happens between *different* people) from random record pairs;
- m by EM over the blocked candidate pairs, with u held fixed. EM estimates its own match rate
  among those pairs for the E-step, but the scoring prior stays the configured one: blocked pairs
  that share a phone or a name are mostly matches, so the estimate runs to its cap (0.5, i.e.
  0 bits) and every shared phone would merge on its own. The prior is a calibration of the
  thresholds, not something the data can tell apart from m;
- the configured m/u act as pseudo-counts (``model.prior_weight_pairs``) so a small or
  one-sided data set cannot drive a weight to infinity;
- term frequencies for ``tf = true`` fields: an exact match on a common value (王伟, SMITH) weighs
  ``log2(u_exact / tf(value))`` instead of ``log2(m / u_exact)``'s average, clipped both ways.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from identity.compare import NULL, Comparator, Vector, compare
from identity.config import TF_LEVELS, MatchingConfig
from identity.features import Features


def bits(p: float) -> float:
    return math.log2(p / (1.0 - p))


def probability(score_bits: float) -> float:
    if score_bits > 60:
        return 1.0
    odds: float = math.pow(2.0, score_bits)
    return odds / (1.0 + odds)


@dataclass(frozen=True)
class Model:
    """Frozen scoring parameters: per field and level m, u; the prior; term-frequency tables."""

    config: MatchingConfig
    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    prior: float
    tf: Mapping[int, Mapping[str, float]] = field(
        default_factory=dict
    )  # field index -> value -> freq
    tf_default: float = 0.0  # frequency assumed for a value not in the table
    weights: tuple[tuple[float, ...], ...] = field(init=False, default=())
    weak: tuple[bool, ...] = field(init=False, default=())
    tf_level: tuple[frozenset[int], ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        w = tuple(
            tuple(math.log2(mi / ui) for mi, ui in zip(ml, ul, strict=True))
            for ml, ul in zip(self.m, self.u, strict=True)
        )
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "weak", tuple(f.weak for f in self.config.fields))
        levels = tuple(
            frozenset(i for i, lvl in enumerate(f.levels) if f.tf and lvl.name in TF_LEVELS)
            for f in self.config.fields
        )
        object.__setattr__(self, "tf_level", levels)

    @classmethod
    def from_config(cls, config: MatchingConfig) -> Model:
        return cls(
            config=config,
            m=tuple(tuple(lvl.m for lvl in f.levels) for f in config.fields),
            u=tuple(tuple(lvl.u for lvl in f.levels) for f in config.fields),
            prior=config.model.prior,
        )

    @property
    def upper_bits(self) -> float:
        return bits(self.config.upper)

    @property
    def lower_bits(self) -> float:
        return bits(self.config.lower)

    def field_weight(self, i: int, level: int, a: Features) -> float:
        w = self.weights[i][level]
        if level in self.tf_level[i] and i in self.tf:
            value = a.tf_name  # the tf-enabled comparators key their values by the name key
            if value is not None:
                freq = self.tf[i].get(value, self.tf_default)
                if freq > 0:
                    cap = self.config.model.tf_max_adjust_bits
                    adj = math.log2(self.u[i][0] / freq)
                    w += max(-cap, min(cap, adj))
        return w

    def score(self, vector: Vector, a: Features) -> tuple[float, float]:
        """(total bits, bits without weak fields) for one comparison vector."""
        total = nonweak = bits(self.prior)
        for i, level in enumerate(vector):
            if level == NULL:
                continue
            w = self.field_weight(i, level, a)
            total += w
            if not self.weak[i]:
                nonweak += w
        return total, nonweak

    def describe(self) -> dict[str, object]:
        """Human-readable parameters, for logs and `explain` tooling (no PII)."""
        return {
            "prior": self.prior,
            "fields": {
                f.name: {
                    lvl.name: {
                        "m": round(self.m[i][j], 6),
                        "u": round(self.u[i][j], 8),
                        "bits": round(self.weights[i][j], 3),
                    }
                    for j, lvl in enumerate(f.levels)
                }
                for i, f in enumerate(self.config.fields)
            },
        }


def _smoothed(counts: Sequence[float], prior: Sequence[float], alpha: float) -> tuple[float, ...]:
    total = sum(counts)
    est = [
        (c + alpha * p) / (total + alpha) if total + alpha > 0 else p
        for c, p in zip(counts, prior, strict=True)
    ]
    floor = 1e-9
    est = [max(floor, e) for e in est]
    norm = sum(est)
    return tuple(e / norm for e in est)


def estimate_u(
    model: Model,
    comparators: Sequence[Comparator],
    features: Sequence[Features],
    pairs: int,
    seed: int,
) -> tuple[tuple[float, ...], ...]:
    """u from random pairs: almost all random pairs are different people."""
    n = len(features)
    if n < 2 or pairs == 0:
        return model.u
    rng = random.Random(seed)
    counts = [[0.0] * len(u) for u in model.u]
    if n * (n - 1) // 2 <= pairs:
        chosen: Iterable[tuple[int, int]] = ((i, j) for i in range(n) for j in range(i + 1, n))
    else:
        chosen = ((rng.randrange(n), rng.randrange(n)) for _ in range(pairs))
    for i, j in chosen:
        if i == j:
            continue
        for k, level in enumerate(compare(comparators, features[i], features[j])):
            if level != NULL:
                counts[k][level] += 1
    alpha = float(model.config.model.prior_weight_pairs)
    return tuple(_smoothed(c, u0, alpha) for c, u0 in zip(counts, model.u, strict=True))


def em_m(
    model: Model, patterns: Mapping[Vector, int]
) -> tuple[tuple[tuple[float, ...], ...], float]:
    """EM over pattern counts of blocked pairs, u fixed: returns (m, prior)."""
    cfg = model.config.model
    m = [list(x) for x in model.m]
    prior = model.prior
    alpha = float(cfg.prior_weight_pairs)
    items = list(patterns.items())
    total = sum(c for _, c in items)
    if total == 0:
        return model.m, model.prior
    for _ in range(cfg.em_max_iterations):
        acc = [[0.0] * len(x) for x in m]
        matched = 0.0
        for vec, count in items:
            lm, lu = math.log(prior), math.log(1.0 - prior)
            for i, level in enumerate(vec):
                if level != NULL:
                    lm += math.log(m[i][level])
                    lu += math.log(model.u[i][level])
            p = 1.0 / (1.0 + math.exp(min(700.0, lu - lm)))
            w = p * count
            matched += w
            for i, level in enumerate(vec):
                if level != NULL:
                    acc[i][level] += w
        new_m = [list(_smoothed(a, m0, alpha)) for a, m0 in zip(acc, model.m, strict=True)]
        new_prior = min(0.5, max(1e-6, matched / total))
        delta = max(
            abs(x - y)
            for row, old in zip(new_m, m, strict=True)
            for x, y in zip(row, old, strict=True)
        )
        m, prior = new_m, new_prior
        if delta < cfg.em_tolerance:
            break
    return tuple(tuple(x) for x in m), prior


def term_frequencies(
    model: Model, features: Sequence[Features]
) -> tuple[dict[int, dict[str, float]], float]:
    n = len(features)
    idx = [i for i, f in enumerate(model.config.fields) if f.tf]
    if not idx or n == 0:
        return {}, 0.0
    counts = Counter(f.tf_name for f in features if f.tf_name is not None)
    # Values seen once are left out to save memory; they, and unseen values, count as seen twice.
    table = {v: c / n for v, c in counts.items() if c >= 2}
    return dict.fromkeys(idx, table), 2.0 / n


def train_model(
    model: Model,
    comparators: Sequence[Comparator],
    features: Sequence[Features],
    patterns: Mapping[Vector, int],
) -> Model:
    cfg = model.config.model
    u = estimate_u(model, comparators, features, cfg.u_sample_pairs, cfg.random_seed)
    with_u = replace(model, u=u)
    m, _blocked_rate = em_m(with_u, patterns)
    tf, tf_default = term_frequencies(model, features)
    return replace(with_u, m=m, tf=tf, tf_default=tf_default)
