"""The resolver: batch and incremental resolution over one in-memory graph state.

``Resolver.resolve_batch(records)`` builds the state in set-based passes (features, one dict-of-lists
block index, pairs block by block, one union-find pass). ``Resolver.resolve_one(record, state)``
adds one record to an existing state: it scores the record against its blocks, then re-clusters
only the connected component(s) its links touch, using the same ``build_clusters`` routine. Because
that routine's outcome on a component depends only on the component, and the model is frozen,
both paths give the same partition for the same records (tested by permutation).

Global limits are kept exact incrementally too: when a block grows past ``max_block_size`` the
pairs it alone produced are dropped, and when an identifier value becomes shared — held by more
records than its fan-out limit, or, for a guarded key such as the phone, by records that describe
different people — its holders are re-scored and re-clustered without it (and with it again when
it stops being shared) — exactly what batch would have decided seeing all records at once. A
value's shared status is a function of its holders only, so arrival order cannot change it.
A shared guarded value (a household's phone) joins nobody; its holders left in different clusters
are proposed for review, pair by pair, wherever the two records do not themselves contradict.

A record is identified by (source, source_key); sending it again replaces the older version (the
later ``observed_at`` wins, ties go to the later arrival), as batch does for duplicates.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hub.core.pii import KeyRing
from hub.core.records import SourceRecord
from identity.blocking import BlockIndex, BlockKeys, record_blocks
from identity.compare import (
    NULL,
    Comparator,
    accounts_differ,
    build_comparators,
    compare,
    persons_conflict,
)
from identity.config import FieldConfig, MatchingConfig, load_config
from identity.features import FeatureExtractor, Features, record_id
from identity.graph import (
    Explain,
    FieldComparison,
    KeyAttempt,
    Link,
    ReviewItem,
    ReviewReason,
    ScoreAttempt,
    build_clusters,
    name_comparer,
)
from identity.score import Model, probability, train_model
from identity.survivorship import GoldenRecord, build_golden

Edge = tuple[float, float]  # (score bits, score bits without weak fields)
# explain level of an identifier field whose value both records hold but that is shared
# (over its fan-out, or held by different people): no evidence either way
SHARED_LEVEL = "shared_value"


@dataclass
class ResolverState:
    """Everything the resolver knows; a later database store persists exactly these parts."""

    blocks: BlockIndex
    records: dict[str, SourceRecord] = field(default_factory=dict)
    features: dict[str, Features] = field(default_factory=dict)
    blocks_of: dict[str, BlockKeys] = field(default_factory=dict)
    comparators: tuple[Comparator, ...] = ()
    keys: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # strong key -> holders
    holders: dict[str, list[str]] = field(default_factory=dict)  # any identifier hash -> holders
    hot: set[str] = field(default_factory=set)  # hashes held by more records than their fan-out
    edges: dict[str, dict[str, Edge]] = field(default_factory=dict)  # score >= lower, both ways
    root: dict[str, str] = field(default_factory=dict)  # record -> smallest record id of cluster
    members: dict[str, set[str]] = field(default_factory=dict)
    links: dict[str, list[Link]] = field(default_factory=dict)  # by cluster root
    refused: dict[tuple[str, str], ReviewItem] = field(default_factory=dict)
    refused_of: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # rid -> keys
    pairs_compared: int = 0

    def clusters(self) -> list[frozenset[str]]:
        return sorted((frozenset(m) for m in self.members.values()), key=min)


@dataclass(frozen=True)
class Partition:
    clusters: tuple[frozenset[str], ...]  # sorted by smallest record id
    links: tuple[Link, ...]
    review: tuple[ReviewItem, ...]
    stats: dict[str, int]

    def as_sets(self) -> frozenset[frozenset[str]]:
        return frozenset(self.clusters)

    def cluster_of(self) -> dict[str, int]:
        return {rid: i for i, c in enumerate(self.clusters) for rid in c}


@dataclass(frozen=True)
class Decision:
    """What resolving one record did. ``before``/``after`` are the clusters it re-computed."""

    rid: str
    outcome: Literal["new", "joined", "merged", "regrouped", "stale"]
    cluster: frozenset[str]
    before: tuple[frozenset[str], ...]
    after: tuple[frozenset[str], ...]
    links: tuple[Link, ...]
    review: tuple[ReviewItem, ...]
    golden: tuple[GoldenRecord, ...]
    elapsed_ms: float


class Resolver:
    def __init__(
        self, *, keyring: KeyRing, config: MatchingConfig | None = None, model: Model | None = None
    ) -> None:
        self.config = config or (model.config if model is not None else load_config())
        self.keyring = keyring
        self.extractor = FeatureExtractor(config=self.config, keyring=keyring)
        self.comparators = build_comparators(self.config)
        self.model = model or Model.from_config(self.config)
        self._names = name_comparer(self.config)
        self._upper = self.model.upper_bits
        self._guarded = tuple(k for k, rule in self.config.keys_by_name.items() if rule.guard)
        self._lower = self.model.lower_bits

    # -- training -------------------------------------------------------------------------------
    def fit(self, records: Iterable[SourceRecord]) -> Resolver:
        """A resolver with m/u, prior and term frequencies trained on ``records``."""
        state = self._index(self._latest(records))
        patterns: dict[tuple[int, ...], int] = {}
        for a, b in state.blocks.pairs(state.blocks_of.__getitem__):
            vec = compare(state.comparators, state.features[a], state.features[b])
            patterns[vec] = patterns.get(vec, 0) + 1
        feats = list(state.features.values())
        model = train_model(self.model, self.comparators, feats, patterns)
        return Resolver(keyring=self.keyring, config=self.config, model=model)

    # -- batch ----------------------------------------------------------------------------------
    def new_state(self) -> ResolverState:
        state = ResolverState(blocks=BlockIndex(max_size=self.config.limits.max_block_size))
        state.comparators = build_comparators(self.config, state.hot)
        return state

    def _limit(self, kind: str) -> int:
        return self.config.keys_by_name[kind].fanout_limit

    def _hot(self, state: ResolverState, kind: str, h: str) -> bool:
        """Is this identifier value shared (over its fan-out, or held by different people)?"""
        holders = state.holders.get(h, ())
        if len(holders) > self._limit(kind):
            return True
        if len(holders) < 2 or not self.config.keys_by_name[kind].guard:
            return False
        feats = [state.features[r] for r in holders]
        for i, x in enumerate(feats):
            for y in feats[i + 1 :]:
                if accounts_differ(x, y) or persons_conflict(self._names, x, y):
                    return True
        return False

    def _refresh_hot(self, state: ResolverState, kind: str, h: str) -> bool:
        """Recompute one value's shared status; True when it changed."""
        hot = self._hot(state, kind, h)
        if hot == (h in state.hot):
            return False
        if hot:
            state.hot.add(h)
        else:
            state.hot.discard(h)
        return True

    def _hold(self, state: ResolverState, f: Features) -> list[str]:
        """Register f's identifier hashes; returns the hashes whose shared status changed."""
        changed = []
        for kind, digests in f.ids.items():
            for h in digests:
                state.holders.setdefault(h, []).append(f.rid)
                if self._refresh_hot(state, kind, h):
                    changed.append(h)
        for sk in f.strong:
            state.keys.setdefault(sk, []).append(f.rid)
        return changed

    def _latest(self, records: Iterable[SourceRecord]) -> list[SourceRecord]:
        latest: dict[str, SourceRecord] = {}
        for rec in records:
            rid = record_id(rec.source, rec.source_key)
            old = latest.get(rid)
            if old is None or rec.observed_at >= old.observed_at:
                latest[rid] = rec
        return list(latest.values())

    def _index(self, records: Sequence[SourceRecord]) -> ResolverState:
        state = self.new_state()
        rules = self.config.blocking_rules
        for rec in records:
            f = self.extractor.extract(rec)
            rid = f.rid
            state.records[rid] = rec
            state.features[rid] = f
            keys = record_blocks(f, rules)
            state.blocks_of[rid] = keys
            state.blocks.add(rid, keys)
            self._hold(state, f)
        return state

    def build_state(self, records: Iterable[SourceRecord]) -> ResolverState:
        # A batch allocates millions of long-lived, acyclic objects; the cyclic collector would
        # walk the whole growing heap again and again (a third of a million-record run).
        collecting = gc.isenabled()
        gc.disable()
        try:
            state = self._index(self._latest(records))
            feats = state.features
            for a, b in state.blocks.pairs(state.blocks_of.__getitem__):
                self._score_pair(state, feats[a], feats[b])
            rids = sorted(feats)
            self._apply(
                state, rids, self._key_attempts(state, rids), self._score_attempts(state, rids)
            )
        finally:
            if collecting:
                gc.enable()
        return state

    def resolve_batch(self, records: Iterable[SourceRecord]) -> Partition:
        return self.partition(self.build_state(records))

    # -- scoring and clustering (shared) --------------------------------------------------------
    def _score_pair(self, state: ResolverState, fa: Features, fb: Features) -> None:
        if fb.rid < fa.rid:
            fa, fb = fb, fa
        state.pairs_compared += 1
        vec = compare(state.comparators, fa, fb)
        total, nonweak = self.model.score(vec, fa)
        if total >= self._lower:
            edge = (total, nonweak)
            state.edges.setdefault(fa.rid, {})[fb.rid] = edge
            state.edges.setdefault(fb.rid, {})[fa.rid] = edge
        elif fb.rid in state.edges.get(fa.rid, {}):
            del state.edges[fa.rid][fb.rid], state.edges[fb.rid][fa.rid]

    def _rescore_holders(self, state: ResolverState, h: str, skip: str = "") -> set[str]:
        """A hash became shared or private: pairs among its holders weigh differently now."""
        holders = sorted(r for r in state.holders.get(h, ()) if r != skip)
        for i, x in enumerate(holders):
            for y in holders[i + 1 :]:
                if state.blocks.shares_valid_block(state.blocks_of[x], state.blocks_of[y]):
                    self._score_pair(state, state.features[x], state.features[y])
        return set(holders)

    def _merges(self, edge: Edge) -> bool:
        return edge[0] >= self._upper and edge[1] >= self._lower

    def _valid_key(self, state: ResolverState, sk: tuple[str, str], members: Sequence[str]) -> bool:
        return len(members) >= 2 and sk[1] not in state.hot

    def _key_attempts(self, state: ResolverState, rids: Iterable[str]) -> list[KeyAttempt]:
        out: list[KeyAttempt] = []
        seen: set[tuple[str, str]] = set()
        for rid in rids:
            for sk in state.features[rid].strong:
                if sk in seen:
                    continue
                seen.add(sk)
                members = state.keys[sk]
                if not self._valid_key(state, sk, members):
                    continue
                rule = self.config.keys_by_name[sk[0]]
                first = min(members)
                out.extend(
                    KeyAttempt(rule.rank, sk[0], sk[1], first, m, guarded=rule.guard)
                    for m in members
                    if m != first
                )
        return out

    def _score_attempts(self, state: ResolverState, rids: Iterable[str]) -> list[ScoreAttempt]:
        out = []
        for rid in rids:
            for other, edge in state.edges.get(rid, {}).items():
                if rid < other and self._merges(edge):
                    out.append(ScoreAttempt(edge[0], rid, other))
        return out

    def _apply(
        self,
        state: ResolverState,
        rids: list[str],
        keys: list[KeyAttempt],
        scores: list[ScoreAttempt],
    ) -> None:
        result = build_clusters(rids, state.features, keys, scores, config=self.config)
        for rid, root in result.root.items():
            state.root[rid] = root
            state.members.setdefault(root, set()).add(rid)
        for link in result.links:
            state.links.setdefault(result.root[link.a], []).append(link)
        for item in result.refused:
            key = (item.a, item.b)
            state.refused[key] = item
            state.refused_of.setdefault(item.a, set()).add(key)
            state.refused_of.setdefault(item.b, set()).add(key)

    # -- incremental ----------------------------------------------------------------------------
    def resolve_one(self, record: SourceRecord, state: ResolverState) -> Decision:
        """Resolve one record against ``state`` (updated in place); same partition as batch."""
        started = time.perf_counter()
        rid = record_id(record.source, record.source_key)
        seeds: set[str] = set()
        old = state.records.get(rid)
        if old is not None:
            if record.observed_at < old.observed_at:
                cluster = frozenset(state.members[state.root[rid]])
                return Decision(
                    rid,
                    "stale",
                    cluster,
                    (),
                    (),
                    (),
                    (),
                    (),
                    (time.perf_counter() - started) * 1000,
                )
            seeds |= self._detach(state, rid)
        f = self.extractor.extract(record)
        keys = record_blocks(f, self.config.blocking_rules)
        state.records[rid], state.features[rid], state.blocks_of[rid] = record, f, keys
        for key in state.blocks.add(rid, keys):
            seeds |= self._drop_block_pairs(state, key)
        for h in self._hold(state, f):
            seeds |= self._rescore_holders(state, h, skip=rid)
            seeds.update(state.holders[h])
        for other in state.blocks.candidates(keys):
            if other != rid:
                self._score_pair(state, f, state.features[other])
        seeds.add(rid)
        before, after = self._recluster(state, seeds)
        return self._decision(state, rid, before, after, started)

    def remove(self, rid: str, state: ResolverState) -> tuple[tuple[frozenset[str], ...], ...]:
        """Forget a record (deletion request): its component is re-clustered without it."""
        seeds = self._detach(state, rid)
        before, after = self._recluster(state, seeds)
        return before, after

    def _detach(self, state: ResolverState, rid: str) -> set[str]:
        seeds = set(state.members.get(state.root.get(rid, rid), ()))
        f = state.features.pop(rid)
        keys = state.blocks_of.pop(rid)
        del state.records[rid]
        for other in state.edges.pop(rid, {}):
            del state.edges[other][rid]
            seeds.add(other)
        for key in state.blocks.remove(rid, keys):
            seeds |= self._restore_block_pairs(state, key)
        for sk in f.strong:
            members = state.keys[sk]
            members.remove(rid)
            if not members:
                del state.keys[sk]
        for kind, digests in f.ids.items():
            for h in digests:
                holders = state.holders[h]
                holders.remove(rid)
                if self._refresh_hot(state, kind, h):
                    seeds |= self._rescore_holders(state, h)
                if not holders:
                    del state.holders[h]
        self._drop_clusters(state, seeds | {rid})
        state.root.pop(rid, None)
        seeds.discard(rid)
        return seeds

    def _drop_block_pairs(self, state: ResolverState, key: int) -> set[str]:
        """A block just grew too large: forget pairs that only it produced."""
        members = set(state.blocks.members[key])
        touched: set[str] = set()
        for x in members:
            for y in [y for y in state.edges.get(x, {}) if y in members and x < y]:
                if not state.blocks.shares_valid_block(state.blocks_of[x], state.blocks_of[y]):
                    del state.edges[x][y], state.edges[y][x]
                    touched.update((x, y))
        return touched

    def _restore_block_pairs(self, state: ResolverState, key: int) -> set[str]:
        """A block just became small enough again: score the pairs it now produces."""
        bucket = sorted(state.blocks.members[key])
        touched: set[str] = set()
        for i, x in enumerate(bucket):
            for y in bucket[i + 1 :]:
                if state.blocks.first_shared(state.blocks_of[x], state.blocks_of[y]) == key:
                    self._score_pair(state, state.features[x], state.features[y])
                    touched.update((x, y))
        return touched

    def _drop_clusters(self, state: ResolverState, rids: Iterable[str]) -> None:
        for root in {state.root[r] for r in rids if r in state.root}:
            for member in state.members.pop(root, ()):
                state.root.pop(member, None)
            state.links.pop(root, None)

    def _component(self, state: ResolverState, seeds: set[str]) -> set[str]:
        seen: set[str] = set()
        stack = [s for s in seeds if s in state.features]
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            stack.extend(state.members.get(state.root.get(x, ""), ()))
            for sk in state.features[x].strong:
                members = state.keys[sk]
                if self._valid_key(state, sk, members):
                    stack.extend(members)
            stack.extend(y for y, e in state.edges.get(x, {}).items() if self._merges(e))
        return seen

    def _recluster(
        self, state: ResolverState, seeds: set[str]
    ) -> tuple[tuple[frozenset[str], ...], tuple[frozenset[str], ...]]:
        comp = self._component(state, seeds)
        before = tuple(
            sorted(
                {frozenset(state.members[state.root[x]]) for x in comp if x in state.root}, key=min
            )
        )
        self._drop_clusters(state, comp)
        for rid in comp:
            for key in state.refused_of.pop(rid, ()):
                if state.refused.pop(key, None) is not None:
                    other = key[1] if key[0] == rid else key[0]
                    keys = state.refused_of.get(other)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del state.refused_of[other]
        rids = sorted(comp)
        self._apply(state, rids, self._key_attempts(state, rids), self._score_attempts(state, rids))
        after = tuple(sorted({frozenset(state.members[state.root[x]]) for x in comp}, key=min))
        return before, after

    def _decision(
        self,
        state: ResolverState,
        rid: str,
        before: tuple[frozenset[str], ...],
        after: tuple[frozenset[str], ...],
        started: float,
    ) -> Decision:
        root = state.root[rid]
        cluster = frozenset(state.members[root])
        old_with_members = [c for c in before if c & cluster]
        others_kept = all(c in after for c in before if not c & cluster)
        outcome: Literal["new", "joined", "merged", "regrouped", "stale"]
        if not others_kept:
            outcome = "regrouped"  # a record elsewhere in the component changed cluster too
        elif len(cluster) == 1:
            outcome = "new"
        else:
            outcome = "merged" if len(old_with_members) > 1 else "joined"
        links = tuple(link for link in state.links.get(root, ()) if rid in (link.a, link.b))
        review = tuple(self._review_items(state, cluster))
        golden = tuple(self.golden(state, c) for c in after)
        return Decision(
            rid,
            outcome,
            cluster,
            before,
            after,
            links,
            review,
            golden,
            (time.perf_counter() - started) * 1000,
        )

    # -- results --------------------------------------------------------------------------------
    def _review_items(
        self, state: ResolverState, scope: Iterable[str] | None = None
    ) -> list[ReviewItem]:
        rids = state.features.keys() if scope is None else scope
        root = state.root
        best: dict[tuple[str, str], ReviewItem] = {}

        def offer(item: ReviewItem) -> None:
            ra, rb = sorted((root[item.a], root[item.b]))
            cur = best.get((ra, rb))
            rank = (-(item.score_bits or 1e9), item.a, item.b)
            if cur is None or rank < (-(cur.score_bits or 1e9), cur.a, cur.b):
                best[(ra, rb)] = item

        wanted = set(rids) if scope is not None else None
        if wanted is None:
            refused = list(state.refused.values())
        else:
            keys = {k for rid in wanted for k in state.refused_of.get(rid, ())}
            refused = [state.refused[k] for k in keys]
        for item in refused:
            if root[item.a] != root[item.b]:
                offer(item)
        for a in rids:
            for b, edge in state.edges.get(a, {}).items():
                if root[a] == root[b] or (wanted is None and b < a):
                    continue
                x, y = (a, b) if a < b else (b, a)
                if (x, y) in state.refused:
                    continue
                # a merge-grade score left unmerged and unrefused was capped: weak evidence only
                weak = edge[0] >= self._upper
                reason = ReviewReason.WEAK_EVIDENCE if weak else ReviewReason.SCORE_BAND
                offer(ReviewItem(x, y, reason, "score", edge[0]))
        for key, item in self._shared_key_items(state, rids, wanted is None).items():
            best.setdefault(key, item)
        return sorted(best.values(), key=lambda i: (i.a, i.b))

    def _shared_key_items(
        self, state: ResolverState, rids: Iterable[str], whole: bool
    ) -> dict[tuple[str, str], ReviewItem]:
        """Holders of a shared guarded value (a household's phone) left in different clusters:
        each pair that does not itself describe two people is a proposal for customer service,
        one per pair of clusters (a pair already proposed for another reason keeps that one).
        Values over their fan-out identify nobody and are left out, so the work is bounded by
        the fan-out limits."""
        root, feats = state.root, state.features
        out: dict[tuple[str, str], ReviewItem] = {}
        for a in rids:
            fa = feats[a]
            for kind in self._guarded:
                for h in fa.ids.get(kind, ()):
                    if h not in state.hot:
                        continue
                    holders = state.holders[h]
                    if len(holders) > self._limit(kind):
                        continue
                    for b in holders:
                        if root[a] == root[b] or (whole and b < a):
                            continue
                        fb = feats[b]
                        if accounts_differ(fa, fb) or persons_conflict(self._names, fa, fb):
                            continue
                        x, y = (a, b) if a < b else (b, a)
                        pair = (root[x], root[y]) if root[x] < root[y] else (root[y], root[x])
                        cur = out.get(pair)
                        if cur is None or (x, y) < (cur.a, cur.b):
                            out[pair] = ReviewItem(
                                x, y, ReviewReason.SHARED_KEY, f"key:{kind}", None, "shared_value"
                            )
        return out

    def partition(self, state: ResolverState) -> Partition:
        links = tuple(link for root in sorted(state.links) for link in state.links[root])
        review = tuple(self._review_items(state))
        fanout = len(state.hot)
        stats = {
            "records": len(state.features),
            "clusters": len(state.members),
            "pairs_compared": state.pairs_compared,
            "edges": sum(len(v) for v in state.edges.values()) // 2,
            "links": len(links),
            "review_items": len(review),
            "blocks_oversized": state.blocks.oversized(),
            "keys_over_fanout": fanout,
            "placeholders_dropped": sum(f.placeholders for f in state.features.values()),
        }
        for reason in ReviewReason:
            stats[f"review_{reason.value}"] = sum(1 for r in review if r.reason is reason)
        return Partition(tuple(state.clusters()), links, review, stats)

    def explain(self, state: ResolverState, a: str, b: str, rule: str = "score") -> Explain:
        """The field comparisons behind a link or review item (recomputed from features)."""
        fa, fb = state.features[a], state.features[b]
        if fb.rid < fa.rid:
            fa, fb = fb, fa
        vec = compare(state.comparators, fa, fb)
        total, _ = self.model.score(vec, fa)
        comps = []
        for i, (fc, level) in enumerate(zip(self.config.fields, vec, strict=True)):
            if level == NULL:
                shared = fc.comparator == "identifier" and self._share_hot(state, fc, fa, fb)
                comps.append(FieldComparison(fc.name, SHARED_LEVEL if shared else "null", 0.0))
            else:
                comps.append(
                    FieldComparison(
                        fc.name, fc.levels[level].name, self.model.field_weight(i, level, fa)
                    )
                )
        return Explain(rule, total, probability(total), tuple(comps))

    @staticmethod
    def _share_hot(state: ResolverState, fc: FieldConfig, fa: Features, fb: Features) -> bool:
        """Do both records hold one shared value of this identifier field (which weighs
        nothing, so the comparison alone would read "not compared")?"""
        for kind in fc.params.get("kinds", ()):
            mine, theirs = fa.ids.get(kind), fb.ids.get(kind)
            if mine and theirs and any(h in state.hot for h in mine & theirs):
                return True
        return False

    def golden(self, state: ResolverState, cluster: Iterable[str]) -> GoldenRecord:
        return build_golden((state.records[r] for r in cluster), config=self.config)
