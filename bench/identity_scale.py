"""Identity resolution at scale: batch seconds, peak RSS, incremental p50/p99 per record.

    .venv/bin/python bench/identity_scale.py --records 20000 [--incremental 1000] [--fit] [--check]

Records come from identity.synthetic (controlled duplicates across app/pos/taobao/douyin/hotel);
nothing is read from disk. The batch resolves all but the last ``--incremental`` records, then
those are resolved one by one against the batch state. ``--check`` also verifies that the final
state equals a batch run over all records (the incremental == batch contract).
Targets from the issue: 1M records in <= 330 s and <= 8 GB; one record in milliseconds.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.core.pii import KeyRing  # noqa: E402
from identity.evaluate import pairwise_metrics  # noqa: E402
from identity.resolver import Resolver  # noqa: E402
from identity.synthetic import make_people  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--incremental", type=int, default=1_000)
    parser.add_argument("--fit", action="store_true", help="train m/u by EM first (timed apart)")
    parser.add_argument("--check", action="store_true", help="verify incremental == batch")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    t0 = time.perf_counter()
    records, truth = make_people(args.records, seed=args.seed)
    gen_s = time.perf_counter() - t0
    resolver = Resolver(keyring=KeyRing.generate())
    fit_s = 0.0
    if args.fit:
        t0 = time.perf_counter()
        resolver = resolver.fit(records)
        fit_s = time.perf_counter() - t0

    n_inc = min(args.incremental, len(records) // 2)
    head, tail = records[: len(records) - n_inc], records[len(records) - n_inc :]
    t0 = time.perf_counter()
    state = resolver.build_state(head)
    batch_s = time.perf_counter() - t0
    partition = resolver.partition(state)

    times = []
    for rec in tail:
        started = time.perf_counter()
        resolver.resolve_one(rec, state)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p50 = statistics.median(times) if times else 0.0
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else 0.0

    final = resolver.partition(state)
    quality = pairwise_metrics(final.clusters, truth)
    print(
        f"records={len(records)} generate_s={gen_s:.2f} fit_s={fit_s:.2f} "
        f"batch_records={len(head)} batch_s={batch_s:.2f} "
        f"batch_per_record_us={batch_s / max(1, len(head)) * 1e6:.0f} "
        f"pairs_compared={partition.stats['pairs_compared']} peak_rss_mb={_rss_mb():.0f}"
    )
    print(
        f"incremental_records={len(tail)} p50_ms={p50:.2f} p99_ms={p99:.2f} "
        f"max_ms={max(times, default=0.0):.2f}"
    )
    print(
        quality.format(),
        f"review_items={final.stats['review_items']}",
        f"blocks_oversized={final.stats['blocks_oversized']}",
    )
    if args.check:
        whole = resolver.resolve_batch(records)
        same = whole.as_sets() == final.as_sets()
        print(f"incremental_equals_batch={same}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
