"""Coverage-guided fuzzing of the OTLP decoder and the span mapping with atheris.

Not part of the test suite (CI runs the derandomised hypothesis tests in
tests/test_fuzz.py). Where atheris installs (`pip install atheris`):

    python fuzz/atheris_otlp.py -atheris_runs=200000            # protobuf bodies
    python fuzz/atheris_otlp.py -atheris_runs=200000 --json     # OTLP/JSON bodies

A crash is any exception other than `UndecodableRequest` (a 400), or a mapped record
the store refuses. Seeds: a real request of the traced test pipeline.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import dagtrace
    from dagtrace.exceptions import UndecodableRequest
    from dagtrace.serve.codec import decode_request

JSON = "--json" in sys.argv
STORE = dagtrace.SqliteStore(Path(tempfile.mkdtemp(prefix="dagtrace-fuzz-")) / "fuzz.db")


def one_input(data: bytes) -> None:
    try:
        decoded = decode_request(data, json_encoded=JSON)
    except UndecodableRequest:
        return
    if decoded.records:
        STORE.write_records(decoded.records)  # anything the mapping lets in is storable


def _seed_corpus() -> str:
    """A corpus directory holding real requests of a traced pipeline, as seeds."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from otlp_helpers import json_request, protobuf_request
    from test_serve import recorded_spans

    corpus = Path(tempfile.mkdtemp(prefix="dagtrace-fuzz-corpus-"))
    for n, kwargs in enumerate([{}, {"fail_publish": True}]):
        spans = recorded_spans(**kwargs)
        body = json_request(spans) if JSON else protobuf_request(spans)
        (corpus / f"seed-{n}").write_bytes(body)
    return str(corpus)


def main() -> None:
    args = [a for a in sys.argv if a != "--json"]
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(_seed_corpus())
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
