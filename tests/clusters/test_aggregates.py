"""A cluster's aggregates, however they are cached between folds, equal those computed from
scratch over its nodes as they are, by a plain model of their definition: best value of each
summary column over the ready nodes, the nodes at the top by free capacity in whole points
(in the cluster's order), the least room for planning of each resource, the shape of the
ready nodes, how many they are and whether any is tainted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gsch.clusters.aggregates import (
    EMPTY_SHAPE,
    NO_NODES,
    Aggregates,
    NodeSummary,
    aggregate,
    shape_of,
    summarise,
)
from gsch.clusters.snapshot import ClusterSnapshot, ClusterView
from gsch.model.events import (
    AnyEvent,
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    NodeDeclared,
    Taint,
)
from gsch.model.resources import Resources

GI = 2**30
NODES = ("a", "b", "c", "d", "e")


def model_aggregates(cluster: ClusterView) -> Aggregates:
    """The definition, spelled out over the nodes as they are now."""
    ready = sorted(
        (n for n in cluster.nodes.values() if n.declared and n.ready), key=lambda n: n.name
    )
    if not ready:
        return NO_NODES
    summaries = [summarise(n.allocatable, n.held, n.confirmed_free) for n in ready]
    names = [n.name for n in ready]
    column = list(zip(*summaries, strict=True))
    top = max(column[3])
    free = [n.allocatable - n.held for n in ready]
    return Aggregates(
        free_cpu=max(column[0]),
        free_memory=max(column[1]),
        free_gpus=max(column[2]),
        free_sum=top,
        used_mean_high=max(column[4]),
        used_mean_low=min(column[4]),
        balance_low=min(column[5]),
        balance_high=max(column[5]),
        max_free=Resources(max(column[6]), max(column[7]), max(column[8]), max(column[9])),
        shape=shape_of([n.allocatable for n in ready]),
        free_sum_top=tuple(
            name
            for name, s in zip(names, summaries, strict=True)
            if round(s.free_sum) == round(top)
        ),
        least_room=Resources(
            min(f.cpu_m for f in free),
            min(f.memory for f in free),
            min(f.gpu for f in free),
            min(f.pods for f in free),
        ),
        ready_nodes=len(ready),
        tainted=any(n.taints for n in ready),
    )


def declared(
    node: str, cpu: int, memory: int, gpu: int, ready: bool, tainted: bool = False
) -> NodeDeclared:
    allocatable = Resources(cpu * 1000, memory * GI, gpu, 110)
    taints = (Taint("maint", "NoSchedule"),) if tainted else ()
    return NodeDeclared(
        at=0, cluster="c", node=node, allocatable=allocatable, ready=ready, taints=taints
    )


def reserved(node: str, request: int, cpu: int) -> CapacityReserved:
    amount = Resources(cpu, GI // 4, 0, 1)
    return CapacityReserved(
        at=0, cluster="c", node=node, request_id=f"r{request}", attempt=1, amount=amount
    )


def released(node: str, request: int) -> CapacityReleased:
    return CapacityReleased(
        at=0, cluster="c", node=node, request_id=f"r{request}", attempt=1, reason="done"
    )


# Few sizes and amounts, so nodes often tie (at the top too) and a redeclared node changes
# the cluster's shape or leaves the ready set.
nodes = st.sampled_from(NODES)
requests = st.integers(0, 5)
declarations = st.builds(
    declared, nodes, st.sampled_from((2, 4, 8)), st.sampled_from((4, 8)),
    st.sampled_from((0, 1)), st.booleans(), st.sampled_from((False, False, True)),
)  # fmt: skip
reservations = st.builds(reserved, nodes, requests, st.sampled_from((250, 500, 1000)))
releases = st.builds(released, nodes, requests)
# None: a plan reads the aggregates here (what fills the caches between folds).
steps = st.lists(st.one_of(declarations, reservations, releases, st.none()), max_size=40)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_aggregates_read_between_folds_equal_the_model(events: list[AnyEvent | None]) -> None:
    snapshot = ClusterSnapshot()
    snapshot.apply(ClusterDeclared(at=0, cluster="c", tier="edge", ready=True), 1)
    for seq, event in enumerate(events, start=2):
        if event is None:
            assert snapshot.clusters["c"].aggregates == model_aggregates(snapshot.clusters["c"])
        else:
            snapshot.apply(event, seq)
    assert snapshot.clusters["c"].aggregates == model_aggregates(snapshot.clusters["c"])


def test_a_node_leaving_the_ready_set_leaves_the_aggregates_and_the_shape() -> None:
    """The ready nodes and their shape are kept between reservations: a node declared again
    (not ready, or of another size) must still change them."""
    snapshot = ClusterSnapshot()
    snapshot.apply(ClusterDeclared(at=0, cluster="c", tier="edge", ready=True), 1)
    big = Resources(16_000, 64 * GI, 0, 110)
    small = Resources(2_000, 4 * GI, 0, 110)
    snapshot.apply(NodeDeclared(at=0, cluster="c", node="big", allocatable=big, ready=True), 2)
    snapshot.apply(NodeDeclared(at=0, cluster="c", node="small", allocatable=small, ready=True), 3)
    cluster = snapshot.clusters["c"]
    assert cluster.aggregates.free_sum_top == ("big", "small")  # both empty: tied
    assert cluster.aggregates.shape.cpu == (2_000, 16_000)
    snapshot.apply(NodeDeclared(at=0, cluster="c", node="big", allocatable=big, ready=False), 4)
    assert cluster.aggregates.max_free == small
    assert cluster.aggregates.shape.cpu == (2_000, 2_000)
    assert cluster.aggregates.free_sum_top == ("small",)


def test_the_nodes_at_the_top_are_those_the_planner_s_rounding_puts_there() -> None:
    """Whole points as the planner rounds scores (half to even): 186.5 is 186, below the
    187 that 187.25 and 186.75 make."""
    sums = {"a": 187.25, "b": 186.5, "c": 186.75}
    summaries = [
        NodeSummary(value / 2, value / 2, 0, value, 0.5, 0.0, 1, 1, 0, 1, 1, 1, 0, 1)
        for value in sums.values()
    ]
    found = aggregate(summaries, list(sums), EMPTY_SHAPE, tainted=False)
    assert found.free_sum_top == ("a", "c")
