"""Read models and JSON helpers, field for field those of lythonic's DagProvenance.

All timestamps are timezone-aware UTC datetimes built from REAL epoch seconds.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from pydantic import BaseModel

_M = TypeVar("_M", bound=BaseModel)

_log = logging.getLogger(__name__)


def json_default(obj: Any) -> Any:
    """JSON serialization fallback for Pydantic models and other types."""
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    return str(obj)


def safe_json_dumps(obj: Any) -> str:
    """JSON-serialise `obj`, falling back to its `str()` (with a warning) when that fails."""
    try:
        return json.dumps(obj, default=json_default)
    except Exception:  # noqa: BLE001 - as lythonic: never fail a write over a payload
        _log.warning("Failed to serialize to JSON: %s", type(obj).__name__, exc_info=True)
        return json.dumps(str(obj))


EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_from_epoch = datetime.fromtimestamp


def epoch_to_datetime(epoch: Any) -> datetime | None:
    """REAL epoch seconds as stored → aware UTC datetime (None stays None).

    A value no datetime can show (1e21, -1e21, year 10000 or later, NaN, inf, TEXT a
    file from another tool may hold) is clamped to the datetime range, where lythonic
    raises: one odd row must not take every listing down. `describe_epoch` shows it.
    """
    if epoch is None:
        return None
    try:
        return _from_epoch(epoch, UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return _clamped(epoch)


def _clamped(epoch: Any) -> datetime:
    try:
        value = float(epoch)
    except (TypeError, ValueError):
        return EARLIEST  # text that is no number
    if value != value:  # NaN
        return EARLIEST
    if value > 0:
        return LATEST
    if value < 0:
        return EARLIEST
    return _from_epoch(value, UTC)


def shows_as_datetime(epoch: Any) -> bool:
    """The stored value is a time a datetime shows as is (not clamped)."""
    if epoch is None:
        return True
    try:
        _from_epoch(epoch, UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return False
    return True


def describe_epoch(epoch: Any) -> str:
    """A stored time for people: local date and time, or the raw value when clamped."""
    if epoch is None:
        return "-"
    if not shows_as_datetime(epoch):
        return f"epoch {epoch!r}"
    return _from_epoch(epoch, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def raw_times(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row for JSON, which has no NaN or infinities: those times as the strings
    `NaN`, `Infinity`, `-Infinity` (the raw epoch, not null), the rest unchanged."""
    odd = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
    if not odd:
        return dict(row)
    return {**row, **{k: _NON_FINITE[repr(row[k])] for k in odd}}


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def seconds_between(start: Any, end: Any) -> float | None:
    """`end - start` in seconds when both are stored times datetimes can show."""
    if start is None or end is None or not (shows_as_datetime(start) and shows_as_datetime(end)):
        return None
    return float(end) - float(start)


class EdgeTraversal(BaseModel):
    """Edge traversed during a DAG run. `downstream_label` identifies the target node."""

    downstream_label: str
    traversed_at: datetime


class IoPayload(BaseModel):
    """Input/output JSON payload. Loaded on demand via `load_io()`."""

    input_json: str | None = None
    output_json: str | None = None


class NodeExecution(BaseModel):
    """Execution record for a single node in a DAG run."""

    node_label: str
    status: str
    is_source: bool = False
    is_sink: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    edges: list[EdgeTraversal] = []
    sub_dags: dict[str, DagRun] | None = None
    """Sub-DAG runs of a composite node, keyed by expansion key (`chunks[0]`, `label[]`)."""
    io: IoPayload | None = None


class DagRun(BaseModel):
    """A DAG execution record with nested node executions and edge traversals."""

    run_id: str
    dag_nsref: str
    parent_run_id: str | None = None
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    initiated_by: str | None = None
    nodes: dict[str, NodeExecution] = {}
    io: IoPayload | None = None

    def latest_update(self) -> datetime:
        """The most recent timestamp across all nodes and traversals."""
        candidates: list[datetime] = [self.started_at]
        if self.finished_at:
            candidates.append(self.finished_at)
        for n in self.nodes.values():
            if n.started_at:
                candidates.append(n.started_at)
            if n.finished_at:
                candidates.append(n.finished_at)
            candidates.extend(e.traversed_at for e in n.edges)
        return max(candidates)

    def nodes_changed_since(self, dt: datetime) -> list[NodeExecution]:
        """Nodes whose started_at or finished_at is after `dt`."""
        return [
            n
            for n in self.nodes.values()
            if (n.started_at and n.started_at > dt) or (n.finished_at and n.finished_at > dt)
        ]


NodeExecution.model_rebuild()


def trusted(model: type[_M], fields: dict[str, Any], /) -> _M:
    """Build `model` from `fields`: every field given, values already of the right types.

    For rows of our own schema read back in bulk: `model_construct` minus its
    per-field Python loop, which dominated `inspect_run` on big trees. The result
    equals `model(**fields)` (the compatibility tests compare them field by field).
    All fields are set, so every instance can share one fields-set. (The tree reads
    inline these lines: `store.reads._build`.)
    """
    obj = object.__new__(model)
    set_dict(obj, fields)
    set_fields_set(obj, FIELD_SETS[model])
    set_extra(obj, None)
    set_private(obj, None)
    return obj


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    """What `object.__setattr__(obj, name, value)` does to a model, as `f(obj, value)`:
    the setter of BaseModel's own slot, called directly (about 30% cheaper per model
    than `object.__setattr__`, which looks the name up first); or, should a pydantic
    release have no such slot, `object.__setattr__` itself."""
    descriptor = BaseModel.__dict__.get(name)
    setter = getattr(descriptor, "__set__", None)
    if setter is None:
        return lambda obj, value: object.__setattr__(obj, name, value)
    return cast(Callable[[Any, Any], None], setter)


set_dict = _slot_setter("__dict__")
set_fields_set = _slot_setter("__pydantic_fields_set__")
set_extra = _slot_setter("__pydantic_extra__")
set_private = _slot_setter("__pydantic_private__")
SLOT_SETTERS = (set_dict, set_fields_set, set_extra, set_private)
FIELD_SETS: dict[type[BaseModel], set[str]] = {
    m: set(m.model_fields) for m in (DagRun, NodeExecution, EdgeTraversal, IoPayload)
}
