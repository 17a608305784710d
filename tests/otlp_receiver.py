"""A stand-in for Jaeger (which cannot run here): a real OTLP/HTTP receiver process.

    python otlp_receiver.py OUT.jsonl [BUSY RETRY_AFTER]

Listens on a free loopback port, prints `READY <port>` once listening, and appends
one JSON line per received span (ids as hex, name, parent, attributes' dag.* keys).
With BUSY, the first BUSY requests get 503 with `Retry-After: RETRY_AFTER` instead,
each noted as a line `{"refused_at": epoch seconds}`.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Handler(BaseHTTPRequestHandler):
    out_path = ""
    busy = 0
    retry_after = "0"
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Handler.lock:
            refuse = Handler.busy > 0
            Handler.busy -= refuse
        if refuse:
            with open(self.out_path, "a", encoding="utf-8") as out:
                out.write(json.dumps({"refused_at": time.time()}) + "\n")
            self.send_response(503)
            self.send_header("Retry-After", Handler.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        with open(self.out_path, "a", encoding="utf-8") as out:
            for resource_spans in request.resource_spans:
                service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attrs = {
                            a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value")
                            for a in span.attributes
                            if a.key.startswith("dag.")
                            and a.value.WhichOneof("value") != "array_value"
                        }
                        out.write(
                            json.dumps(
                                {
                                    "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "parent_span_id": span.parent_span_id.hex() or None,
                                    "name": span.name,
                                    "service": service.get("service.name"),
                                    "attributes": attrs,
                                    "links": [
                                        [link.trace_id.hex(), link.span_id.hex()]
                                        for link in span.links
                                    ],
                                }
                            )
                            + "\n"
                        )
        payload = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    Handler.out_path = sys.argv[1]
    if len(sys.argv) > 2:
        Handler.busy, Handler.retry_after = int(sys.argv[2]), sys.argv[3]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()
