"""Where a sub-DAG run hangs in its parent run: lythonic's rule, written once.

`inspect_run` (`store/reads.py`, on models) and the run page (`serve/view/tree.py`,
on plain rows) both place sub-runs with these two functions, so the page shows what
`inspect_run` returns.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import NamedTuple

Place = tuple[str, str]
"""(the composite node's label in the parent run, the sub-run's key under it)."""


def nsref_place(nsref: str, parent_nsref: str, parent_labels: Container[str]) -> Place | None:
    """As lythonic finds a sub-run: the key is its nsref past `{parent nsref}/`, the
    node label the key up to its `[` (`chunks[0]` → `chunks`); None if the nsref names
    no node of the parent."""
    prefix = parent_nsref + "/"
    if not nsref.startswith(prefix):
        return None
    key = nsref[len(prefix) :]
    bracket = key.find("[")
    label = key[:bracket] if bracket >= 0 else key
    return (label, key) if label in parent_labels else None


class Linked(NamedTuple):
    """A sub-run whose nsref names no node of its parent, and the node its stored
    `parent_node_label` (`dag.run.parent_node`) names there."""

    run_id: str
    nsref: str
    parent_run_id: str
    label: str


def parent_node_places(children: Iterable[Linked]) -> dict[str, Place]:
    """(node label, key) of sub-runs linked to a composite node by their stored parent
    node: the nsref's last segment if it is `{label}[{key}]`; else `{label}[]` when the
    node has one such sub-DAG (one nsref: restarts replace it); else the run id."""
    places: dict[str, Place] = {}
    linked: dict[tuple[str, str], list[Linked]] = {}
    for child in children:
        tail = child.nsref.rsplit("/", 1)[-1]
        if tail.startswith(child.label + "[") and tail.endswith("]"):
            places[child.run_id] = (child.label, tail)
        else:
            linked.setdefault((child.parent_run_id, child.label), []).append(child)
    for (_, label), group in linked.items():
        single = len({child.nsref for child in group}) == 1
        for child in group:
            places[child.run_id] = (label, f"{label}[]" if single else child.run_id)
    return places
