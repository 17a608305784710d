"""A stand-in for Jaeger's OTLP/gRPC port: a real gRPC receiver process.

    python otlp_grpc_receiver.py OUT.jsonl

Prints `READY <port>` once listening on a free loopback port and appends one JSON
line per received span (ids as hex, name, parent), as otlp_receiver.py does.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out_path: str) -> None:
        self.out_path = out_path
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        with self.lock, open(self.out_path, "a", encoding="utf-8") as out:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.write(
                            json.dumps(
                                {
                                    "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "parent_span_id": span.parent_span_id.hex() or None,
                                    "name": span.name,
                                }
                            )
                            + "\n"
                        )
        return trace_service_pb2.ExportTraceServiceResponse()


if __name__ == "__main__":
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(sys.argv[1]), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"READY {port}", flush=True)
    server.wait_for_termination()
