"""Clusters from links, with the merge protections; links and review items that explain them.

``build_clusters`` is the one clustering routine, used by batch and incremental resolution alike.
It runs union-find over merge attempts in a fixed total order that depends only on the attempts
themselves — deterministic key joins first (by kind, key, record id), then scored pairs by score
descending — so running it on one connected component gives exactly what running it on the whole
graph gives for that component. That is what makes incremental resolution equal batch.

A merge attempt is refused (and becomes a review item) when it would
- join clusters holding conflicting strong keys (two ID documents of one type, two unionids of
  one scope, two phones both verified within the recent window),
- make a cluster larger than ``limits.max_cluster_size``,
- join two clusters both at least ``limits.bridge_cluster_size`` big (a bridging record),
- join, through a guarded key (a phone families share) or a score, clusters whose people conflict
  (birthdays that differ, or names that only share a surname). A guarded value whose holders already
  describe different people is treated as shared by the resolver (no join, no evidence), so an
  account holding only that phone is not handed to whichever family member came first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from identity.compare import NameComparer, persons_conflict
from identity.config import MatchingConfig
from identity.features import Features

_DAY_S = 86_400.0


class ReviewReason(StrEnum):
    SCORE_BAND = "score_between_thresholds"
    WEAK_EVIDENCE = "weak_evidence_only"
    CONFLICT = "conflicting_strong_keys"
    MAX_SIZE = "max_cluster_size"
    BRIDGE = "bridges_large_clusters"
    DIFFERENT_PEOPLE = "shared_key_different_people"
    SHARED_KEY = "shared_key_only_link"


@dataclass(frozen=True, slots=True)
class FieldComparison:
    field: str
    level: str  # agreement level name, or "null" when a side lacks the value
    weight_bits: float


@dataclass(frozen=True, slots=True)
class Explain:
    """Why two records are linked (or proposed): the rule or score and the field comparisons."""

    rule: str  # "key:<kind>" for a deterministic join, "score" for a probabilistic one
    score_bits: float | None
    probability: float | None
    comparisons: tuple[FieldComparison, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "score_bits": None if self.score_bits is None else round(self.score_bits, 3),
            "probability": None if self.probability is None else round(self.probability, 6),
            "comparisons": [
                {"field": c.field, "level": c.level, "weight_bits": round(c.weight_bits, 3)}
                for c in self.comparisons
            ],
        }


@dataclass(frozen=True, slots=True)
class Link:
    """A link that holds a cluster together. Compact: ``Resolver.explain`` expands it."""

    a: str
    b: str
    rule: str  # "key:<kind>" or "score"
    score_bits: float | None = None


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A proposed merge for customer service: two records whose clusters were kept apart."""

    a: str
    b: str
    reason: ReviewReason
    rule: str
    score_bits: float | None = None
    detail: str = ""  # e.g. the conflicting key kind; never a value


@dataclass(frozen=True, slots=True)
class KeyAttempt:
    rank: int
    kind: str
    key: str
    a: str
    b: str
    guarded: bool = False  # refuse when the two clusters' people conflict


@dataclass(frozen=True, slots=True)
class ScoreAttempt:
    score_bits: float
    a: str
    b: str


@dataclass
class ClusterResult:
    root: dict[str, str]  # record id -> representative (smallest record id of its cluster)
    links: list[Link] = field(default_factory=list)
    refused: list[ReviewItem] = field(default_factory=list)


class _Union:
    def __init__(
        self, rids: Iterable[str], features: Mapping[str, Features], config: MatchingConfig
    ) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}
        self.conf: dict[str, dict[str, dict[str, float]]] = {}
        self.people: dict[str, list[Features]] = {}  # root -> members with a name or birthday
        self.config = config
        self.names = name_comparer(config)
        for rid in rids:
            self.parent[rid] = rid
            self.size[rid] = 1
            f = features[rid]
            if f.name_keys or f.birth is not None:
                self.people[rid] = [f]
            groups: dict[str, dict[str, float]] = {}
            for group, digest, ts in features[rid].conflicts:
                slot = groups.setdefault(group, {})
                slot[digest] = max(ts, slot.get(digest, ts))
            self.conf[rid] = groups

    def find(self, x: str) -> str:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def _conflict(self, ra: str, rb: str) -> str | None:
        ca, cb = self.conf[ra], self.conf[rb]
        if not ca or not cb:
            return None
        window = self.config.limits.recent_verification_days * _DAY_S
        for group in ca.keys() & cb.keys():
            va, vb = ca[group], cb[group]
            kind = group.split("@", 1)[0].split(":", 1)[0]
            if self.config.keys_by_name[kind].conflict == "recent":
                latest = max(max(va.values()), max(vb.values()))
                va = {h: t for h, t in va.items() if t >= latest - window}
                vb = {h: t for h, t in vb.items() if t >= latest - window}
                if not va or not vb:
                    continue
            if va.keys().isdisjoint(vb.keys()):
                return group.split("@", 1)[0]
        return None

    def different_people(self, ra: str, rb: str) -> bool:
        pa, pb = self.people.get(ra, ()), self.people.get(rb, ())
        return any(persons_conflict(self.names, x, y) for x in pa for y in pb)

    def refusal(
        self, ra: str, rb: str, guarded: str | None = None
    ) -> tuple[ReviewReason, str] | None:
        limits = self.config.limits
        sa, sb = self.size[ra], self.size[rb]
        conflict = self._conflict(ra, rb)
        if conflict is not None:
            return ReviewReason.CONFLICT, conflict
        if guarded is not None and self.different_people(ra, rb):
            return ReviewReason.DIFFERENT_PEOPLE, guarded
        if sa + sb > limits.max_cluster_size:
            return ReviewReason.MAX_SIZE, f"{sa}+{sb}>{limits.max_cluster_size}"
        if sa >= limits.bridge_cluster_size and sb >= limits.bridge_cluster_size:
            return ReviewReason.BRIDGE, f"{sa}&{sb}"
        return None

    def union(self, ra: str, rb: str) -> None:
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size.pop(rb)
        moved = self.people.pop(rb, None)
        if moved:
            self.people.setdefault(ra, []).extend(moved)
        ca, cb = self.conf[ra], self.conf.pop(rb)
        for group, values in cb.items():
            slot = ca.setdefault(group, {})
            for digest, ts in values.items():
                slot[digest] = max(ts, slot.get(digest, ts))


def name_comparer(config: MatchingConfig) -> NameComparer:
    for fc in config.fields:
        if fc.comparator == "name":
            return NameComparer(
                float(fc.params.get("fuzzy_high", 0.92)), float(fc.params.get("fuzzy_low", 0.82))
            )
    return NameComparer(0.92, 0.82)


def build_clusters(
    rids: Iterable[str],
    features: Mapping[str, Features],
    key_attempts: Iterable[KeyAttempt],
    score_attempts: Iterable[ScoreAttempt],
    *,
    config: MatchingConfig,
    on_refused: Callable[[ReviewItem], None] | None = None,
) -> ClusterResult:
    """Union-find over the attempts in their canonical order, applying the protections."""
    uf = _Union(rids, features, config)
    result = ClusterResult(root={})
    ordered_keys = sorted(key_attempts, key=lambda k: (k.rank, k.key, k.a, k.b))
    ordered_scores = sorted(score_attempts, key=lambda s: (-s.score_bits, s.a, s.b))
    attempts: list[tuple[str, str, str, float | None, bool]] = [
        (k.a, k.b, f"key:{k.kind}", None, k.guarded) for k in ordered_keys
    ]
    # a score is never more sure than a shared phone: the same check applies to it
    attempts.extend((s.a, s.b, "score", s.score_bits, True) for s in ordered_scores)
    refused = []
    for a, b, rule, score, guarded in attempts:
        ra, rb = uf.find(a), uf.find(b)
        if ra == rb:
            continue
        why = uf.refusal(ra, rb, rule.removeprefix("key:") if guarded else None)
        if why is not None:
            refused.append(ReviewItem(a, b, why[0], rule, score, why[1]))
            continue
        uf.union(ra, rb)
        result.links.append(Link(a, b, rule, score))
    result.root = {rid: uf.find(rid) for rid in uf.parent}
    root = result.root
    result.refused = [r for r in refused if root[r.a] != root[r.b]]
    if on_refused is not None:
        for item in result.refused:
            on_refused(item)
    return result
