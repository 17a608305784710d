"""dagtrace: an OpenTelemetry-bridged provenance store for DAG runs.

`DagProvenance` is a drop-in for lythonic's: same methods, same SQLite schema,
faster and safe across threads and processes.
"""

__version__ = "0.1.0"

from . import conventions
from ._configure import DagRecordingSampler, DagtraceTracerProvider, configure
from ._handles import NodeHandle, RunHandle
from ._initiator import SCHEDULER, initiated_by, run_initiator
from ._instrument import DagTracer
from ._models import DagRun, EdgeTraversal, IoPayload, NodeExecution, json_default, safe_json_dumps
from ._provenance import DagProvenance, NullProvenance, ProvenanceReads
from ._redact import Redaction
from ._remote import RemoteProvenance
from ._render import render_run_tree
from .bridge import BridgeStats, DagtraceSpanExporter, LiveSpanProcessor
from .exceptions import (
    DagPaused,
    DagtraceError,
    NotFoundError,
    NotReusableError,
    SpanRejected,
    StoreError,
)
from .records import ProvenanceReader, StoreReader
from .store import Durability, ReplayPlan, SqliteStore, Store, Writer, open_store

__all__ = [
    "SCHEDULER",
    "BridgeStats",
    "DagPaused",
    "DagProvenance",
    "DagRecordingSampler",
    "DagRun",
    "DagTracer",
    "DagtraceError",
    "DagtraceSpanExporter",
    "DagtraceTracerProvider",
    "Durability",
    "EdgeTraversal",
    "IoPayload",
    "LiveSpanProcessor",
    "NodeExecution",
    "NodeHandle",
    "NotFoundError",
    "NotReusableError",
    "NullProvenance",
    "ProvenanceReader",
    "ProvenanceReads",
    "Redaction",
    "RemoteProvenance",
    "ReplayPlan",
    "RunHandle",
    "SpanRejected",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreReader",
    "Writer",
    "__version__",
    "configure",
    "conventions",
    "initiated_by",
    "json_default",
    "open_store",
    "render_run_tree",
    "run_initiator",
    "safe_json_dumps",
]
