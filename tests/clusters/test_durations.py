"""The simulator's duration model: runtime from the round trip to the source, per topology or
per request, and first-come turns on shared resources."""

from __future__ import annotations

import asyncio
import re

import pytest

from gsch.clusters.durations import DurationError, DurationModel, Run, SharedSpec, WorkloadsSpec
from gsch.clusters.runs import WorkloadRuns
from gsch.clusters.topology import (
    ClusterSpec,
    LatencySpec,
    NodeSpec,
    TopologyError,
    TopologyFile,
    build_topology,
    load_topology,
)
from gsch.model.request import Policy, Request, Source
from gsch.paths import shipped


def bed(**workloads: object) -> TopologyFile:
    nodes = [NodeSpec(name="w", cpu="8", memory="32Gi", count=2)]
    return TopologyFile(
        clusters=[
            ClusterSpec(name="m", tier="cloud", nodes=[NodeSpec(name="m", cpu="8", memory="8Gi",
                                                                running_pods=["video/cam"])]),
            ClusterSpec(name="far", tier="edge", nodes=nodes),
            ClusterSpec(name="near", tier="edge", nodes=nodes),
        ],
        latency=[LatencySpec(("m", "far"), 5.0), LatencySpec(("m", "near"), 1.0)],
        workloads=WorkloadsSpec(**workloads),  # type: ignore[arg-type]
    )  # fmt: skip


def video(annotations: dict[str, str] | None = None, source: Source | None = None) -> Request:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "v"}}
    if annotations is not None:
        manifest["metadata"] = {"name": "v", "annotations": annotations}
    return Request(
        request_id="v", policy=Policy.LOW_LATENCY, mode="fromnode", workload=(manifest,),
        source=source,
    )  # fmt: skip


MODEL = {"source": "m/m", "base_seconds": 60.0, "per_ms_seconds": 4.0,
         "shared": [SharedSpec("gpu", 30.0)]}  # fmt: skip


def run_of(request: Request | None, where: tuple[str, str], **model: object) -> Run:
    topology = build_topology(bed(**{**MODEL, **model}))
    assert topology.workloads is not None
    return topology.workloads.run(request, where, topology.rtt, topology.pod_node)


def test_runtime_grows_with_the_round_trip_from_the_source() -> None:
    assert run_of(None, ("near", "w1")) == Run(64.0, (("gpu", 30.0),), 1.0)
    assert run_of(None, ("far", "w2")) == Run(80.0, (("gpu", 30.0),), 5.0)
    assert run_of(None, ("far", "w2")).alone == 110.0
    # On the source node itself: 0 ms; in its cluster: the intra-cluster round trip.
    assert run_of(None, ("m", "m")).node_seconds == 60.0


def test_a_request_refines_the_model_with_annotations_and_its_source() -> None:
    notes = {"gsch.io/sim-base-seconds": "10", "gsch.io/sim-per-ms-seconds": "1.5",
             "gsch.io/sim-shared-seconds": "gpu=5, disk=2"}  # fmt: skip
    assert run_of(video(notes), ("far", "w1")) == Run(17.5, (("gpu", 5.0), ("disk", 2.0)), 5.0)
    # The source: the annotation, else the request's own (a node, or a pod the topology runs),
    # else the topology's.
    from_near = video({"gsch.io/sim-source": "near/w1"}, Source("m", "m"))
    assert run_of(from_near, ("near", "w2")).rtt_ms == 0.5
    assert run_of(video(source=Source("near", "w1")), ("near", "w1")).rtt_ms == 0.0
    assert run_of(video(source=Source("m", pod="video/cam")), ("far", "w1")).rtt_ms == 5.0
    assert run_of(video(), ("far", "w1"), source=None, per_ms_seconds=0.0).node_seconds == 60.0


@pytest.mark.parametrize(
    ("annotations", "model", "problem"),
    [
        ({"gsch.io/sim-base-seconds": "soon"}, {},
         "annotation gsch.io/sim-base-seconds: 'soon' is not a number of seconds"),
        ({"gsch.io/sim-per-ms-seconds": "-1"}, {}, "is not a number of seconds (0 or more)"),
        ({"gsch.io/sim-shared-seconds": "gpu"}, {}, "'gpu' is not name=seconds"),
        ({"gsch.io/sim-source": "m"}, {}, "annotation gsch.io/sim-source: 'm' is not cluster/node"),
        ({"gsch.io/sim-source": "nowhere/n"}, {}, "no round trip known from nowhere/n to far/w1"),
        ({}, {"source": None}, "neither the request"),
    ],
)  # fmt: skip
def test_what_cannot_be_worked_out_is_said(
    annotations: dict[str, str], model: dict[str, object], problem: str
) -> None:
    with pytest.raises(DurationError, match=re.escape(problem)):
        run_of(video(annotations), ("far", "w1"), **model)


def test_the_topology_checks_its_model() -> None:
    with pytest.raises(TopologyError, match=r"workloads\.source: no node x in cluster m"):
        build_topology(bed(source="m/x"))
    with pytest.raises(TopologyError, match=r"workloads\.base_seconds"):
        build_topology(bed(base_seconds=-3.0))
    assert build_topology(TopologyFile(clusters=bed().clusters)).workloads is None


def test_the_seed_test_bed_reproduces_the_seeds_two_totals() -> None:
    topology = load_topology(shipped("config") / "topology-seed.toml")
    model = topology.workloads
    assert isinstance(model, DurationModel)
    alone = {
        cluster: model.run(None, (cluster, f"{cluster}-w1"), topology.rtt, topology.pod_node).alone
        for cluster in ("edge-a", "edge-b")
    }
    assert alone == pytest.approx({"edge-a": 115.1, "edge-b": 98.4})


async def test_shared_resources_serve_one_workload_at_a_time_first_come_first_served() -> None:
    loop = asyncio.get_running_loop()
    ended: dict[str, float] = {}
    runs = WorkloadRuns(lambda request_id: ended.setdefault(request_id, loop.time()))
    begin = loop.time()
    runs.start("a", Run(0.0, (("gpu", 0.05),)))
    runs.start("b", Run(0.01, (("gpu", 0.05),)))
    runs.start("c", Run(0.02, (("gpu", 0.05),)))
    runs.start("d", Run(0.0))  # no shared turn: done at once
    runs.start("a", Run(5.0))  # already running: left as it is
    await asyncio.sleep(0.03)
    assert runs.queued("gpu") == 3
    runs.cancel("b")  # waiting: gives up its place
    while len(ended) < 3:
        await asyncio.sleep(0.01)
    assert sorted(ended, key=ended.__getitem__) == ["d", "a", "c"]
    # c arrived while a had the GPU: it started when a ended, so ends a whole turn later.
    assert ended["a"] - begin >= 0.05
    assert ended["c"] - ended["a"] >= 0.05
    assert "b" not in runs
    runs.close()
