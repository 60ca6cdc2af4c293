"""Whether a request could ever be placed: a demand no node of its candidate clusters could
hold even when empty is not worth waiting for (parking it would hold it for ever), so its
attempt fails it at once, with that reason."""

from __future__ import annotations

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.model.request import Request, is_selector, selector_requirements
from gsch.model.resources import Resources, resource_max


def _candidate_clusters(request: Request, snapshot: ClusterSnapshot) -> set[str]:
    names: set[str] = set()
    for level in request.levels:
        for entry in level:
            if is_selector(entry):
                names.update(snapshot.select(selector_requirements(entry)))
            else:
                names.add(entry)
    return names


def never_fits(request: Request, snapshot: ClusterSnapshot) -> str | None:
    """The reason the request can never be placed on what the snapshot knows, or None when
    it might: every candidate cluster is known and has nodes, and none of those nodes (the
    pinned one only, for a pinned request) could hold the demand with nothing else on it.
    A cluster not declared yet, or without nodes yet, might still bring room: None."""
    largest: Resources | None = None
    for name in _candidate_clusters(request, snapshot):
        cluster = snapshot.clusters.get(name)
        if cluster is None or not cluster.declared or not cluster.nodes:
            return None
        for node in cluster.nodes.values():
            if request.select_node is not None and node.name != request.select_node:
                continue
            if not node.declared or request.demand.fits_in(node.allocatable):
                return None
            allocatable = node.allocatable
            largest = allocatable if largest is None else resource_max(largest, allocatable)
    if largest is None:
        return None
    short = _shortfalls(request.demand, largest) or ["no one node has all it asks for at once"]
    return "no node of its clusters could hold it even when empty: " + ", ".join(short)


def _shortfalls(demand: Resources, most: Resources) -> list[str]:
    amounts = (
        ("cpu", demand.cpu_m, most.cpu_m, "m"),
        ("memory", demand.memory, most.memory, " bytes"),
        ("nvidia.com/gpu", demand.gpu, most.gpu, ""),
        ("pods", demand.pods, most.pods, ""),
    )
    return [
        f"{name} {needed}{unit} asked, at most {largest}{unit} on any node"
        for name, needed, largest, unit in amounts
        if needed > largest
    ]
