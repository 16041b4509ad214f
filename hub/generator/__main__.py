"""``python -m hub.generator --people N --seed S --out DIR`` (what ``hub generate`` calls)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hub.generator import MAX_PEOPLE, generate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hub generate", description="Write a synthetic multi-source member data set."
    )
    parser.add_argument("--people", type=int, required=True, help=f"1..{MAX_PEOPLE}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not 1 <= args.people <= MAX_PEOPLE:
        parser.error(f"--people must be between 1 and {MAX_PEOPLE}")
    started = time.perf_counter()
    step = max(args.people // 20, 1000)

    def report(done: int) -> None:
        if done % step == 0 or done == args.people:
            print(f"  {done:,} / {args.people:,} people", file=sys.stderr)

    summary = generate(args.people, args.seed, args.out, report)
    elapsed = time.perf_counter() - started
    for name, rows in summary.files.items():
        print(f"{rows:>12,}  {name}")
    print(f"{summary.total_rows:>12,}  rows for {summary.people:,} people in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
