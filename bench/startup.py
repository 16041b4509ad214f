"""How long `make demo`'s server takes to answer /readyz: cold data folder, then warm.

Cold: a new data folder, so initdb of the embedded PostgreSQL, migrations, demo data and
start-up. Warm: the same folder again. Prints one line per case and a summary line:
    startup cold_s=… warm_s=…
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HUB = [sys.executable, "-m", "hub.cli"]


def time_to_ready(data_dir: Path, port: int, timeout_s: float) -> float:
    env = {**os.environ, "HUB_DATA_DIR": str(data_dir), "HUB_PORT": str(port)}
    env.pop("HUB_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*HUB, "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while time.perf_counter() - start < timeout_s:
            if proc.poll() is not None:
                raise SystemExit(f"hub demo exited with {proc.returncode} before it was ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"not ready after {timeout_s} s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--quick", action="store_true", help="same run (it is already small)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hub-startup-"))
    try:
        cold = time_to_ready(folder / "data", args.port, args.timeout)
        print(f"cold data folder: ready in {cold:.2f} s", flush=True)
        warm = time_to_ready(folder / "data", args.port, args.timeout)
        print(f"warm data folder: ready in {warm:.2f} s", flush=True)
        print(f"startup cold_s={cold:.2f} warm_s={warm:.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
