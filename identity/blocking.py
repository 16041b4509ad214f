"""Blocking: which pairs get compared at all.

Each configured rule combines features (``["name_key", "birth_year"]``); two records are candidates
when they share the combined value of some rule. The index is a plain dict of lists, filled in one
pass (set-based, no pair is ever formed outside a block). A block holding more than
``limits.max_block_size`` records generates no pairs (its key is too common to mean anything, e.g.
a shared store phone) and is counted; the deterministic keys have their own fan-out limit.

A pair that shares several blocks is compared once: only the first shared valid block (by rule,
then key) emits it, so no global set of pairs is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import product

from identity.features import Features

BlockKeys = tuple[tuple[str, ...], ...]  # per rule, the block keys of one record


def _one(value: str | None) -> tuple[str, ...]:
    return () if value is None else (value,)


def _short(digests: Iterable[str]) -> tuple[str, ...]:
    # 96 bits of a keyed hash are plenty to block on (a collision only adds a compared pair) and
    # save memory on a million-record index.
    return tuple(sorted(d[-16:] for d in digests))


_FEATURE: dict[str, Callable[[Features], tuple[str, ...]]] = {
    "key": lambda f: _short(f.key_blocks),
    "name_key": lambda f: _one(f.name_key),
    "name_initial": lambda f: _one(f.name_initial),
    "surname_key": lambda f: _one(f.surname_key),
    "birthdate": lambda f: (
        () if f.birth is None else (f"{f.birth[0]:04d}{f.birth[1]:02d}{f.birth[2]:02d}",)
    ),
    "birth_year": lambda f: () if f.birth is None else (str(f.birth[0]),),
    "birth_md": lambda f: () if f.birth is None else (f"{f.birth[1]:02d}{f.birth[2]:02d}",),
    "city": lambda f: _one(f.city),
    "district": lambda f: _one(f.district if f.city is not None else None),
    "postcode": lambda f: _one(f.postcode),
    "phone_mask": lambda f: _short(f.phone_masks),
    "name_masked": lambda f: _one(f.name_masked),
}


def record_blocks(f: Features, rules: Sequence[tuple[str, ...]]) -> BlockKeys:
    out: list[tuple[str, ...]] = []
    for r, rule in enumerate(rules):
        parts = [_FEATURE[name](f) for name in rule]
        if any(not p for p in parts):
            out.append(())
            continue
        if len(parts) == 1:
            out.append(tuple(f"{r}|{v}" for v in parts[0]))
        else:
            out.append(tuple(f"{r}|" + "|".join(combo) for combo in product(*parts)))
    return tuple(out)


class BlockIndex:
    """Block key -> record ids. Blocks larger than ``max_size`` are kept but generate no pairs."""

    def __init__(self, *, max_size: int) -> None:
        self.max_size = max_size
        self.members: dict[str, list[str]] = {}

    def valid(self, key: str) -> bool:
        return len(self.members.get(key, ())) <= self.max_size

    def add(self, rid: str, keys: BlockKeys) -> list[str]:
        """Index a record; returns the keys that just became too large."""
        grown = []
        for rule_keys in keys:
            for key in rule_keys:
                bucket = self.members.setdefault(key, [])
                bucket.append(rid)
                if len(bucket) == self.max_size + 1:
                    grown.append(key)
        return grown

    def remove(self, rid: str, keys: BlockKeys) -> list[str]:
        """Unindex a record; returns the keys that just became small enough again."""
        shrunk = []
        for rule_keys in keys:
            for key in rule_keys:
                bucket = self.members.get(key)
                if bucket is None:
                    continue
                bucket.remove(rid)
                if not bucket:
                    del self.members[key]
                elif len(bucket) == self.max_size:
                    shrunk.append(key)
        return shrunk

    def candidates(self, keys: BlockKeys) -> set[str]:
        out: set[str] = set()
        for rule_keys in keys:
            for key in rule_keys:
                bucket = self.members.get(key, ())
                if len(bucket) <= self.max_size:
                    out.update(bucket)
        return out

    def first_shared(self, a: BlockKeys, b: BlockKeys) -> str | None:
        """The first valid block both records are in (rule order, then key order)."""
        for ka, kb in zip(a, b, strict=True):
            if not ka or not kb:
                continue
            shared = (
                [k for k in ka if k in kb and self.valid(k)]
                if len(kb) < 4
                else [k for k in ka if k in set(kb) and self.valid(k)]
            )
            if shared:
                return min(shared)
        return None

    def shares_valid_block(self, a: BlockKeys, b: BlockKeys) -> bool:
        return self.first_shared(a, b) is not None

    def oversized(self) -> int:
        return sum(1 for v in self.members.values() if len(v) > self.max_size)

    def pairs(self, blocks_of: Callable[[str], BlockKeys]) -> Iterator[tuple[str, str]]:
        """Every candidate pair once, block by block (the batch path)."""
        for key, bucket in self.members.items():
            n = len(bucket)
            if n < 2 or n > self.max_size:
                continue
            keys = [blocks_of(rid) for rid in bucket]
            for i in range(n):
                for j in range(i + 1, n):
                    if self.first_shared(keys[i], keys[j]) == key:
                        yield bucket[i], bucket[j]
