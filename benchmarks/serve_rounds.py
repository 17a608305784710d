"""bench_serve in interleaved rounds: SQLite, then PostgreSQL with two servers, per round.

    python benchmarks/serve_rounds.py [--rounds 3] [--postgres URL] [--old SRC]

One bench_serve run moves by ±20% with the load of the (shared) machine, so the floors
of issue 16 are judged on medians of rounds that alternate the arms: each round runs
bench_serve on SQLite, then on PostgreSQL with two servers (the cores split between
them), and prints each arm's server CPU of ingest alone per span and spans/s, and
PostgreSQL's sum (servers plus PostgreSQL's processes) over SQLite's, per round and on
the medians. `--old SRC` adds an arm: SQLite with the package found in SRC (say the
`src` of a checkout of an older commit), run first in each round, and the ratio of the
current code's CPU to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SQLITE_FLOOR_US, SQLITE_FLOOR_SPANS, POSTGRES_FLOOR_RATIO = 35.0, 40_000, 1.5


def _bench(extra: list[str], pythonpath: str | None = None) -> dict[str, float]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "bench_serve.py"),
            "--lythonic-nodes",
            "0",
            "--resolution-requests",
            "0",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _cost(figures: dict[str, float]) -> float:
    """Server CPU of ingest alone per span, PostgreSQL's processes included."""
    return figures["ingest_cpu_us_per_span"] + figures.get("postgres_ingest_cpu_us_per_span", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL for the second arm ('' to skip it)",
    )
    parser.add_argument("--old", help="a src directory holding an older dagtrace, for an arm")
    args = parser.parse_args()
    arms: dict[str, tuple[list[str], str | None]] = {}
    if args.old:
        arms["SQLite, old code"] = ([], args.old)
    arms["SQLite"] = ([], None)
    if args.postgres:
        arms["PostgreSQL, 2 servers"] = (["--db", args.postgres, "--servers", "2"], None)
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    for n in range(1, args.rounds + 1):
        for arm, (extra, pythonpath) in arms.items():
            runs[arm].append(figures := _bench(extra, pythonpath))
            print(
                f"round {n}  {arm:<22} {_cost(figures):6.1f} µs a span   "
                f"{figures['spans_per_s']:>7,.0f} spans/s",
                flush=True,
            )
    print(f"\nmedians of {args.rounds} rounds:")
    medians = {arm: statistics.median(map(_cost, r)) for arm, r in runs.items()}
    for arm, r in runs.items():
        spans = statistics.median(f["spans_per_s"] for f in r)
        print(f"  {arm:<22} {medians[arm]:6.1f} µs a span   {spans:>7,.0f} spans/s")
    print(f"  SQLite floors: ≤ {SQLITE_FLOOR_US:.0f} µs a span, ≥ {SQLITE_FLOOR_SPANS:,} spans/s")
    pairs = [("PostgreSQL, 2 servers", POSTGRES_FLOOR_RATIO), ("SQLite, old code", None)]
    for arm, floor in pairs:
        if arm not in runs:
            continue
        over, under = (arm, "SQLite") if floor else ("SQLite", arm)
        per_round = [_cost(a) / _cost(b) for a, b in zip(runs[over], runs[under], strict=True)]
        print(
            f"  {over} / {under}: {medians[over] / medians[under]:.2f}× on the medians, "
            f"per round {', '.join(f'{r:.2f}' for r in per_round)}"
            + (f" (floor ≤ {floor}×)" if floor else "")
        )


if __name__ == "__main__":
    main()
