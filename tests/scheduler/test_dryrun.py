"""The dry run decides what a worker decides on the same snapshot: same intake, same rules
from the same configuration, same planner, for requests of every policy over generated
topologies (the worker's own path through a real NATS is covered in test_pipeline)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsch.model.events import AnyEvent, LatencyReported, PodsReported
from gsch.model.intake import Rejection
from gsch.model.request import Policy
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.runtime.config import load_config
from gsch.scheduler.dryrun import DryRun, PlanAnswer
from gsch.scheduler.rules import admit, intake_rules, planner_rules
from tests.support.planning import TOLERATIONS, Topology, snapshot_of, topologies

CONFIG = load_config(
    None,
    {
        "planner": {"max_latency_age": 30},
        "projects": {"p1": {"clusters": ["c1", "c3"]}, "p2": {"clusters": ["c2", "c4", "c5"]}},
    },
    environ={},
)


@st.composite
def request_bodies(draw: st.DrawFn, topology: Topology) -> dict[str, Any]:
    names = [*topology.clusters, "cx"]
    levels = draw(
        st.lists(
            st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True),
            min_size=1,
            max_size=3,
        )
    )
    policy = draw(st.sampled_from(list(Policy)))
    resources = {
        "cpu": f"{draw(st.integers(0, 4)) * 250}m",
        "memory": f"{draw(st.integers(0, 4)) * 512}Mi",
        "nvidia.com/gpu": str(draw(st.sampled_from([0, 0, 0, 1]))),
    }
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "image": "x", "resources": {"requests": resources}}],
        "tolerations": draw(st.lists(st.sampled_from(list(TOLERATIONS.values())), max_size=2)),
    }
    selector = draw(st.sampled_from([{}, {}, {"disk": "ssd"}, {"zone": "a"}]))
    if selector:
        spec["nodeSelector"] = selector
    # Now and then something admission refuses: the dry run must refuse it the same way.
    spec.update(draw(st.sampled_from([{}, {}, {}, {}, {"hostNetwork": True}, {"nodeName": "n"}])))
    body: dict[str, Any] = {
        "request_id": f"req-{draw(st.integers(0, 50))}",
        "policy": policy.value,
        "select_clusters": levels,
        "workload": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "w"},
            "spec": {
                "replicas": draw(st.integers(1, 3)),
                "selector": {"matchLabels": {"app": "w"}},
                "template": {"metadata": {"labels": {"app": "w"}}, "spec": spec},
            },
        },
    }
    project = draw(st.sampled_from([None, None, "p1", "p2", "p3"]))
    if project is not None:
        body.update(project_name=project, workspace_name="w1")
    if policy is Policy.LOW_LATENCY:
        source = draw(st.sampled_from([{"node": "c1-w0"}, {"pod": "cam"}, {"pod": "ns/other"}]))
        body["source"] = {"cluster": "c1", **source}
        body["mode"] = "frompod" if "pod" in source else "fromnode"
    if policy is Policy.SELECTED_CLUSTER and draw(st.booleans()):
        body.update(mode="node", select_cluster=levels[0][0], select_node=f"{levels[0][0]}-w0")
        del body["select_clusters"]
    return body


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_the_dry_run_decides_what_the_worker_decides(data: st.DataObject) -> None:
    topology = data.draw(topologies())
    # Latency from c1's first node (fresh or stale against the snapshot's clock) and a pod.
    measured_at = data.draw(st.sampled_from([0.0, 100.0]))
    extra: list[AnyEvent] = [
        LatencyReported(
            at=measured_at,
            cluster="c1",
            node="c1-w0",
            to_clusters={name: float(i) for i, name in enumerate(topology.clusters)},
            to_nodes={"c1-w0": 0.0, "c1-w1": 0.5},
        ),
        PodsReported(at=100.0, cluster="c1", node="c1-w1", pods=("p1-w1/cam", "default/cam")),
    ]
    snapshot = snapshot_of(topology.events + extra)
    data_bytes = msgspec.json.encode(data.draw(request_bodies(topology)))

    answer = DryRun(snapshot, intake_rules(CONFIG), planner_rules(CONFIG)).plan(data_bytes)
    # What the worker does with the same message: admit, then plan under the config's rules.
    admitted = admit(data_bytes, intake_rules(CONFIG), "worker-fallback-id")
    if isinstance(admitted, Rejection):
        assert isinstance(answer, Rejection)
        assert (answer.field, answer.reason) == (admitted.field, admitted.reason)
        return
    assert isinstance(answer, PlanAnswer)
    decision = plan(PROFILES[admitted.policy], admitted, snapshot, planner_rules(CONFIG))
    assert answer.placements == decision.placements
    assert answer.level_index == decision.level_index
    assert answer.explanation == decision.explanation
    assert answer.sequence == snapshot.last_seq
