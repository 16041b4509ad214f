"""Identity resolution against the database: incremental per ingest batch, or the whole table.

Incremental (``IdentityHooks.batch_landed``, inside the batch's transaction):

1. store the lookup keys of the new/changed records (``source_block``) and note which blocking
   keys and identifier hashes changed count;
2. the records that can be affected: the changed ones, every holder of a key that is (or was)
   within its size / fan-out limit, grown to whole members, whole engine clusters and clusters a
   refused merge ties to them (``identity.store.closure``);
3. resolve those records with the engine in one set-based pass, with every key that is over its
   limit in the whole table marked over its limit locally too (``_Bounded``): the engine's
   decision on a component depends only on the component and those limits, so this gives
   exactly the partition a batch run over everything gives (tested);
4. settle: agent pins applied, stable member ids (``assign_member_ids``), and the difference to
   the stored partition written as members, links, review items, golden records and events.

``resolve_all`` does step 3 over every live record at once and settles the same way.

Agents' decisions win over the engine: a record with ``member_pinned`` keeps its member; an
unpinned record the engine clusters with pinned ones joins the member holding most of them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.records import SourceRecord
from hub.flows.ingest import LandedBatch
from identity import store
from identity.blocking import _FEATURE as BLOCK_FEATURES  # see Engine.block_values
from identity.blocking import record_blocks
from identity.config import MatchingConfig, load_config
from identity.features import FeatureExtractor, Features, record_id
from identity.member_ids import assign_member_ids
from identity.resolver import Resolver, ResolverState
from identity.survivorship import build_golden

log = logging.getLogger(__name__)

PHANTOM = "\x00outside"  # stands for records outside the loaded component in a key's count
_PLACEHOLDER = 1 << 60  # assign_member_ids issues ids from here; mapped to real member ids


# -- the loyalty seam ----------------------------------------------------------------------------


class LoyaltyFollow(Protocol):
    async def reattribute(self, *, session: AsyncSession, source_record_ids: list[int]) -> None: ...

    async def follow_merge(
        self, *, session: AsyncSession, absorbed: int, survivor: int
    ) -> None: ...


class NoLoyalty:
    async def reattribute(self, *, session: AsyncSession, source_record_ids: list[int]) -> None:
        return None

    async def follow_merge(self, *, session: AsyncSession, absorbed: int, survivor: int) -> None:
        return None


class LedgerFollow:
    """Points follow the partition: ``hub.loyalty.attribution`` under the configured program."""

    def __init__(self) -> None:
        from hub.loyalty.program import configured_program

        self.program = configured_program()

    async def reattribute(self, *, session: AsyncSession, source_record_ids: list[int]) -> None:
        from hub.loyalty.attribution import reattribute

        if source_record_ids:
            await reattribute(
                session=session, program=self.program, source_record_ids=source_record_ids
            )

    async def follow_merge(self, *, session: AsyncSession, absorbed: int, survivor: int) -> None:
        from hub.loyalty.attribution import follow_merge

        await follow_merge(
            session=session, program=self.program, absorbed=absorbed, survivor=survivor
        )


def loyalty_follow() -> LoyaltyFollow:
    """The ledger's re-attribution when ``hub.loyalty.attribution`` is there, else nothing."""
    try:
        import hub.loyalty.attribution  # noqa: F401
    except ImportError:  # pragma: no cover - the ledger ships with the hub
        return NoLoyalty()
    return LedgerFollow()


# -- the engine over stored records --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordKeys:
    blocks: Mapping[int, str]  # the engine's block key -> the stored (keyed, stable) one
    holders: Mapping[str, str]  # identifier hash -> kind (counted against the kind's fan-out)
    stored: frozenset[str]  # everything written to source_block


class _OncePerRecord(FeatureExtractor):
    """Features extracted once per record object: a resolution step reads a record's features
    for its stored keys, then the resolver indexes the same object (it used to extract twice or
    three times: a third of an import's identity time). Holding the record in the memo keeps
    its ``id`` from being reused. ``forget`` ends a step; an engine that keeps records across
    steps (``Engine(keep_records=True)``) keeps their features too, up to ``limit`` (a batch
    run's single step over the whole table is not bounded: it extracts every record once)."""

    def __init__(self, *, config: MatchingConfig, keyring: KeyRing) -> None:
        super().__init__(config=config, keyring=keyring)
        self._seen: dict[int, tuple[SourceRecord, Features]] = {}
        self.limit: int | None = None

    def extract(self, record: SourceRecord) -> Features:
        hit = self._seen.get(id(record))
        if hit is not None and hit[0] is record:
            return hit[1]
        found = super().extract(record)
        if self.limit is not None and len(self._seen) >= self.limit:
            self._seen = {}
        self._seen[id(record)] = (record, found)
        return found

    def forget(self) -> None:
        self._seen = {}


# Records (with their features and keys) an import's engine keeps between batches; about 3 kB
# each with their features and keys (+180 MB for 63,262 at 200,000 rows), so ~150 MB when
# full. Emptied when full.
KEPT_LIMIT = store.RECORD_CACHE_LIMIT


class _Bounded(Resolver):
    """A resolver whose fresh state already counts keys as over their limit when the whole
    table holds more records for them than the component being resolved does."""

    outside_blocks: frozenset[int] = frozenset()
    outside_hot: Mapping[str, int] = {}

    def __init__(self, *, keyring: KeyRing, config: MatchingConfig) -> None:
        super().__init__(keyring=keyring, config=config)
        self.extractor: _OncePerRecord = _OncePerRecord(config=self.config, keyring=keyring)

    def new_state(self) -> ResolverState:
        state = super().new_state()
        # One more than the limit: the engine's "just crossed" checks (== limit + 1 after an
        # append) never fire for these, so no pair among outsiders is ever looked up.
        for key in self.outside_blocks:
            state.blocks.members[key] = [PHANTOM] * (self.config.limits.max_block_size + 1)
        for digest, limit in self.outside_hot.items():
            state.holders[digest] = [PHANTOM] * (limit + 1)
            state.hot.add(digest)
        return state


class Engine:
    """``keep_records``: decoded records, their features and keys are kept from one resolution
    step to the next (an import's batches, which meet the same stored records again and
    again); for an engine that lives as long as one import or call."""

    def __init__(
        self, *, keyring: KeyRing, config: MatchingConfig | None = None, keep_records: bool = False
    ) -> None:
        self.keyring = keyring
        self.config = config or load_config()
        self.resolver = _Bounded(keyring=keyring, config=self.config)
        self._block_keys: dict[tuple[Any, ...], str] = {}
        self.records: store.RecordCache | None = {} if keep_records else None
        self._keys: dict[int, tuple[SourceRecord, RecordKeys]] = {}  # only when kept
        if keep_records:
            self.resolver.extractor.limit = KEPT_LIMIT

    def end_step(self) -> None:
        """One resolution step is over: what it extracted goes, unless records are kept."""
        if self.records is None:
            self.resolver.extractor.forget()

    def block_values(self, f: Features) -> list[tuple[Any, ...]]:
        """The (rule, values…) behind each of a record's blocks. The engine names a block by
        Python's per-process ``hash`` of this tuple; the store needs a name that is stable
        across processes and keyed, so it hashes the same tuple with the key ring.
        (``identity.blocking`` has no public form of these tuples yet: see the report.)"""
        out: list[tuple[Any, ...]] = []
        for r, rule in enumerate(self.config.blocking_rules):
            parts = [BLOCK_FEATURES[name](f) for name in rule]
            if all(parts):
                out.extend((r, *combo) for combo in product(*parts))
        return out

    def block_key(self, values: tuple[Any, ...]) -> str:
        key = self._block_keys.get(values)
        if key is None:
            if len(self._block_keys) > 500_000:
                self._block_keys.clear()
            raw = "\x1f".join(map(str, values))
            key = self._block_keys[values] = store.block_key(self.keyring, raw)
        return key

    def keys(self, record: SourceRecord) -> RecordKeys:
        kept = self.records is not None
        hit = self._keys.get(id(record)) if kept else None
        if hit is not None and hit[0] is record:
            return hit[1]
        f = self.resolver.extractor.extract(record)
        blocks = {hash(v): self.block_key(v) for v in self.block_values(f)}
        holders = {h: kind for kind, digests in f.ids.items() for h in digests}
        stored = set(blocks.values())
        stored.update(self.holder_key(kind, h) for h, kind in holders.items())
        stored.update(store.lookup_keys(self.keyring, record))
        found = RecordKeys(blocks, holders, frozenset(stored))
        if kept:
            if len(self._keys) >= KEPT_LIMIT:
                self._keys = {}
            self._keys[id(record)] = (record, found)
        return found

    def check_blocks(self, record: SourceRecord) -> bool:
        """Whether ``block_values`` still names exactly the engine's blocks (tested)."""
        f = self.resolver.extractor.extract(record)
        engine = set(record_blocks(f, self.config.blocking_rules))
        return engine == {hash(v) for v in self.block_values(f)}

    @staticmethod
    def holder_key(kind: str, digest: str) -> str:
        return store.holder_key(f"{kind}:{digest}")

    def limit_of(self, stored_key: str) -> int | None:
        """The count a stored key may reach before the engine ignores it (None: not counted)."""
        if stored_key.startswith("b:"):
            return self.config.limits.max_block_size
        if stored_key.startswith("h:"):
            kind = stored_key[2:].split(":", 1)[0]
            return self.config.keys_by_name[kind].fanout_limit
        return None


def rid_of(rec: store.StoredRecord) -> str:
    return record_id(rec.source, rec.source_key)


# -- settling an engine result into the stored partition -----------------------------------------


@dataclass
class Settled:
    records: int = 0
    attached: int = 0
    merged: int = 0
    moved: int = 0
    members_created: int = 0
    members_retired: int = 0
    review_items: int = 0
    undecryptable: int = 0
    operation: int | None = None
    changed: list[int] = field(default_factory=list)

    def add(self, other: Settled) -> None:
        for name in ("records", "attached", "merged", "moved", "members_created"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.members_retired += other.members_retired
        self.review_items += other.review_items
        self.undecryptable += other.undecryptable


def _majority(members: Iterable[int]) -> int:
    counts = Counter(members)
    return min(counts, key=lambda m: (-counts[m], m))


async def _final_members(
    session: AsyncSession, state: ResolverState, loaded: Mapping[int, store.StoredRecord]
) -> tuple[dict[int, int], dict[int, int], int]:
    """Record -> member after pins and stable ids; record -> engine root; members created."""
    id_of = {rid_of(r): i for i, r in loaded.items()}
    member_of: dict[int, int] = {}
    root_of: dict[int, int] = {}
    free: list[frozenset[str]] = []
    pinned_to = {i: r.member_id for i, r in loaded.items() if r.pinned and r.member_id is not None}
    for root, rids in state.members.items():
        ids = [id_of[r] for r in rids]
        for i in ids:
            root_of[i] = id_of[root]
        pinned = [i for i in ids if i in pinned_to]
        member_of.update((i, pinned_to[i]) for i in pinned)
        rest = [i for i in ids if i not in pinned_to]
        if pinned and rest:
            target = _majority(pinned_to[i] for i in pinned)
            member_of.update(dict.fromkeys(rest, target))
        elif rest:
            free.append(frozenset(rid_of(loaded[i]) for i in rest))
    held = set(pinned_to.values())
    previous: dict[str, int] = {}
    for cluster in free:
        for rid in cluster:
            was = loaded[id_of[rid]].member_id
            if was is not None and was not in held:
                previous[rid] = was
    assigned = assign_member_ids(previous, free, next_id=_PLACEHOLDER)
    real = await store.allocate_member_ids(session=session, count=len(assigned.new_ids))
    mapped = dict(zip(assigned.new_ids, real, strict=True))
    for rid, m in assigned.by_record.items():
        member_of[id_of[rid]] = mapped.get(m, m)
    return member_of, root_of, len(real)


async def settle(
    *,
    session: AsyncSession,
    engine: Engine,
    state: ResolverState,
    loaded: Mapping[int, store.StoredRecord],
    dirty: Iterable[int] = (),
    golden_for: Iterable[int] = (),
    actor: str,
    loyalty: LoyaltyFollow,
) -> Settled:
    """Write what changed between the stored partition of ``loaded`` and the engine's ``state``
    over it (``dirty`` records changed content: their members' golden records are rebuilt)."""
    resolver = engine.resolver
    live = {i: r for i, r in loaded.items() if r.record is not None}
    out = Settled(records=len(live), undecryptable=len(loaded) - len(live))
    member_of, root_of, out.members_created = await _final_members(session, state, live)
    previous = {i: r.member_id for i, r in live.items()}
    changed = sorted(i for i in live if member_of[i] != previous[i])
    out.changed = changed
    moved = set(changed)  # ``in`` a list is a scan: per record of the scope, 4 % of an import
    final_members = set(member_of.values())
    went: dict[int, list[int]] = {}
    for i, p in previous.items():
        if p is not None and p not in final_members:
            went.setdefault(p, []).append(member_of[i])
    retired = {m: _majority(went[m]) for m in sorted(went)}
    out.members_retired = len(retired)
    await store.set_assignment(
        session=session,
        rows=[
            (i, member_of[i], root_of[i], live[i].pinned)
            for i in sorted(live)
            if i in moved or root_of[i] != live[i].engine_root
        ],
    )
    await store.retire_members(session=session, retired=retired)
    id_of = {rid_of(r): i for i, r in live.items()}
    links = await _links(session, engine, state, live, member_of, id_of, set(dirty), actor)
    rule_of = {x.record: x.rule for x in links}
    events = []
    for i in changed:
        prev = previous[i]
        if prev is None:
            kind = "attach"
            out.attached += 1
        elif retired.get(prev) == member_of[i]:
            kind = "merge"
            out.merged += 1
        else:
            kind = "move"
            out.moved += 1
        events.append(store.EventRow(kind, i, prev, member_of[i], rule_of.get(i), None, actor, {}))
    if events:
        out.operation = await store.next_operation(session=session)
        await store.write_events(session=session, operation=out.operation, events=events)
    reviews = []
    for item in resolver.partition(state).review:
        a, b = sorted((id_of[item.a], id_of[item.b]))
        if member_of[a] == member_of[b]:
            continue
        explain = resolver.explain(state, item.a, item.b, item.rule).as_dict()
        reviews.append(
            store.ReviewRow(
                a, b, item.score_bits or 0.0, item.reason.value, item.rule, item.detail, explain
            )
        )
    out.review_items = len(reviews)
    await store.replace_reviews(session=session, scope=live, items=reviews)
    touched = {member_of[i] for i in (*changed, *dirty) if i in member_of}
    touched |= {p for i in changed if (p := previous[i]) is not None} - set(retired)
    touched |= set(golden_for) & final_members
    await write_golden(
        session=session, engine=engine, members=touched, member_of=member_of, live=live
    )
    for absorbed, survivor in retired.items():
        await loyalty.follow_merge(session=session, absorbed=absorbed, survivor=survivor)
    await loyalty.reattribute(
        session=session, source_record_ids=[i for i in changed if previous[i] is not None]
    )
    return out


async def write_golden(
    *,
    session: AsyncSession,
    engine: Engine,
    members: Iterable[int],
    member_of: Mapping[int, int],
    live: Mapping[int, store.StoredRecord],
) -> None:
    wanted = set(members)
    by_member: dict[int, list[store.StoredRecord]] = {}
    for i, m in member_of.items():
        if m in wanted:
            by_member.setdefault(m, []).append(live[i])
    golden = {}
    for m, recs in by_member.items():
        g = build_golden((r.record for r in recs if r.record is not None), config=engine.config)
        ids = {rid_of(r): r.id for r in recs}
        golden[m] = store.golden_plain(g, {attr: ids[rid] for attr, rid in g.sources.items()})
    await store.write_golden(session=session, keyring=engine.keyring, golden=golden)


async def _links(
    session: AsyncSession,
    engine: Engine,
    state: ResolverState,
    live: Mapping[int, store.StoredRecord],
    member_of: Mapping[int, int],
    id_of: Mapping[str, int],
    dirty: set[int],
    actor: str,
) -> list[store.LinkRow]:
    """Each unpinned record's link: the engine link to its parent in its cluster's link tree
    (rooted at the cluster's first record); pinned records keep the agent's link."""
    current = await store.current_links(session=session, ids=live)
    rows = []
    for root, rids in state.members.items():
        adjacent: dict[str, list[tuple[str, Any]]] = {}
        for link in state.links.get(root, ()):
            adjacent.setdefault(link.a, []).append((link.b, link))
            adjacent.setdefault(link.b, []).append((link.a, link))
        parent: dict[str, tuple[str, Any]] = {}
        stack, seen = [root], {root}
        while stack:
            x = stack.pop()
            for y, link in adjacent.get(x, ()):
                if y not in seen:
                    seen.add(y)
                    parent[y] = (x, link)
                    stack.append(y)
        pinned = sorted(id_of[r] for r in rids if live[id_of[r]].pinned)
        for rid in rids:
            i = id_of[rid]
            if live[i].pinned:
                continue
            m = member_of[i]
            up = parent.get(rid)
            if up is not None and member_of[id_of[up[0]]] == m:
                link = up[1]
                row = (m, id_of[up[0]], link.rule)
                if current.get(i) != row or i in dirty:
                    explain = engine.resolver.explain(state, link.a, link.b, link.rule).as_dict()
                    rows.append(store.LinkRow(i, *row, link.score_bits, explain, actor))
                continue
            target = next((p for p in pinned if member_of[p] == m), None)
            row2: tuple[int, int | None, str] = (m, target, "pinned_member" if target else "first")
            if current.get(i) != row2:
                rows.append(store.LinkRow(i, *row2, None, {}, actor))
    await store.write_links(session=session, links=rows)
    await store.relink_members(session=session, ids=live)
    return rows


# -- incremental ---------------------------------------------------------------------------------


async def resolve_records(
    *,
    session: AsyncSession,
    engine: Engine,
    record_ids: Iterable[int],
    loyalty: LoyaltyFollow,
    actor: str = "ingest",
    removed: Mapping[int, set[str]] | None = None,
) -> Settled:
    """Re-resolve after ``record_ids`` landed or changed (``removed``: keys of records that left,
    e.g. erased); same transaction as the caller."""
    try:
        await store.lock_identity(session=session)
        changed = await store.load_records(
            session=session, keyring=engine.keyring, ids=record_ids, cache=engine.records
        )
        changed_keys = {
            i: engine.keys(r.record) for i, r in changed.items() if r.record is not None
        }
        keys = {i: k.stored for i, k in changed_keys.items()}
        before = await store.replace_keys(session=session, keys=keys)
        for i, old in (removed or {}).items():
            before.setdefault(i, set()).update(old)
        delta: Counter[str] = Counter()
        for i in set(before) | set(keys):
            new, old = keys.get(i, frozenset()), before.get(i, set())
            delta.update({k: 1 for k in new - old if engine.limit_of(k) is not None})
            delta.update({k: -1 for k in old - new if engine.limit_of(k) is not None})
        after = await store.key_counts(session=session, keys=delta)
        # A key within its limit before or after: every holder is affected (pairs appear/vanish).
        small = [k for k, n in after.items() if min(n, n - delta[k]) <= (engine.limit_of(k) or 0)]
        seeds = set(keys) | await store.key_holders(session=session, keys=small)
        component = await store.closure(session=session, ids=seeds)
        # The changed records are part of the component: decrypted once, keyed once.
        rest = await store.load_records(
            session=session,
            keyring=engine.keyring,
            ids=component - changed.keys(),
            cache=engine.records,
        )
        pool = {**{i: r for i, r in changed.items() if i in component}, **rest}
        loaded = {i: pool[i] for i in sorted(pool)}
        return await _resolve_loaded(
            session,
            engine,
            loaded,
            dirty=set(keys),
            actor=actor,
            loyalty=loyalty,
            known_keys=changed_keys,
        )
    finally:
        engine.end_step()


async def _resolve_loaded(
    session: AsyncSession,
    engine: Engine,
    loaded: Mapping[int, store.StoredRecord],
    *,
    dirty: set[int],
    actor: str,
    loyalty: LoyaltyFollow,
    known_keys: Mapping[int, RecordKeys] | None = None,
) -> Settled:
    live = {i: r for i, r in loaded.items() if r.record is not None}
    known = known_keys or {}
    rkeys = {
        i: known[i] if i in known else engine.keys(r.record)
        for i, r in live.items()
        if r.record is not None
    }
    block_of = {stored: raw for k in rkeys.values() for raw, stored in k.blocks.items()}
    hot_of = {
        engine.holder_key(kind, h): h for k in rkeys.values() for h, kind in k.holders.items()
    }
    counts = await store.key_counts(session=session, keys=[*block_of, *hot_of])
    local: Counter[str] = Counter(s for k in rkeys.values() for s in k.stored)
    resolver = engine.resolver
    resolver.outside_blocks = frozenset(
        raw
        for key, raw in block_of.items()
        if counts[key] > engine.config.limits.max_block_size and counts[key] > local[key]
    )
    resolver.outside_hot = {
        h: engine.limit_of(key) or 0
        for key, h in hot_of.items()
        if counts[key] > (engine.limit_of(key) or 0) and counts[key] > local[key]
    }
    try:
        state = resolver.build_state(r.record for r in live.values() if r.record is not None)
    finally:
        resolver.outside_blocks, resolver.outside_hot = frozenset(), {}
    return await settle(
        session=session,
        engine=engine,
        state=state,
        loaded=loaded,
        dirty=dirty,
        actor=actor,
        loyalty=loyalty,
    )


class IdentityHooks:
    """The ingest seam: each landed batch resolves against the stored graph, in its transaction."""

    def __init__(
        self,
        *,
        keyring: KeyRing,
        config: MatchingConfig | None = None,
        loyalty: LoyaltyFollow | None = None,
    ) -> None:
        # Made per import or call (``hub.flows.hooks.default_hooks``): its engine keeps the
        # records it decodes from one batch to the next.
        self.engine = Engine(keyring=keyring, config=config, keep_records=True)
        self.loyalty = loyalty or loyalty_follow()
        self.last: Settled | None = None

    async def batch_landed(self, *, session: AsyncSession, batch: LandedBatch) -> None:
        ids = {**batch.written.new_records, **batch.written.updated_records}
        if not ids:
            return
        self.last = await resolve_records(
            session=session, engine=self.engine, record_ids=ids.values(), loyalty=self.loyalty
        )


# -- batch ---------------------------------------------------------------------------------------


async def resolve_all(
    *,
    db: Database,
    keyring: KeyRing,
    config: MatchingConfig | None = None,
    loyalty: LoyaltyFollow | None = None,
    actor: str = "batch",
    progress: Callable[[str, int], None] | None = None,
) -> Settled:
    """Re-resolve every live record in one transaction, in set-based passes."""
    engine = Engine(keyring=keyring, config=config)
    tell = progress or (lambda phase, n: None)
    async with db.unit_of_work() as session:
        await store.lock_identity(session=session)
        loaded: dict[int, store.StoredRecord] = {}
        after = 0
        while page := await store.record_page(session=session, keyring=keyring, after_id=after):
            loaded.update((r.id, r) for r in page)
            after = page[-1].id
            tell("load", len(loaded))
        keys = {i: engine.keys(r.record).stored for i, r in loaded.items() if r.record is not None}
        await store.replace_keys(session=session, keys=keys)
        tell("keys", len(keys))
        state = engine.resolver.build_state(
            r.record for r in loaded.values() if r.record is not None
        )
        tell("resolve", len(state.features))
        conn = await store.driver(session)
        missing = {
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM member WHERE status = 'active' AND golden_enc IS NULL"
            )
        }
        settled = await settle(
            session=session,
            engine=engine,
            state=state,
            loaded=loaded,
            golden_for=missing,
            actor=actor,
            loyalty=loyalty or loyalty_follow(),
        )
        tell("settle", settled.records)
    return settled
