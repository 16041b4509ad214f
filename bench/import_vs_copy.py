"""`hub import` of a Taobao order export against raw COPY of the same rows.

Generates a legacy GBK ExportOrderList CSV of N order rows (synthetic buyers, each with several
orders), then in one run measures
  (a) COPY of the same file into a plain table of 37 text columns (PostgreSQL's ceiling): twice
      before the import and once after, the median of the three compared, and
  (b) `hub import taobao FILE --bulk` as a subprocess, end to end (parsing, hashing,
      encryption, staging COPY, upserts, with a forked worker preparing batches), with its
      peak RSS,
both against the same server (embedded unless HUB_DATABASE_URL is set). Prints:
  import_rows_per_s=… copy_rows_per_s=… ratio=… peak_rss_mb=… rows=… mode=bulk

(b) lands the rows and leaves identity resolution and accrual to `hub identity resolve` and
`hub ledger accrue`, run after: what `hub import` was in issue 3, whose target this is (the
after-batch seam was a no-op until identity and loyalty arrived), and how a large first load is
run. A smaller file (``--hooks-rows``) is then imported twice into fresh databases: by plain
`hub import`, resolving and accruing after each batch (the same figures, prefixed
``with_hooks``), and by `--bulk` followed by the two catch-up commands, each timed
(``bulk_then_catch_up``): see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.cli import BULK_FOLLOW_UP  # noqa: E402
from hub.core.db import admin_execute as _admin  # noqa: E402
from hub.core.db import embedded_url, plain_url  # noqa: E402
from hub.core.db import with_database as _with_db  # noqa: E402
from hub.core.migrate import upgrade  # noqa: E402
from hub.generator.layout import TAOBAO_ORDERS_HEADER  # noqa: E402

PROVINCES = (
    ("浙江省", "杭州市", "西湖区"),
    ("上海", "上海市", "浦东新区"),
    ("广东省", "深圳市", "南山区"),
)
STATUSES = ("交易成功", "交易成功", "交易成功", "卖家已发货，等待买家确认", "交易关闭")


def write_export(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    buyers = max(rows // 3, 1)
    with path.open("w", encoding="gbk", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(TAOBAO_ORDERS_HEADER)
        for i in range(rows):
            b = rng.randrange(buyers)
            prov, city, dist = PROVINCES[b % 3]
            goods = rng.randrange(1000, 99900)
            post = rng.choice((0, 0, 800, 1000))
            day = 1 + i % 28
            row = [""] * len(TAOBAO_ORDERS_HEADER)
            row[0] = f'="{3_000_000_000_000_000_000 + i}"'
            row[1] = f"测试买家{b:07d}"
            row[3] = f"{goods / 100:.2f}"
            row[4] = f"{post / 100:.2f}"
            row[5] = "0"
            row[6] = f"{(goods + post) / 100:.2f}"
            row[7] = "0"
            row[8] = f"{(goods + post) / 100:.2f}"
            row[9] = "0"
            row[10] = STATUSES[i % len(STATUSES)]
            row[12] = "测*"
            row[13] = f"{prov} {city} {dist} ****** (000000)"
            row[14] = "快递"
            row[16] = f"138****{b % 10000:04d}"
            row[17] = f"2025-03-{day:02d} 10:12:05"
            row[18] = f"2025-03-{day:02d} 10:12:30"
            row[19] = "样例商品A 50ml"
            row[20] = "1"
            row[24] = "1"
            row[25] = "SHOP001"
            row[26] = "示例旗舰店"
            row[27] = "订单未关闭"
            out.writerow(row)


async def copy_rate(url: str, path: Path, rows: int) -> float:
    conn = await asyncpg.connect(plain_url(url))
    try:
        cols = ", ".join(f"c{i} text" for i in range(len(TAOBAO_ORDERS_HEADER)))
        await conn.execute(f"CREATE TABLE plain_copy ({cols})")
        await conn.execute("CHECKPOINT")  # see ``import_rate``
        started = time.perf_counter()
        with path.open("rb") as fh:
            await conn.copy_to_table(
                "plain_copy", source=fh, format="csv", header=True, encoding="GBK"
            )
        elapsed = time.perf_counter() - started
        got = await conn.fetchval("SELECT count(*) FROM plain_copy")
        assert got == rows, (got, rows)
        await conn.execute("DROP TABLE plain_copy")
        return rows / elapsed
    finally:
        await conn.close()


def _hub(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub.cli", *args]


def import_rate(
    server: str,
    export: Path,
    rows: int,
    work: Path,
    batch_size: int,
    *,
    bulk: bool,
    follow_up: bool = False,
) -> tuple[float, float, list[float]]:
    """(rows/s, peak RSS in MB, seconds of each follow-up) of `hub import` of ``export`` into
    a fresh migrated database. ``bulk``: `hub import --bulk`; with ``follow_up``, then
    `hub identity resolve` and `hub ledger accrue`, timed apart (the rate is the import's)."""
    name = f"hub_bench_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = _with_db(server, name)
    try:
        upgrade(url)
        data = work / f"data-{name}"
        env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_DATA_DIR": str(data)}
        # Each measured run starts from a checkpoint, or it would pay for the last one's: a
        # COPY run writes ~300 MB of WAL, and the import that followed two of them met their
        # checkpoint (writing their pages, then a full-page image of each page it touched first).
        asyncio.run(_admin(server, "CHECKPOINT"))
        command = _hub(
            "import",
            "taobao",
            str(export),
            "--batch-size",
            str(batch_size),
            "--report",
            str(work / "report.json"),
            *(("--bulk",) if bulk else ()),
        )
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # wait4 gives this child's own peak RSS (and its worker's, which it waits for).
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"hub import failed:\n{stderr[-2000:]}")
        seconds: list[float] = []
        # What `hub import --bulk` says to run after it, in its order.
        for step in BULK_FOLLOW_UP if follow_up else ():
            t = time.perf_counter()
            done = subprocess.run(
                _hub(*step.split()[1:]),
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"{step} failed:\n{done.stderr[-2000:]}")
            seconds.append(time.perf_counter() - t)
        return rows / elapsed, usage.ru_maxrss / 1024, seconds
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def loadavg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 rows (and 5,000 with hooks)")
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument(
        "--hooks-rows",
        type=int,
        default=50_000,
        help="rows of the runs with identity and loyalty, as they land or caught up (0: skip)",
    )
    parser.add_argument(
        "--without-hooks", action="store_true", help="skip those runs (--hooks-rows 0)"
    )
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    hooks_rows = 0 if args.without_hooks else (5_000 if args.quick else args.hooks_rows)
    work = Path(tempfile.mkdtemp(prefix="hub-bench-import-"))
    server = os.environ.get("HUB_DATABASE_URL") or embedded_url(ROOT / ".hub" / "bench-pg")
    name = f"hub_bench_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = _with_db(server, name)
    try:
        export = work / "ExportOrderList202503010000.csv"
        t = time.perf_counter()
        write_export(export, rows)
        print(
            f"wrote {rows:,} rows ({export.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        upgrade(url)
        # COPY takes seconds where the import takes a minute, so one COPY caught the host's
        # speed of that moment (it moved by a fifth between runs): two runs before the import
        # and one after, and the median of the three is the figure compared.
        copies = [asyncio.run(copy_rate(url, export, rows)) for _ in range(2)]
        print(f"COPY: {' / '.join(f'{c:,.0f}' for c in copies)} rows/s", flush=True)
        before = loadavg()
        import_per_s, peak_mb, _ = import_rate(
            server, export, rows, work, args.batch_size, bulk=True
        )
        copies.append(asyncio.run(copy_rate(url, export, rows)))
        copy_per_s = statistics.median(copies)
        print(
            f"COPY runs: {' / '.join(f'{c:,.0f}' for c in copies)} rows/s (median compared)",
            flush=True,
        )
        print(
            f"import_rows_per_s={import_per_s:,.0f} copy_rows_per_s={copy_per_s:,.0f} "
            f"ratio={import_per_s / copy_per_s:.3f} peak_rss_mb={peak_mb:.0f} rows={rows} "
            f"mode=bulk loadavg={before}..{loadavg()}",
            flush=True,
        )
        if hooks_rows:
            small = work / "ExportOrderList202503020000.csv"
            write_export(small, hooks_rows)
            copy_small = asyncio.run(copy_rate(url, small, hooks_rows))
            before = loadavg()
            with_hooks, peak_hooks, _ = import_rate(
                server, small, hooks_rows, work, args.batch_size, bulk=False
            )
            print(
                f"with_hooks import_rows_per_s={with_hooks:,.0f} copy_rows_per_s={copy_small:,.0f} "
                f"ratio={with_hooks / copy_small:.3f} peak_rss_mb={peak_hooks:.0f} "
                f"rows={hooks_rows} hooks=identity+loyalty loadavg={before}..{loadavg()}",
                flush=True,
            )
            before = loadavg()
            bulk, _, (resolve_s, accrue_s) = import_rate(
                server, small, hooks_rows, work, args.batch_size, bulk=True, follow_up=True
            )
            whole = hooks_rows / bulk + resolve_s + accrue_s
            print(
                f"bulk_then_catch_up import_s={hooks_rows / bulk:.1f} resolve_s={resolve_s:.1f} "
                f"accrue_s={accrue_s:.1f} rows_per_s={hooks_rows / whole:,.0f} "
                f"(with_hooks: {hooks_rows / with_hooks:.1f} s) rows={hooks_rows} "
                f"loadavg={before}..{loadavg()}"
            )
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
