"""Every benchmark, one after the other, each with its baselines and ratios.

    python benchmarks/run_all.py [--postgres URL]

Runs them one at a time, so no benchmark steals the cores of another. With
--postgres, the store and serve benchmarks run again on that server. Takes a few
minutes; exits non-zero if any benchmark fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

BENCHMARKS = [
    ["bench_store.py"],
    ["bench_runner.py"],
    ["bench_bridge.py"],
    ["bridge_budget.py"],
    ["bench_serve.py"],
    ["ingest_budget.py", "--rounds", "5"],
    ["bench_view.py"],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL server")
    args = parser.parse_args()
    runs = list(BENCHMARKS)
    if args.postgres:
        runs += [["bench_store.py", "--postgres", args.postgres]]
        runs += [["bench_serve.py", "--db", args.postgres, "--servers", "2"]]
    failed = []
    for script, *options in runs:
        command = " ".join([script, *options])
        print(f"\n=== {command}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *options])
        print(f"=== {command}: {'ok' if code == 0 else f'FAILED ({code})'}", end="")
        print(f" in {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(command)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
