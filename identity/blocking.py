"""Blocking: which pairs get compared at all.

Each configured rule combines features (``["name_key", "birth_year"]``); two records are candidates
when they share the combined value of some rule. A block is named by a 64-bit hash of (rule,
values), and a record's blocks are kept as one sorted ``array('q')`` (8 bytes a block: a million
records' index must fit in memory; a hash collision only adds a compared pair). The index is a
plain dict of lists, filled in one pass (set-based, no pair is ever formed outside a block). A
block holding more than ``limits.max_block_size`` records generates no pairs (its key is too common
to mean anything, e.g. a shared store phone) and is counted; the deterministic keys have their
own fan-out limit.

A pair that shares several blocks is compared once: only the smallest shared valid block emits
it, so no global set of pairs is needed.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import product
from typing import TypeAlias

from identity.features import Features

BlockKeys: TypeAlias = (
    "array[int]"  # sorted, distinct 64-bit block hashes of one record ("q" typecode)
)


def _one(value: str | None) -> tuple[str, ...]:
    return () if value is None else (value,)


def _ids(f: Features) -> tuple[str, ...]:
    return tuple(h for digests in f.ids.values() for h in digests)


_FEATURE: dict[str, Callable[[Features], tuple[str, ...]]] = {
    "key": _ids,
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
    "phone_mask": lambda f: f.mask_blocks,
    "name_masked": lambda f: _one(f.name_masked),
}


def record_blocks(f: Features, rules: Sequence[tuple[str, ...]]) -> BlockKeys:
    out: set[int] = set()
    for r, rule in enumerate(rules):
        parts = [_FEATURE[name](f) for name in rule]
        if any(not p for p in parts):
            continue
        if len(parts) == 1:
            out.update(hash((r, v)) for v in parts[0])
        else:
            out.update(hash((r, *combo)) for combo in product(*parts))
    return array("q", sorted(out))


class BlockIndex:
    """Block hash -> record ids. Blocks larger than ``max_size`` are kept but generate no pairs."""

    def __init__(self, *, max_size: int) -> None:
        self.max_size = max_size
        self.members: dict[int, list[str]] = {}

    def valid(self, key: int) -> bool:
        return len(self.members.get(key, ())) <= self.max_size

    def add(self, rid: str, keys: BlockKeys) -> list[int]:
        """Index a record; returns the keys that just became too large."""
        grown = []
        members = self.members
        limit = self.max_size + 1
        for key in keys:
            bucket = members.get(key)
            if bucket is None:
                members[key] = [rid]
                continue
            bucket.append(rid)
            if len(bucket) == limit:
                grown.append(key)
        return grown

    def remove(self, rid: str, keys: BlockKeys) -> list[int]:
        """Unindex a record; returns the keys that just became small enough again."""
        shrunk = []
        for key in keys:
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
        for key in keys:
            bucket = self.members.get(key, ())
            if len(bucket) <= self.max_size:
                out.update(bucket)
        return out

    def first_shared(self, a: BlockKeys, b: BlockKeys) -> int | None:
        """The smallest valid block both records are in (both arrays are sorted)."""
        members, limit = self.members, self.max_size
        for key in a:
            if key in b and len(members.get(key, ())) <= limit:
                return int(key)
        return None

    def shares_valid_block(self, a: BlockKeys, b: BlockKeys) -> bool:
        return self.first_shared(a, b) is not None

    def oversized(self) -> int:
        return sum(1 for v in self.members.values() if len(v) > self.max_size)

    def pairs(self, blocks_of: Callable[[str], BlockKeys]) -> Iterator[tuple[str, str]]:
        """Every candidate pair once, block by block (the batch path)."""
        limit = self.max_size
        first_shared = self.first_shared
        for key, bucket in self.members.items():
            n = len(bucket)
            if n < 2 or n > limit:
                continue
            keys = [blocks_of(rid) for rid in bucket]
            for i in range(n):
                ki = keys[i]
                for j in range(i + 1, n):
                    if first_shared(ki, keys[j]) == key:
                        yield bucket[i], bucket[j]
