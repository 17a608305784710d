"""dagtrace: an OpenTelemetry-bridged provenance store for DAG runs.

`DagProvenance` is a drop-in for lythonic's: same methods, same SQLite schema,
faster and safe across threads and processes.
"""

__version__ = "0.1.0"

from . import conventions
from ._bridge import BridgeStats, DagtraceSpanExporter, LiveSpanProcessor
from ._configure import DagRecordingSampler, DagtraceTracerProvider, configure
from ._initiator import SCHEDULER, initiated_by, run_initiator
from ._instrument import DagTracer, NodeHandle, RunHandle
from ._models import DagRun, EdgeTraversal, IoPayload, NodeExecution, json_default, safe_json_dumps
from ._provenance import DagProvenance, NullProvenance, ProvenanceReads, open_store
from ._redact import Redaction
from ._remote import RemoteProvenance
from ._sqlite import Durability, SqliteStore
from ._store import ReplayPlan, Store
from ._writer import Writer
from .exceptions import (
    DagPaused,
    DagtraceError,
    NotFoundError,
    NotReusableError,
    SpanRejected,
    StoreError,
)

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
    "ProvenanceReads",
    "Redaction",
    "RemoteProvenance",
    "ReplayPlan",
    "RunHandle",
    "SpanRejected",
    "SqliteStore",
    "Store",
    "StoreError",
    "Writer",
    "__version__",
    "configure",
    "conventions",
    "initiated_by",
    "json_default",
    "open_store",
    "run_initiator",
    "safe_json_dumps",
]
