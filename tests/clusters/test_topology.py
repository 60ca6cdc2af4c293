"""Topology files: pods running on nodes (frompod sources) and the snapshot's pod index."""

from __future__ import annotations

import pytest

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.clusters.topology import (
    ClusterSpec,
    NodeSpec,
    TopologyError,
    TopologyFile,
    build_topology,
    load_topology,
)
from gsch.model.events import PodsReported
from gsch.runtime.service import default_topology_path


def one_node(**node: object) -> TopologyFile:
    spec = NodeSpec(name="n", cpu="4", memory="8Gi", **node)  # type: ignore[arg-type]
    return TopologyFile(clusters=[ClusterSpec(name="c1", tier="edge", nodes=[spec])])


def test_running_pods_are_namespaced_and_bare_names_land_in_default() -> None:
    topology = build_topology(one_node(running_pods=["video/camera-1", "sensor"]))
    assert topology.clusters[0].nodes[0].pods == ("video/camera-1", "default/sensor")


def test_running_pods_need_a_single_node() -> None:
    with pytest.raises(TopologyError, match="running_pods needs count = 1"):
        build_topology(one_node(count=2, running_pods=["video/camera-1"]))


def test_the_demo_topology_runs_a_camera_pod() -> None:
    topology = load_topology(default_topology_path())
    running = {(c.name, n.name): n.pods for c in topology.clusters for n in c.nodes if n.pods}
    assert running == {("edge-daejeon", "edge-daejeon-gpu"): ("video/camera-1",)}


def test_snapshot_folds_reports_once_and_in_order() -> None:
    snapshot = ClusterSnapshot()
    snapshot.apply(PodsReported(at=0, cluster="c1", node="n1", pods=("a/p",)), 1)
    snapshot.apply(PodsReported(at=0, cluster="c1", node="n2", pods=("a/p",)), 2)
    assert snapshot.pod_node("c1", "a/p") == "n2"
    # Re-delivery of the older report changes nothing.
    snapshot.apply(PodsReported(at=0, cluster="c1", node="n1", pods=("a/p",)), 1)
    assert snapshot.pod_node("c1", "a/p") == "n2"
    assert snapshot.node_pods("c1", "n1") == ("a/p",)
    assert snapshot.node_pods("c1", "n3") is None
    assert snapshot.pod_node("c2", "a/p") is None  # pods are per cluster
