"""The OpenTelemetry bridge: SDK spans in, provenance rows out, in the traced process.

    spans.py      an SDK span → a span record (through the one mapping, `_mapping`)
    processor.py  `LiveSpanProcessor`: writes as spans start and end
    exporter.py   `DagtraceSpanExporter`: writes batches of ended spans;
                  `RedactingSpanExporter`: redacted copies for an OTLP exporter
    problems.py   `BridgeStats` and how failures are counted, logged or re-raised

Neither ever raises into the traced program: store failures and rejected spans are
logged and counted in `stats` (and in the store, for `dagtrace stats`); anything else
is a bug, logged with its traceback and counted as `bugs` (re-raised when
`DAGTRACE_STRICT` is set). Serve's receiver maps OTLP spans through the same mapping
(`dagtrace.serve`).
"""

from ..exceptions import is_bug
from .exporter import DagtraceSpanExporter, RedactingSpanExporter
from .problems import BridgeStats, report_bug
from .processor import LiveSpanProcessor
from .spans import record_from_sdk_span

__all__ = [
    "BridgeStats",
    "DagtraceSpanExporter",
    "LiveSpanProcessor",
    "RedactingSpanExporter",
    "is_bug",
    "record_from_sdk_span",
    "report_bug",
]
