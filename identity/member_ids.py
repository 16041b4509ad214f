"""Stable member ids: how a new partition inherits the ids of the previous one.

``assign_member_ids(previous, clusters, next_id)`` is a pure function. ``previous`` maps record id
-> member id from the last run; ids are integers issued in increasing order, so a smaller id is an
older member. The rules, applied in a fixed order so a re-run never renumbers anyone:

- a cluster whose records all had the same id keeps it (nothing changed, nothing renumbered);
- a merged cluster keeps the **oldest** id among its records; the other ids are retired and
  recorded in ``retired`` (old id -> surviving id) so points and links can follow them;
- when a cluster was split, the part holding most of the old member's records keeps the id (ties:
  the part with the smallest record id); the other parts get new ids;
- clusters of new records only get new ids, issued in order of their smallest record id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class IdAssignment:
    by_record: Mapping[str, int]  # record id -> member id
    by_cluster: Mapping[frozenset[str], int]
    retired: Mapping[int, int]  # old member id -> the member id that absorbed it
    new_ids: tuple[int, ...]
    next_id: int


def assign_member_ids(
    previous: Mapping[str, int], clusters: Iterable[frozenset[str]], *, next_id: int
) -> IdAssignment:
    ordered = sorted((frozenset(c) for c in clusters if c), key=min)
    claims: list[tuple[int, int, str, frozenset[str]]] = []  # (old id, -overlap, min rid, cluster)
    for cluster in ordered:
        counts = Counter(previous[r] for r in cluster if r in previous)
        for old_id, overlap in counts.items():
            claims.append((old_id, -overlap, min(cluster), cluster))
    by_cluster: dict[frozenset[str], int] = {}
    taken: set[int] = set()
    # Oldest ids choose first; each id goes to the cluster holding most of its records.
    for old_id, _neg, _rid, cluster in sorted(claims, key=lambda c: (c[0], c[1], c[2])):
        if old_id in taken or cluster in by_cluster:
            continue
        by_cluster[cluster] = old_id
        taken.add(old_id)
    new_ids = []
    for cluster in ordered:
        if cluster not in by_cluster:
            by_cluster[cluster] = next_id
            new_ids.append(next_id)
            next_id += 1
    retired: dict[int, int] = {}
    for cluster, member_id in by_cluster.items():
        for r in cluster:
            old = previous.get(r)
            if old is not None and old != member_id and old not in taken:
                retired.setdefault(old, member_id)
    by_record = {r: m for cluster, m in by_cluster.items() for r in cluster}
    return IdAssignment(by_record, by_cluster, retired, tuple(new_ids), next_id)
