"""Several `dagtrace serve` processes and many senders on one PostgreSQL database."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from otlp_helpers import json_request, protobuf_request
from test_serve import recorded_spans, serving

import dagtrace

PB = {"Content-Type": "application/x-protobuf"}


def _send_runs(urls: list[str], sender: int, runs: int, out: Any) -> None:
    codes = []
    with httpx.Client(timeout=60) as client:
        for n, chunk in enumerate(_chunks([f"s{sender}-r{i}" for i in range(runs)])):
            body = protobuf_request([s for r in chunk for s in recorded_spans(run_id=r)])
            url = urls[(sender + n) % len(urls)]  # alternate between the servers
            codes.append(client.post(f"{url}/v1/traces", content=body, headers=PB).status_code)
    out.put(codes)


def _chunks(run_ids: list[str]) -> list[list[str]]:
    """Requests of one run and of seven, alternately: 7 runs are 84 nodes and 35 edges,
    batches the PostgreSQL store stages through COPY."""
    chunks: list[list[str]] = []
    while run_ids:
        size = 7 if len(chunks) % 2 else 1
        chunks.append(run_ids[:size])
        run_ids = run_ids[size:]
    return chunks


def test_two_servers_eight_senders_every_row_exactly_once(
    pg_schema_url: Callable[[], str], tmp_path: Path
) -> None:
    db = pg_schema_url()
    senders, runs = 8, 100
    with serving(db) as first, serving(db) as second:  # both migrate at start: no race
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_send_runs, args=([first, second], n, runs, out))
            for n in range(senders)
        ]
        for p in procs:
            p.start()
        codes = [code for _ in procs for code in out.get(timeout=600)]
        for p in procs:
            p.join(timeout=60)
    assert codes == [200] * senders * len(_chunks([""] * runs))
    store = dagtrace.open_store(db)
    try:
        with store._read() as cur:
            cur.execute("SELECT count(*), count(DISTINCT run_id) FROM dag_runs")
            assert cur.fetchone() == (senders * runs * 7, senders * runs * 7)
            cur.execute("SELECT count(*) FROM node_executions")
            assert cur.fetchone()[0] == senders * runs * 12
            cur.execute("SELECT count(*) FROM edge_traversals")
            assert cur.fetchone()[0] == senders * runs * 5
            cur.execute("SELECT count(*) FROM dag_runs WHERE status <> 'completed'")
            assert cur.fetchone()[0] == 0
        assert len(store.get_child_runs("s7-r99")) == 6
    finally:
        store.close()


def test_nul_and_unpaired_surrogates_are_rejected_per_span(
    pg_schema_url: Callable[[], str],
) -> None:
    spans = recorded_spans()
    body = json.loads(json_request(spans))
    bad = 0
    for span in body["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for attribute in span["attributes"]:
            if attribute["key"] == "dag.node.label" and attribute["value"]["stringValue"] in (
                "upper",
                "describe",
            ):
                text = attribute["value"]["stringValue"]
                attribute["value"]["stringValue"] = text + (
                    "\u0000" if text == "upper" else "\ud800"
                )
                bad += 1
    with serving(pg_schema_url()) as url:
        answer = httpx.post(
            f"{url}/v1/traces",
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 200
        assert answer.json()["partialSuccess"]["rejectedSpans"] == str(bad)
        with dagtrace.RemoteProvenance(url) as remote:
            assert remote.get_run("run-1")["status"] == "completed"
            stats = remote.stats()
    # 6 node spans and their 6 start markers were rejected; the other 6 nodes are stored
    assert bad == 12 and stats["node_executions"] == 12 - 6
