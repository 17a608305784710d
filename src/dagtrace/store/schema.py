"""The provenance schema: lythonic 0.0.28's tables verbatim, plus dagtrace's extras.

lythonic's DDL (tables, columns, types, primary keys) is normative, so a file
either library writes opens in the other. dagtrace adds only nullable columns,
indexes and tables of its own (`dagtrace_*`); lythonic ignores all three.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import StoreError

if TYPE_CHECKING:
    from .writer import Cursor, Dialect

SCHEMA_VERSION = 10
"""Bumped whenever a migration step is added below."""

DAG_RUNS_DDL = """\
CREATE TABLE IF NOT EXISTS dag_runs (
    run_id TEXT PRIMARY KEY,
    dag_nsref TEXT NOT NULL,
    parent_run_id TEXT,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    source_inputs_json TEXT,
    sink_outputs_json TEXT,
    initiated_by TEXT,
    FOREIGN KEY (parent_run_id) REFERENCES dag_runs(run_id)
)"""

NODE_EXECUTIONS_DDL = """\
CREATE TABLE IF NOT EXISTS node_executions (
    run_id TEXT NOT NULL,
    node_label TEXT NOT NULL,
    status TEXT NOT NULL,
    is_source INTEGER DEFAULT 0,
    is_sink INTEGER DEFAULT 0,
    input_json TEXT,
    output_json TEXT,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    PRIMARY KEY (run_id, node_label),
    FOREIGN KEY (run_id) REFERENCES dag_runs(run_id)
)"""

EDGE_TRAVERSALS_DDL = """\
CREATE TABLE IF NOT EXISTS edge_traversals (
    run_id TEXT NOT NULL,
    upstream_label TEXT NOT NULL,
    downstream_label TEXT NOT NULL,
    traversed_at REAL NOT NULL,
    PRIMARY KEY (run_id, upstream_label, downstream_label),
    FOREIGN KEY (run_id) REFERENCES dag_runs(run_id)
)"""

META_DDL = "CREATE TABLE IF NOT EXISTS dagtrace_meta (key TEXT PRIMARY KEY, value TEXT)"

SPAN_PARENTS_DDL = """\
CREATE TABLE IF NOT EXISTS dagtrace_span_parents (
    span_id TEXT PRIMARY KEY,
    parent_span_id TEXT NOT NULL,
    seen_at REAL NOT NULL
)"""
"""Schema 6: non-DAG spans (an HTTP span inside a node) and their OTel parents, the
links a sub-DAG run's parent is found through (`_parents`); dropped after a day."""

PARENT_SEARCH_DDL = """\
CREATE TABLE IF NOT EXISTS dagtrace_parent_search (
    run_id TEXT NOT NULL,
    preference INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    look_for TEXT,
    seen_at REAL NOT NULL,
    PRIMARY KEY (run_id, preference)
)"""
"""Schema 6: sub-DAG runs naming no parent: `look_for` is the span their search waits
for (0: through the OTel parent, 1…: through their span links), NULL once their parent
was inferred that way (an explicit parent still beats it); dropped after a day."""

TABLE_DDLS = (
    DAG_RUNS_DDL,
    NODE_EXECUTIONS_DDL,
    EDGE_TRAVERSALS_DDL,
    META_DDL,
    SPAN_PARENTS_DDL,
    PARENT_SEARCH_DDL,
)
TABLES = (
    "dag_runs",
    "node_executions",
    "edge_traversals",
    "dagtrace_meta",
    "dagtrace_span_parents",
    "dagtrace_parent_search",
)
"""The tables `TABLE_DDLS` create: what migrations, VACUUM ANALYZE and size counts cover."""

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "dag_runs": (
        "run_id",
        "dag_nsref",
        "parent_run_id",
        "status",
        "started_at",
        "finished_at",
        "source_inputs_json",
        "sink_outputs_json",
    ),
    "node_executions": (
        "run_id",
        "node_label",
        "status",
        "is_source",
        "is_sink",
        "input_json",
        "output_json",
        "started_at",
        "finished_at",
        "error",
    ),
    "edge_traversals": ("run_id", "upstream_label", "downstream_label", "traversed_at"),
}
"""Columns every version of the schema has; a table without them cannot be migrated."""

RUN_ROW = (*REQUIRED_COLUMNS["dag_runs"], "initiated_by")
"""A run row as lythonic's `get_run` returns it, key for key."""
NODE_ROW = REQUIRED_COLUMNS["node_executions"]
"""A node row as lythonic's `get_node_executions` returns it, key for key."""

ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "dag_runs": (
        ("initiated_by", "TEXT"),  # lythonic 0.0.28; older files lack it
        ("trace_id", "TEXT"),  # OTel trace id (32 hex), links a run to its Jaeger trace
        ("span_id", "TEXT"),  # OTel span id (16 hex) of the run span
        ("attempt", "INTEGER"),  # dag.attempt of the latest attempt seen
        ("phase", "INTEGER"),  # 0 started, 1 ended, 2 closed (see _mapping)
        ("parent_node_label", "TEXT"),  # composite node of the parent run
        ("replay_of_run_id", "TEXT"),  # lineage: the run this one replays
        ("replay_root_run_id", "TEXT"),  # lineage: the first run of the replay chain
        ("close_reason", "TEXT"),  # why a run was closed without its runner
        ("payload_error", "TEXT"),  # a payload cut on the way, stored as NULL
        ("heartbeat_at", "REAL"),  # the runner's last sign of life (dag.heartbeat)
        # the newest write of each column group (_writer.row_version), schema 5
        ("span_version", "BLOB"),
        ("status_version", "BLOB"),
        ("finish_version", "BLOB"),
        ("outputs_version", "BLOB"),
    ),
    "node_executions": (
        ("trace_id", "TEXT"),
        ("span_id", "TEXT"),
        ("attempt", "INTEGER"),
        ("phase", "INTEGER"),
        ("payload_error", "TEXT"),
        ("span_version", "BLOB"),
        ("status_version", "BLOB"),
        ("output_version", "BLOB"),
        ("error_version", "BLOB"),
        ("input_version", "BLOB"),
    ),
}
"""Nullable columns added to existing tables when missing, in this order."""

INDEXES = (
    "CREATE INDEX IF NOT EXISTS dagtrace_runs_started ON dag_runs (started_at)",
    "CREATE INDEX IF NOT EXISTS dagtrace_runs_status_started ON dag_runs (status, started_at)",
    # child runs, and top-level runs newest first without sorting them all
    "CREATE INDEX IF NOT EXISTS dagtrace_runs_parent_started "
    "ON dag_runs (parent_run_id, started_at)",
    "CREATE INDEX IF NOT EXISTS dagtrace_runs_replay_of ON dag_runs (replay_of_run_id)",
    # schema 6: the parent search (`_parents`)
    "CREATE INDEX IF NOT EXISTS dagtrace_parent_search_look_for "
    "ON dagtrace_parent_search (look_for)",
    "CREATE INDEX IF NOT EXISTS dagtrace_parent_search_seen ON dagtrace_parent_search (seen_at)",
    "CREATE INDEX IF NOT EXISTS dagtrace_span_parents_seen ON dagtrace_span_parents (seen_at)",
    # schema 7: the web view's runs of one nsref, newest first (a node's history)
    "CREATE INDEX IF NOT EXISTS dagtrace_runs_nsref_started ON dag_runs (dag_nsref, started_at)",
    # schema 8: top-level runs finished lately (`runs_changed_since`, `dagtrace tail`)
    "CREATE INDEX IF NOT EXISTS dagtrace_runs_parent_finished "
    "ON dag_runs (parent_run_id, finished_at)",
    # schema 9: which node a span is, for the parent search; by trace first, so the node
    # spans of a batch, which share few traces, go into a few leaf pages of the index
    # (by span id alone, each one went into a page of its own, dirtied and written again)
    "CREATE INDEX IF NOT EXISTS dagtrace_nodes_trace_span ON node_executions (trace_id, span_id)",
)
"""What the reads filter and sort on: recent, by status, child runs, replays of a run;
and what the parent search of sub-DAG runs looks up (schema 6); runs of one nsref by
start (schema 7: the web view's node history, the previous run of an nsref); top-level
runs by finish (schema 8: what changed lately); node spans by trace and span id (schema 9,
in place of schema 6's by span id)."""

RETIRED_INDEXES = ("dagtrace_runs_parent", "dagtrace_nodes_span")
"""Indexes of older versions that a newer one covers: the migration drops them."""


def version(cur: Cursor, dialect: Dialect) -> int:
    """The schema version stored in the database; 0 for a lythonic file or none."""
    if "value" not in dialect.table_columns(cur, "dagtrace_meta"):
        return 0
    cur.execute("SELECT value FROM dagtrace_meta WHERE key = 'schema_version'")
    row = cur.fetchone()
    return int(row[0]) if row else 0


def migrate(cur: Cursor, dialect: Dialect, location: str) -> None:
    """Create or upgrade the schema to `SCHEMA_VERSION`, for every backend: called
    inside a transaction that holds the backend's schema lock. Idempotent: a step
    another process already took is skipped."""
    if version(cur, dialect) >= SCHEMA_VERSION:
        return
    for ddl in TABLE_DDLS:
        cur.execute(dialect.ddl(ddl))
    for table, required in REQUIRED_COLUMNS.items():
        present = dialect.table_columns(cur, table)
        missing = [c for c in required if c not in present]
        if missing:
            raise StoreError(
                f"cannot migrate: table {table} lacks {', '.join(missing)}; "
                "this database was not written by lythonic or dagtrace",
                location=location,
            )
        for column, decl in ADDED_COLUMNS.get(table, ()):
            if column not in present:
                cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {dialect.ddl(decl)}")
    for table in TABLES:  # schema 10; before new indexes, built once in the new order
        dialect.text_bytewise(cur, table)
    for ddl in INDEXES:
        cur.execute(ddl)
    for index in RETIRED_INDEXES:
        cur.execute(f"DROP INDEX IF EXISTS {index}")
    cur.execute(
        "INSERT INTO dagtrace_meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )
