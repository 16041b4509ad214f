"""Identity quality on the hub's own generated data: pairwise precision / recall against truth.csv.

    .venv/bin/python bench/identity_quality.py --people 100000 [--seed 1] [--data DIR] [--fit]
        [--breakdown] [--config C.toml]

Generates ``--people`` people with ``hub.generator`` into a temporary folder (or reads ``--data``,
an existing ``hub generate`` output), parses every file with the real connectors
(``connectors.registry.plan("auto", …)``), resolves the SourceRecords in one batch and scores the
partition against ``truth.csv``.

How records without a label are counted. ``truth.csv`` labels every record a connector keys by a
person id of its source (POS card, app account, Taobao nick / ouid, Douyin member open_id, hotel
profile). Records keyed by what was seen on one order or receipt — Douyin and keyless Taobao
buyers (``rcv:…``, masked receiver fields) and POS walk-ins typed by phone (``mobile:…``) — have
no person behind them in the truth. They are resolved like every other record (so they can still
glue two labelled clusters together) and then left out of the score: the metrics are computed on
the partition *induced on labelled records*. A wrong merge through an unlabelled record therefore
still costs precision (the labelled records it joined form false pairs), while the unlabelled
records themselves neither earn nor cost anything, because nothing says who they are.
``max_cluster`` is the largest cluster counting only labelled records (comparable to
``max_true_cluster``); ``max_cluster_all`` counts every record.

``--ceiling`` prints the recall an error-free resolver could reach: the share of true pairs that
are connected through evidence the person's records actually share (see ``ceiling``). On the
default generator rates many records carry nothing another source also has (a Douyin member
whose phone is ciphertext only, a Tmall member without a consented mobile, a Taobao nick whose
only link is the masked receiver phone), which bounds recall far below 1.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors import registry  # noqa: E402
from hub.core.pii import KeyRing  # noqa: E402
from hub.core.records import SourceRecord  # noqa: E402
from hub.generator import generate  # noqa: E402
from hub.generator.layout import CONNECTOR_SOURCE, TRUTH  # noqa: E402
from identity.config import load_config  # noqa: E402
from identity.features import record_id  # noqa: E402
from identity.resolver import Partition, Resolver  # noqa: E402


def source_records(folder: Path) -> Iterator[SourceRecord]:
    """Every SourceRecord the connectors read from a generated folder (activities dropped)."""
    plans, _refused = registry.plan("auto", [folder])  # truth.csv is refused: no connector
    for p in plans:
        for item in registry.parse_path(p.connector, p.path, items=p.items):
            if isinstance(item, SourceRecord):
                yield item


def read_truth(folder: Path) -> dict[str, str]:
    """record id -> person id."""
    with open(folder / TRUTH, newline="", encoding="utf-8") as fh:
        return {
            record_id(CONNECTOR_SOURCE[row["source"]], row["source_key"]): row["person_id"]
            for row in csv.DictReader(fh)
        }


def kind_of(rid: str, truth: dict[str, str]) -> str:
    """A coarse record type for the breakdown (source, and how it is keyed)."""
    source, _, key = rid.partition(":")
    if rid not in truth:
        return f"{source}/{key.split(':', 1)[0]}"
    if source == "taobao":
        return "taobao/ouid" if key.startswith("AAF") else "taobao/nick"
    return source


def score(partition: Partition, truth: dict[str, str], *, breakdown: bool) -> dict[str, object]:
    people: Counter[str] = Counter(truth.values())
    pairs_true = sum(n * (n - 1) // 2 for n in people.values())
    found = hits = 0
    max_cluster = max_all = 0
    false_by: Counter[tuple[str, str]] = Counter()
    hit_by: Counter[tuple[str, str]] = Counter()
    for cluster in partition.clusters:
        max_all = max(max_all, len(cluster))
        labelled = [r for r in cluster if r in truth]
        max_cluster = max(max_cluster, len(labelled))
        found += len(labelled) * (len(labelled) - 1) // 2
        by_person: Counter[str] = Counter(truth[r] for r in labelled)
        hits += sum(n * (n - 1) // 2 for n in by_person.values())
        if breakdown and len(labelled) > 1:
            for i, a in enumerate(labelled):
                for b in labelled[i + 1 :]:
                    key = tuple(sorted((kind_of(a, truth), kind_of(b, truth))))
                    same = truth[a] == truth[b]
                    (hit_by if same else false_by)[(key[0], key[1])] += 1
    precision = hits / found if found else 1.0
    recall = hits / pairs_true if pairs_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out: dict[str, object] = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "pairs_true": pairs_true,
        "pairs_found": found,
        "clusters": len(partition.clusters),
        "max_cluster": max_cluster,
        "max_true_cluster": max(people.values(), default=0),
        "max_cluster_all": max_all,
    }
    if breakdown:
        true_by: Counter[tuple[str, str]] = Counter()
        members: defaultdict[str, list[str]] = defaultdict(list)
        for rid, person in truth.items():
            members[person].append(rid)
        for rids in members.values():
            for i, a in enumerate(rids):
                for b in rids[i + 1 :]:
                    key = tuple(sorted((kind_of(a, truth), kind_of(b, truth))))
                    true_by[(key[0], key[1])] += 1
        rows = []
        for key in sorted(set(true_by) | set(false_by)):
            t, h, f = true_by[key], hit_by[key], false_by[key]
            rows.append(f"  {key[0]:>14} ~ {key[1]:<14} true={t:>7} found={h:>7} false={f:>6}")
        out["breakdown"] = "\n".join(rows)
    return out


def ceiling(records: dict[str, SourceRecord], truth: dict[str, str], *, weak: bool) -> float:
    """The recall a resolver that never errs could reach: true pairs joined through evidence the
    two records of one person actually share (an identifier value, or an unmasked name with a
    birthday; ``weak`` adds a masked phone matching the person's number), allowed only between
    records of the same person. What no evidence connects, no resolver can find."""
    parent = {rid: rid for rid in records if rid in truth}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    groups: defaultdict[tuple[str, ...], list[str]] = defaultdict(list)
    for rid in parent:
        rec, person = records[rid], truth[rid]
        for ident in rec.identifiers:
            if ident.kind.value == "phone_masked":
                if weak:
                    digits = ident.value.replace("*", "")
                    groups[(person, "mask", ident.value[:3], digits[-4:])].append(rid)
                continue
            if "*" not in ident.value:
                groups[(person, ident.kind.value, ident.scope or "", ident.value)].append(rid)
            if weak and ident.kind.value == "phone":
                national = ident.value.removeprefix("+86")
                groups[(person, "mask", national[:3], national[-4:])].append(rid)
        if rec.name and rec.birthday and "*" not in rec.name:
            groups[(person, "name", rec.name, rec.birthday.isoformat())].append(rid)
    for rids in groups.values():
        for other in rids[1:]:
            parent[find(other)] = find(rids[0])
    joined = Counter(find(rid) for rid in parent)
    people: Counter[str] = Counter(truth.values())
    total = sum(n * (n - 1) // 2 for n in people.values())
    return sum(n * (n - 1) // 2 for n in joined.values()) / total if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, help="an existing `hub generate` folder to read")
    parser.add_argument("--config", type=Path, help="matching TOML (default: the shipped one)")
    parser.add_argument("--fit", action="store_true", help="train m/u by EM before resolving")
    parser.add_argument("--breakdown", action="store_true", help="pairs by record type")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also print the recall reachable from shared evidence",
    )
    parser.add_argument("--quick", action="store_true", help="smoke size for `make bench-quick`")
    args = parser.parse_args()
    if args.quick:
        args.people = min(args.people, 1_000)

    with tempfile.TemporaryDirectory(prefix="hub-idq-") as tmp:
        folder = args.data
        t0 = time.perf_counter()
        if folder is None:
            folder = Path(tmp)
            generate(args.people, args.seed, folder)
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        records = list(source_records(folder))
        truth = read_truth(folder)
        parse_s = time.perf_counter() - t0

    resolver = Resolver(keyring=KeyRing.generate(), config=load_config(args.config))
    t0 = time.perf_counter()
    if args.fit:
        resolver = resolver.fit(records)
    partition = resolver.resolve_batch(records)
    seconds = time.perf_counter() - t0
    result = score(partition, truth, breakdown=args.breakdown)
    print(
        f"precision={result['precision']:.4f} recall={result['recall']:.4f} "
        f"f1={result['f1']:.4f} pairs_true={result['pairs_true']} "
        f"pairs_found={result['pairs_found']} clusters={result['clusters']} "
        f"max_cluster={result['max_cluster']} max_true_cluster={result['max_true_cluster']} "
        f"seconds={seconds:.2f} review_items={partition.stats['review_items']}"
    )
    print(
        f"records={partition.stats['records']} labelled={len(truth)} "
        f"max_cluster_all={result['max_cluster_all']} generate_s={gen_s:.1f} "
        f"parse_s={parse_s:.1f} pairs_compared={partition.stats['pairs_compared']} "
        f"links={partition.stats['links']} blocks_oversized={partition.stats['blocks_oversized']} "
        f"keys_over_fanout={partition.stats['keys_over_fanout']}"
    )
    if args.ceiling:
        latest: dict[str, SourceRecord] = {}
        for rec in records:
            rid = record_id(rec.source, rec.source_key)
            if rid not in latest or rec.observed_at >= latest[rid].observed_at:
                latest[rid] = rec
        print(
            f"recall_ceiling_strong={ceiling(latest, truth, weak=False):.4f} "
            f"recall_ceiling_with_masked_phones={ceiling(latest, truth, weak=True):.4f}"
        )
    if args.breakdown:
        print(result["breakdown"])
        reviews = Counter(r.reason.value for r in partition.review)
        print("review:", dict(reviews))


if __name__ == "__main__":
    main()
