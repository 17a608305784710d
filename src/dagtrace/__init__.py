"""dagtrace: an OpenTelemetry-bridged provenance store for DAG runs.

`DagProvenance` is a drop-in for lythonic's: same methods, same SQLite schema,
faster and safe across threads and processes.
"""

from ._errors import DagtraceError, StoreError
from ._initiator import SCHEDULER, initiated_by, run_initiator
from ._models import DagRun, EdgeTraversal, IoPayload, NodeExecution, json_default, safe_json_dumps
from ._provenance import DagProvenance, NullProvenance, open_store
from ._sqlite import Durability, SqliteStore
from ._store import Store, Writer

__all__ = [
    "SCHEDULER",
    "DagProvenance",
    "DagRun",
    "DagtraceError",
    "Durability",
    "EdgeTraversal",
    "IoPayload",
    "NodeExecution",
    "NullProvenance",
    "SqliteStore",
    "Store",
    "StoreError",
    "Writer",
    "initiated_by",
    "json_default",
    "open_store",
    "run_initiator",
    "safe_json_dumps",
]
