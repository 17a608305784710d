"""Span names, attribute keys and event names by which DAG runs travel as OpenTelemetry spans.

`docs/conventions.md` is the contract in prose; these constants are the same
contract for code. dagtrace recognises a DAG span by `dag.kind`, never by its
name, so a runner instrumented by hand may name spans as it likes.
"""

from __future__ import annotations

from typing import Final

# -- span names (low-cardinality: ids and expansion keys go in attributes) ----------
RUN_SPAN_NAME: Final = "dag.run"
NODE_SPAN_NAME_PREFIX: Final = "dag.node "
"""Node spans are named `dag.node {label}`; labels are part of the DAG, not of the data."""
START_MARKER_SPAN_NAME: Final = "dag.start"
"""The zero-length child span emitted when a run or node starts."""
CHANGE_SPAN_NAME: Final = "dag.change"
"""The zero-length span that changes an existing run or node (see `CHANGE`)."""
HEARTBEAT_SPAN_NAME: Final = "dag.heartbeat"
"""A zero-length child of an open run span, emitted periodically while its runner lives."""

# -- what a span is --------------------------------------------------------------------
KIND: Final = "dag.kind"
"""`run` or `node`. Required: spans without it are not DAG spans and are ignored."""
KIND_RUN: Final = "run"
KIND_NODE: Final = "node"
START_MARKER: Final = "dag.start_marker"
"""`true` on a start marker: the run or node it describes has started, not ended."""
HEARTBEAT: Final = "dag.heartbeat"
"""`true` on a heartbeat span (with `dag.kind=run` and `dag.run.id`): the runner lives."""

# -- on every DAG span -----------------------------------------------------------------
RUN_ID: Final = "dag.run.id"
"""Required on run and node spans: the run the span belongs to."""
ATTEMPT: Final = "dag.attempt"
"""1 for a run's first execution, +1 per restart of the same run id. Default 1."""
STATUS: Final = "dag.status"
"""Explicit status (`completed`, `failed`, `paused`, `skipped`); beats the span status."""

CHANGE: Final = "dag.change"
"""On a zero-length change span: what it changes in an existing run or node row.
`status` sets only the status (lythonic's `update_run_status`); `finish` sets the status
and finished_at, and a run's sink outputs, a completed node's output or a failed node's
error (lythonic's `finish_run`, `complete_node_with_edges`, `fail_node_and_finish_run`)."""
CHANGE_STATUS: Final = "status"
CHANGE_FINISH: Final = "finish"

# -- run spans -------------------------------------------------------------------------
NSREF: Final = "dag.nsref"
"""Required on run spans: the DAG's nsref; sub-DAG runs `{parent nsref}/{label}[{key}]`."""
RUN_INPUTS: Final = "dag.run.inputs"
"""Source inputs, a JSON string."""
RUN_OUTPUTS: Final = "dag.run.outputs"
"""Sink outputs, a JSON string, set before the run span ends."""
INITIATOR: Final = "dag.run.initiator"
PARENT_RUN_ID: Final = "dag.run.parent_id"
"""On a sub-DAG run span: the parent run. Falls back to the OTel parent or a link."""
PARENT_NODE: Final = "dag.run.parent_node"
"""On a sub-DAG run span: the composite node's label in the parent run."""
REPLAY_OF: Final = "dag.replay.of"
"""On a replay's run span: the run id it replays."""
REPLAY_ROOT: Final = "dag.replay.root"
"""On a replay's run span: the first run of the replay chain."""
CLOSE_REASON: Final = "dag.run.close_reason"
"""Why a run was closed without its runner (e.g. `interrupted: runner died`)."""

# -- node spans ------------------------------------------------------------------------
NODE_LABEL: Final = "dag.node.label"
IS_SOURCE: Final = "dag.node.is_source"
IS_SINK: Final = "dag.node.is_sink"
NODE_INPUT: Final = "dag.node.input"
"""The node's inputs, a JSON string."""
NODE_OUTPUT: Final = "dag.node.output"
"""The node's output, a JSON string, set before the node span ends."""

LENGTH_SUFFIX: Final = ".length"
"""`{payload key}.length`: UTF-8 byte length of the JSON payload as written.

A stored value shorter than this was cut by `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`:
dagtrace stores NULL for it (so restart re-executes the node) and says why in
`payload_error`, never a truncated JSON as if whole.
"""

REDACTED: Final = "dag.redacted"
"""`true` when a redaction policy changed this span's payloads on the way: a dagtrace
store downstream keeps them, if at all, as not reusable for restart or replay."""

ERROR: Final = "dag.error"
"""On a failed run or node span: the error text (the formatted stack trace), with
`dag.error.length`, its UTF-8 byte length. Stored as is when whole; when cut (or without
a length) the `exception` event decides. The helpers send it beside the event."""

# -- edge traversals -----------------------------------------------------------------
EDGE_EVENT: Final = "dag.edge"
"""A span event on the upstream node span; its timestamp is `traversed_at`."""
EDGE_DOWNSTREAM: Final = "dag.edge.downstream"
"""On a `dag.edge` event: one downstream label, or an array of them (one event per batch:
the SDK keeps only the newest 128 events of a span)."""

# -- standard names used where they fit ------------------------------------------------
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_TYPE: Final = "exception.type"
ERROR_TYPE: Final = "error.type"

STATUSES: Final = frozenset({"running", "completed", "failed", "paused", "skipped"})
