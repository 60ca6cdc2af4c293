"""Folding Nodes and Pods into per-node facts (pure)."""

from __future__ import annotations

from gsch.kube.inventory import REQUEST_ID_LABEL, ClusterInventory
from gsch.model.resources import Resources
from tests.fakekube.server import node, pod


def test_foreign_counts_running_pods_gsch_did_not_place() -> None:
    inventory = ClusterInventory()
    inventory.reset_nodes([node("n1", cpu="4", taints=[{"key": "k", "effect": "NoSchedule"}]),
                           node("n2", ready=False)])  # fmt: skip
    inventory.reset_pods(
        [
            pod("sys", "n1", cpu="250m", namespace="kube-system"),
            pod("done", "n1", cpu="1", phase="Succeeded"),
            pod("ours", "n1", cpu="1", labels={REQUEST_ID_LABEL: "r1"}),
            pod("pending", None, cpu="1"),
        ]
    )
    facts = inventory.facts()
    assert facts["n1"].allocatable == Resources(cpu_m=4000, memory=8 * 2**30, pods=110)
    assert facts["n1"].foreign == Resources(cpu_m=250, pods=1)
    assert facts["n1"].taints[0].key == "k"
    assert facts["n1"].ready
    assert not facts["n2"].ready
    assert facts["n1"].addresses == ("127.0.0.1",)
    # gsch's pod is listed (it can be a frompod source) but not counted as foreign.
    assert inventory.pods_by_node() == {"n1": ("default/ours", "kube-system/sys"), "n2": ()}


def test_events_update_and_delete() -> None:
    inventory = ClusterInventory()
    inventory.reset_nodes([node("n1")])
    inventory.pod_event("ADDED", pod("a", "n1", cpu="500m"))
    inventory.pod_event("MODIFIED", pod("a", "n1", cpu="500m", phase="Failed"))
    assert inventory.facts()["n1"].foreign == Resources()
    inventory.pod_event("ADDED", pod("b", "n1", cpu="1"))
    inventory.pod_event("DELETED", pod("b", "n1", cpu="1"))
    inventory.node_event("DELETED", node("n1"))
    assert inventory.facts() == {}
    assert inventory.pods_by_node() == {}


def test_hostname_comes_from_the_label() -> None:
    inventory = ClusterInventory()
    inventory.reset_nodes([node("n1", labels={"kubernetes.io/hostname": "host-1"})])
    assert inventory.hostname("n1") == "host-1"
    assert inventory.hostname("unknown") == "unknown"
