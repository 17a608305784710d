"""PostgreSQL's instructions per span of serve's writes, counted by valgrind.

    python benchmarks/count_pg_instructions.py [--requests 5] [--bin DIR] [--locale C.UTF-8]

PostgreSQL's CPU per span moves ±15% from run to run on a shared machine, which hides
any change to the statements dagtrace sends. Instructions do not move: this starts a
private PostgreSQL cluster (initdb in a temporary directory, autovacuum off) under
valgrind's callgrind, following every process it forks, writes bench_serve's requests
(512 spans, the mix) through the PostgreSQL store in this process, and sums the
instructions of every PostgreSQL process. Each figure is that sum for N requests minus
the sum for none (after one warm-up request each time), divided by the spans.

Needs valgrind and PostgreSQL's server binaries (Debian: apt-get install valgrind
postgresql). Run as root, the cluster runs as the `postgres` user. A few minutes.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent

_WRITER = r"""
import pickle, sys
from dagtrace.serve.codec import decode_to_rows
from dagtrace.store import open_store
bodies = pickle.loads(open(sys.argv[1], "rb").read())
store = open_store(sys.argv[2])
for body in bodies[: 1 + int(sys.argv[3])]:
    decoded = decode_to_rows(body, json_encoded=False)
    store.write_rows(decoded.rows, parents=decoded.parents)
store.close()
"""


def _as_cluster_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _instructions(pg_bin: Path, data: Path, bodies: Path, requests: int) -> int:
    """Every PostgreSQL process's instructions while the store writes `requests`."""
    out = data.parent / f"callgrind-{requests}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    if os.geteuid() == 0:
        shutil.chown(out, "postgres")
    port = _free_port()
    server = subprocess.Popen(
        _as_cluster_user(
            [
                "valgrind",
                "--tool=callgrind",
                "--trace-children=yes",
                f"--callgrind-out-file={out}/%p",
                str(pg_bin / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(data.parent),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "autovacuum=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ready = [str(pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"]
        deadline = time.monotonic() + 300  # valgrind starts PostgreSQL ~50× slower
        while subprocess.run(ready).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start under valgrind")
            time.sleep(0.5)
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        script = data.parent / "writer.py"
        script.write_text(_WRITER)
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(
            [sys.executable, str(script), str(bodies), url, str(requests)], check=True, env=env
        )
    finally:
        stop = [str(pg_bin / "pg_ctl"), "-D", str(data), "stop", "-m", "fast"]
        if subprocess.run(_as_cluster_user(stop), capture_output=True).returncode != 0:
            os.killpg(server.pid, signal.SIGKILL)  # not started: nothing to count
        server.wait()
    total = 0
    for profile in out.iterdir():
        found = re.search(r"^(?:summary|totals): (\d+)", profile.read_text(), re.M)
        total += int(found.group(1)) if found else 0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5, help="requests of 512 spans")
    parser.add_argument(
        "--bin", type=Path, default=Path("/usr/lib/postgresql/15/bin"), help="server binaries"
    )
    parser.add_argument(
        "--locale",
        default="C.UTF-8",
        help="the cluster's locale, so its text comparisons are a real server's (default "
        "C.UTF-8, Debian's)",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or not (args.bin / "initdb").exists():
        sys.exit("needs valgrind and PostgreSQL's server binaries (see --bin)")
    sys.path.insert(0, str(HERE))
    from bench_serve import SPANS_PER_REQUEST, _encode_requests

    with tempfile.TemporaryDirectory(prefix="dagtrace-pg-count-") as tmp:
        work = Path(tmp)
        if os.geteuid() == 0:
            shutil.chown(work, "postgres")
        data = work / "data"
        initdb = [
            *(str(args.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
            f"--locale={args.locale}",
        ]
        bodies = work / "requests.pickle"
        bodies.write_bytes(pickle.dumps(_encode_requests(args.requests + 1, "count")))
        os.chmod(bodies, 0o644)
        counts = []
        for requests in (args.requests, 0):
            shutil.rmtree(data, ignore_errors=True)  # a new cluster for each count
            subprocess.run(_as_cluster_user(initdb), check=True, capture_output=True)
            counts.append(_instructions(args.bin, data, bodies, requests))
    per_span = (counts[0] - counts[1]) / (args.requests * SPANS_PER_REQUEST)
    print(
        f"PostgreSQL's instructions per span, every process ({args.requests} requests of "
        f"{SPANS_PER_REQUEST}, bench_serve's mix): {per_span:,.0f}"
    )


if __name__ == "__main__":
    main()
