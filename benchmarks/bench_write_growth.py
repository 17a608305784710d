"""The store's write as spans accumulate, with the node span index of schema 9 and of 6-8.

    python benchmarks/bench_write_growth.py [--requests 150] [--db URL]

bench_growth.py builds its large stores with SQL and no span ids, so it cannot show
what span ids do to an index. Here two stores (two SQLite files, or two schemas of
`--db`) receive the same decoded bench_serve requests (512 spans each, plain: node
spans only) through `Store.write_rows`, alternating request by request: one with
schema 9's `node_executions (trace_id, span_id)` index, one with schema 6-8's
`node_executions (span_id)` in its place. It prints each store's CPU per span of the
write over each fifth of the run; a write cost that grows with the store shows as
rising fifths.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_serve import SPANS_PER_REQUEST, _encode_requests, _postgres_cpu_seconds
from bench_store import _drop_schema, _fresh_schema

from dagtrace import open_store
from dagtrace.serve.codec import decode_to_rows
from dagtrace.serve.ingest import collect_less_often

FIFTHS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=150, help="requests of 512 spans")
    parser.add_argument("--db", help="a postgresql:// URL (default: two new SQLite files)")
    args = parser.parse_args()
    collect_less_often()  # as serve's ingest workers do
    print(f"decoding {args.requests} requests of {SPANS_PER_REQUEST} spans …")
    decoded = [
        decode_to_rows(body, json_encoded=False)
        for body in _encode_requests(args.requests, "growth", mix=False)
    ]
    workdir = Path(tempfile.mkdtemp(prefix="dagtrace-write-growth-"))
    arms = {"(trace_id, span_id), schema 9": "", "(span_id), schema 6-8": "old"}
    locations = {
        arm: _fresh_schema(args.db) if args.db else str(workdir / f"{tag or 'new'}.db")
        for arm, tag in arms.items()
    }
    stores = {arm: open_store(location) for arm, location in locations.items()}
    try:
        with stores["(span_id), schema 6-8"].transaction() as writer:
            writer.cursor.execute("DROP INDEX dagtrace_nodes_trace_span")
            writer.cursor.execute("CREATE INDEX dagtrace_nodes_span ON node_executions (span_id)")
        spent = {arm: [0.0] * FIFTHS for arm in arms}
        server = {arm: [0.0] * FIFTHS for arm in arms}  # PostgreSQL's processes
        per_fifth = -(-args.requests // FIFTHS)
        for i, request in enumerate(decoded):
            for arm, store in stores.items():
                before = _postgres_cpu_seconds() if args.db else 0.0
                start = time.thread_time()
                store.write_rows(request.rows, parents=request.parents)
                spent[arm][i // per_fifth] += time.thread_time() - start
                if args.db:
                    server[arm][i // per_fifth] += _postgres_cpu_seconds() - before
        spans = args.requests * SPANS_PER_REQUEST
        print(f"µs of CPU a span of the write, by fifth of the run ({per_fifth} requests each),")
        print(
            "PostgreSQL's processes apart; then the store's background checkpoints "
            "(SQLite) over the whole run:"
            if args.db
            else "then the store's background checkpoints over the whole run:"
        )
        for arm in arms:
            checkpoints = _checkpointer_seconds(stores[arm]) / spans * 1e6
            print(f"  {arm:<30} {_fifths(spent[arm], per_fifth)}   checkpoints {checkpoints:4.1f}")
            if args.db:
                print(f"  {'  PostgreSQL':<30} {_fifths(server[arm], per_fifth)}")
    finally:
        for store in stores.values():
            store.close()
        if args.db:
            for location in locations.values():
                _drop_schema(args.db, location)


def _fifths(seconds: list[float], per_fifth: int) -> str:
    return "  ".join(f"{s / (per_fifth * SPANS_PER_REQUEST) * 1e6:5.1f}" for s in seconds)


def _checkpointer_seconds(store: object) -> float:
    """CPU seconds of a SQLite store's checkpoint thread so far (0 for PostgreSQL)."""
    thread = getattr(store, "_checkpointer", None)
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


if __name__ == "__main__":
    main()
