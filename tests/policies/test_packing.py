"""GBinPackPriority's fewest nodes keeps the fleet's largest empty node back for the requests
that need it: small requests open the next largest, a large one still gets it, and nothing
that only it can take is refused. The index of empty nodes it reads is kept current by the
fold, and large levels searched with the rule choose what a scan chooses."""

from __future__ import annotations

import msgspec

from gsch.clusters.empty_nodes import SLACK
from gsch.clusters.snapshot import ClusterSnapshot
from gsch.model.events import (
    AnyEvent,
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    Placement,
    Taint,
)
from gsch.model.request import Policy, Request
from gsch.model.resources import Resources
from gsch.policies.framework import Decision, plan
from gsch.policies.packing import KEEP_BACK_COPIES, kept_back
from gsch.policies.registry import PROFILES
from tests.support.planning import GI, chosen, cluster, node, request, searching_from, snapshot_of

PACK = PROFILES[Policy.BIN_PACK]


def fleet() -> list[AnyEvent]:
    """A 64-core node, a 16-core one and a 4-core one, each in a cluster of its own."""
    return [
        cluster("a"),
        node("a", "big", cpu=64, memory_gi=256),
        cluster("b"),
        node("b", "mid", cpu=16, memory_gi=64),
        cluster("c"),
        node("c", "small", cpu=4, memory_gi=16),
    ]


def packing(
    cpu: float,
    memory_gi: float,
    gpu: int = 0,
    request_id: str = "req-1",
    level: tuple[str, ...] = ("a", "b", "c"),
) -> Request:
    made = request((level,), cpu=cpu, memory_gi=memory_gi, gpu=gpu, policy=Policy.BIN_PACK)
    return msgspec.structs.replace(made, request_id=request_id)


def notes(decision: Decision) -> str:
    return " ".join(decision.explanation.levels[0].notes.values())


def test_small_requests_open_the_next_largest_node_and_the_explanation_says_why() -> None:
    snapshot = snapshot_of(fleet())
    # mid holds 16 copies of a 1-core request: the biggest node is left for larger ones.
    small = plan(PACK, packing(1, 2), snapshot)
    assert chosen(small) == "b/mid"
    assert "kept back a/big, the fleet's largest empty node (64 cores, 256 GiB free)" in notes(
        small
    )
    assert "b/mid, holds this request 16 times over" in notes(small)
    # mid holds a 4-core request only 4 times (fewer than 5): it opens the biggest node.
    assert KEEP_BACK_COPIES == 5
    larger = plan(PACK, packing(4, 8), snapshot)
    assert chosen(larger) == "a/big"
    assert "kept back" not in notes(larger)
    # A request only big can hold goes there.
    assert chosen(plan(PACK, packing(32, 128), snapshot)) == "a/big"


def test_the_kept_node_still_takes_what_no_other_node_can() -> None:
    """Keeping back is a preference, never a filter: the next largest node is tainted against
    the request, so the kept node is the only one left, and it is used."""
    snapshot = snapshot_of(
        [
            cluster("a"),
            node("a", "big", cpu=64, memory_gi=256),
            node("a", "mid", cpu=32, memory_gi=128, taints=(Taint("dedicated", "NoSchedule"),)),
        ]
    )
    wanted = packing(4, 8, level=("a",))
    assert kept_back(wanted, snapshot) is not None  # mid holds it 8 times over
    assert chosen(plan(PACK, wanted, snapshot)) == "a/big"


def test_nodes_in_use_still_come_first_and_equal_largest_nodes_are_not_kept_back() -> None:
    snapshot = snapshot_of(fleet())
    reserve(snapshot, "b", "mid", Resources(15_000, 8 * GI, 0, 1))
    # mid is in use now: the largest empty nodes are big and small; small holds 16 copies of
    # a quarter core, but mid, in use, takes it first (best fit).
    assert chosen(plan(PACK, packing(0.25, 0.25), snapshot)) == "b/mid"
    assert [n.name for n in snapshot.largest_empty(False, 3)] == ["big", "small"]
    # Two equal largest nodes: keeping one back keeps nothing (the other is as big).
    twins = snapshot_of([*fleet(), cluster("d"), node("d", "big2", cpu=64, memory_gi=256)])
    assert kept_back(packing(1, 2), twins) is None


def test_gpu_requests_keep_back_the_largest_gpu_node_and_others_hear_gpus_are_held() -> None:
    snapshot = snapshot_of(
        [
            *fleet(),
            cluster("g"),
            node("g", "gpu8", cpu=64, memory_gi=256, gpu=8),
            node("g", "gpu4", cpu=32, memory_gi=128, gpu=4),
        ]
    )
    # Without GPUs: the GPU nodes are no candidates to keep back (they are held back anyway).
    without = packing(1, 2)
    found = kept_back(without, snapshot)
    assert found is not None
    assert found[0].name == "big"
    decision = plan(PACK, without, snapshot)
    assert chosen(decision) == "b/mid"
    assert "empty GPU nodes (the largest g/gpu8) are opened only when" in notes(decision)
    # With one GPU: gpu4 holds it 4 times (its GPUs), fewer than 5: gpu8 is opened.
    one_gpu = packing(1, 2, gpu=1, level=("a", "b", "c", "g"))
    assert kept_back(one_gpu, snapshot) is None
    decision = plan(PACK, one_gpu, snapshot)
    assert chosen(decision) == "g/gpu8"
    assert "GPU nodes" not in notes(decision)
    # With six GPUs on the smaller node it holds 6: gpu8 is kept back.
    snapshot.apply(node("g", "gpu4", cpu=32, memory_gi=128, gpu=6), snapshot.last_seq + 1)
    found = kept_back(one_gpu, snapshot)
    assert found is not None
    assert found[0].name == "gpu8"
    assert chosen(plan(PACK, one_gpu, snapshot)) == "g/gpu4"


def reserve(snapshot: ClusterSnapshot, cluster_name: str, name: str, amount: Resources) -> None:
    snapshot.apply(
        CapacityReserved(at=1, cluster=cluster_name, node=name, request_id=f"on-{name}",
                         attempt=1, amount=amount),
        snapshot.last_seq + 1,
    )  # fmt: skip


def release(snapshot: ClusterSnapshot, cluster_name: str, name: str) -> None:
    snapshot.apply(
        CapacityReleased(at=1, cluster=cluster_name, node=name, request_id=f"on-{name}",
                         attempt=1, reason="finished"),
        snapshot.last_seq + 1,
    )  # fmt: skip


def largest(snapshot: ClusterSnapshot) -> list[str]:
    return [f"{n.cluster}/{n.name}" for n in snapshot.largest_empty(False, 10)]


def test_the_index_follows_reservations_pending_commits_readiness_and_sizes() -> None:
    snapshot = snapshot_of(fleet())
    assert largest(snapshot) == ["a/big", "b/mid", "c/small"]  # built on first read
    reserve(snapshot, "a", "big", Resources(1000, GI, 0, 1))
    assert largest(snapshot) == ["b/mid", "c/small"]
    release(snapshot, "a", "big")
    assert largest(snapshot) == ["a/big", "b/mid", "c/small"]
    pending = [Placement("b", "mid", Resources(1000, GI, 0, 1))]
    snapshot.assume(pending)
    assert largest(snapshot) == ["a/big", "c/small"]
    snapshot.forget(pending)
    snapshot.apply(cluster("a", ready=False), snapshot.last_seq + 1)
    snapshot.apply(node("c", "small", cpu=4, memory_gi=16, ready=False), snapshot.last_seq + 1)
    assert largest(snapshot) == ["b/mid"]
    snapshot.apply(cluster("a"), snapshot.last_seq + 1)
    # Others' pods shrink what an empty node can hold: it is ordered by what is free.
    snapshot.apply(node("a", "big", cpu=64, memory_gi=256, used_cpu=60), snapshot.last_seq + 1)
    assert largest(snapshot) == ["b/mid", "a/big"]


def test_nodes_going_in_and_out_of_use_leave_a_bounded_index() -> None:
    """The smallest node goes in and out of use two thousand times while reads take the two
    largest: its old entries wait deep in the index, unread, until it is compacted, and a
    full read lists it once."""
    snapshot = snapshot_of(fleet())
    front = ["a/big", "b/mid"]
    for _ in range(2000):
        reserve(snapshot, "c", "small", Resources(1000, GI, 0, 1))
        assert [f"{n.cluster}/{n.name}" for n in snapshot.largest_empty(False, 2)] == front
        release(snapshot, "c", "small")
        assert [f"{n.cluster}/{n.name}" for n in snapshot.largest_empty(False, 2)] == front
    assert len(snapshot._empty._heaps[False]) <= 3 * 2 + SLACK + 1
    assert largest(snapshot) == ["a/big", "b/mid", "c/small"]


def test_a_searched_level_chooses_what_a_scan_chooses_where_the_rule_bites() -> None:
    """Seventy clusters of 16-core nodes and one with the 64-core node: the bound ranks the
    big node's cluster first (it scores highest without the rule), the walk visits it, finds
    it kept back, and must still end where the full scan ends."""
    events: list[AnyEvent] = []
    for name, cores in [("big", 64), *((f"e{index:02d}", 16) for index in range(70))]:
        events += [
            ClusterDeclared(at=0, cluster=name, tier="edge", labels={"tier": "edge"}),
            node(name, "n0", cpu=cores, memory_gi=4 * cores),
        ]
    snapshot = snapshot_of(events)
    for index in range(40):
        wanted = packing(1, 2, request_id=f"r{index}", level=("tier=edge",))
        walked = plan(searching_from(PACK, 0), wanted, snapshot)
        scanned = plan(searching_from(PACK, 10**9), wanted, snapshot)
        assert walked.placements == scanned.placements
        assert chosen(walked) not in (None, "big/n0")
        assert "kept back big/n0" in notes(walked)
        placement = walked.placements[0]
        snapshot.apply(
            CapacityReserved(at=1, cluster=placement.cluster, node=placement.node,
                             request_id=f"r{index}", attempt=1, amount=placement.amount),
            snapshot.last_seq + 1,
        )  # fmt: skip
    # Best fit fills each opened node (16 such requests) before opening the next: three.
    assert len(snapshot.largest_empty(False, 10**6)) == 71 - 3
    assert largest(snapshot)[0] == "big/n0"
