"""What a workload asks for: per-pod amount x replicas, summed over documents."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsch.model.resources import GPU_RESOURCE, Resources
from gsch.model.workload import (
    WorkloadError,
    check_documents,
    demand_of,
    node_selector_of,
    per_pod_amount,
    pod_spec,
)

MI = 2**20
ALLOWED = frozenset({"Pod", "Deployment", "StatefulSet", "Job", "CronJob", "Service", "ConfigMap"})


def container(
    requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "image": "busybox", "resources": resources}


def pod_template(
    containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers}
    if init is not None:
        spec["initContainers"] = init
    return spec


def manifest(kind: str, spec: dict[str, Any], count: object = None) -> dict[str, Any]:
    """A manifest of `kind` around the pod spec, running `count` pods at once."""
    body: dict[str, Any]
    if kind == "Pod":
        body = spec
    elif kind == "Job":
        body = {"template": {"spec": spec}}
        if count is not None:
            body["parallelism"] = count
    elif kind == "CronJob":
        job: dict[str, Any] = {"template": {"spec": spec}}
        if count is not None:
            job["parallelism"] = count
        body = {"schedule": "* * * * *", "jobTemplate": {"spec": job}}
    else:
        body = {"selector": {}, "template": {"spec": spec}}
        if count is not None:
            body["replicas"] = count
    api = "v1" if kind == "Pod" else "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": "w"}, "spec": body}


ONE_POD = pod_template([container({"cpu": "250m", "memory": "64Mi"})])


def test_per_pod_sums_containers_and_counts_one_pod() -> None:
    spec = pod_template(
        [
            container({"cpu": "250m", "memory": "64Mi"}),
            container({"cpu": "1", "memory": "1Gi", GPU_RESOURCE: 1}),
        ]
    )
    assert per_pod_amount(spec, "spec") == Resources(1250, 64 * MI + 1024 * MI, 1, 1)


def test_limits_count_where_requests_are_absent_resource_by_resource() -> None:
    spec = pod_template(
        [
            container(limits={"cpu": "2", "memory": "1Gi", GPU_RESOURCE: "1"}),
            container(requests={"cpu": "100m"}, limits={"cpu": "4", "memory": "128Mi"}),
        ]
    )
    # The second container requests 100m cpu (request wins) and 128Mi memory (from its limit).
    assert per_pod_amount(spec, "spec") == Resources(2100, 1024 * MI + 128 * MI, 1, 1)


def test_a_container_without_resources_asks_for_nothing_but_a_pod_slot() -> None:
    assert per_pod_amount(pod_template([{"name": "c"}]), "spec") == Resources(pods=1)


@pytest.mark.parametrize(
    ("init_cpu", "init_memory", "expected"),
    [
        # The larger init container sets the cpu; the app containers set the memory.
        ("3", "16Mi", Resources(3000, 128 * MI, 0, 1)),
        # A smaller init container changes nothing.
        ("100m", "16Mi", Resources(1500, 128 * MI, 0, 1)),
        # Max per resource, not per container.
        ("2", "1Gi", Resources(2000, 1024 * MI, 0, 1)),
    ],
)
def test_init_containers_take_the_max_not_the_sum(
    init_cpu: str, init_memory: str, expected: Resources
) -> None:
    spec = pod_template(
        [container({"cpu": "1", "memory": "64Mi"}), container({"cpu": "500m", "memory": "64Mi"})],
        init=[
            container({"cpu": init_cpu, "memory": init_memory}),
            container({"cpu": "200m", "memory": "8Mi"}),
        ],
    )
    assert per_pod_amount(spec, "spec") == expected


@pytest.mark.parametrize(
    ("kind", "count", "pods"),
    [
        ("Pod", None, 1),
        ("Deployment", None, 1),
        ("Deployment", 3, 3),
        ("Deployment", 0, 0),
        ("StatefulSet", 4, 4),
        ("Job", None, 1),
        ("Job", 5, 5),
        ("CronJob", None, 1),
        ("CronJob", 2, 2),
    ],
)
def test_demand_is_per_pod_times_replicas(kind: str, count: int | None, pods: int) -> None:
    demand = demand_of((manifest(kind, ONE_POD, count),))
    assert demand == Resources(250 * pods, 64 * MI * pods, 0, pods)


def test_null_replicas_means_the_default_of_one() -> None:
    document = manifest("Deployment", ONE_POD)
    document["spec"]["replicas"] = None
    assert demand_of((document,)).pods == 1


def test_multi_document_workloads_sum_and_non_pod_kinds_add_nothing() -> None:
    documents = (
        manifest("Deployment", ONE_POD, 2),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": []}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "b"}},
        manifest("Pod", pod_template([container({"cpu": "1", GPU_RESOURCE: 1})])),
    )
    assert demand_of(documents) == Resources(1500, 128 * MI, 1, 3)
    assert demand_of(documents[1:3]) == Resources()


counts = st.integers(min_value=0, max_value=50)
millis = st.integers(min_value=0, max_value=8000)


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.sampled_from(["Pod", "Deployment", "StatefulSet", "Job", "CronJob"]), counts),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.tuples(millis, st.integers(0, 4096)), min_size=1, max_size=3),
)
def test_demand_is_additive_over_documents(
    shapes: list[tuple[str, int]], containers: list[tuple[int, int]]
) -> None:
    spec = pod_template(
        [container({"cpu": f"{m}m", "memory": f"{mem}Mi"}) for m, mem in containers]
    )
    per_pod = Resources(sum(m for m, _ in containers), sum(mem for _, mem in containers) * MI, 0, 1)
    documents = tuple(manifest(kind, spec, count) for kind, count in shapes)
    expected = Resources()
    for kind, count in shapes:
        expected = expected + per_pod.scaled(1 if kind == "Pod" else count)
    assert demand_of(documents) == expected


@pytest.mark.parametrize(
    ("document", "field", "problem"),
    [
        (
            manifest("Pod", pod_template([container({"cpu": "12x"})])),
            "workload[0].spec.containers[0].resources",
            "'12x' is not a Kubernetes quantity",
        ),
        (
            manifest("Deployment", pod_template([container({"memory": "-1"})])),
            "workload[0].spec.template.spec.containers[0].resources",
            "'-1' is negative",
        ),
        (
            manifest("Pod", {"containers": []}),
            "workload[0].spec.containers",
            "at least one container",
        ),
        (manifest("Pod", {"containers": ["x"]}), "workload[0].spec.containers[0]", "object"),
        (
            manifest("Pod", {"containers": [{"resources": ["x"]}]}),
            "workload[0].spec.containers[0].resources",
            "must be an object",
        ),
        (
            manifest("Pod", {"containers": [{"name": "c"}], "initContainers": 5}),
            "workload[0].spec.initContainers",
            "must be a list",
        ),
        (
            manifest("Deployment", ONE_POD, -1),
            "workload[0].spec.replicas",
            "non-negative integer",
        ),
        (manifest("Job", ONE_POD, "2"), "workload[0].spec.parallelism", "non-negative integer"),
        (
            manifest("CronJob", ONE_POD, True),
            "workload[0].spec.jobTemplate.spec.parallelism",
            "non-negative integer",
        ),
    ],
)
def test_bad_workloads_name_the_field(document: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(WorkloadError) as info:
        demand_of((document,))
    assert info.value.field == field
    assert problem in info.value.problem


def test_pod_spec_finds_the_template_of_each_kind() -> None:
    for kind in ("Pod", "Deployment", "StatefulSet", "Job", "CronJob"):
        assert pod_spec(manifest(kind, ONE_POD)) is ONE_POD
    assert pod_spec({"kind": "Service", "spec": {}}) is None
    assert pod_spec({"kind": "Deployment", "spec": ["not", "a", "dict"]}) is None


def test_node_selector_of_the_first_pod_template() -> None:
    spec = {**ONE_POD, "nodeSelector": {"zone": "a", "gpu": True}}
    documents = (
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}},
        manifest("Deployment", spec),
    )
    assert node_selector_of(documents) == {"zone": "a", "gpu": "True"}
    assert node_selector_of((manifest("Pod", ONE_POD),)) == {}


@pytest.mark.parametrize(
    ("documents", "field", "problem"),
    [
        ((), "workload", "is required"),
        (({"apiVersion": "v1", "metadata": {"name": "x"}},), "workload[0].kind", "is required"),
        (({"kind": "Pod", "metadata": {"name": "x"}},), "workload[0].apiVersion", "is required"),
        (({"kind": "Pod", "apiVersion": "v1"},), "workload[0].metadata.name", "is required"),
        (
            ({"kind": "ClusterRoleBinding", "apiVersion": "v1", "metadata": {"name": "x"}},),
            "workload[0].kind",
            "ClusterRoleBinding is cluster-scoped",
        ),
        (
            ({"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "x"}},),
            "workload[0].kind",
            "DaemonSet is not an allowed kind",
        ),
        (
            (manifest("Pod", ONE_POD), {"kind": "Namespace", "apiVersion": "v1", "metadata": {}}),
            "workload[1].metadata.name",
            "is required",
        ),
        (
            (
                manifest("Pod", ONE_POD),
                {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "n"}},
            ),
            "workload[1].kind",
            "Namespace is cluster-scoped",
        ),
    ],
)
def test_check_documents(documents: tuple[dict[str, Any], ...], field: str, problem: str) -> None:
    with pytest.raises(WorkloadError) as info:
        check_documents(documents, ALLOWED)
    assert info.value.field == field
    assert problem in info.value.problem


def test_check_documents_accepts_allowed_namespaced_kinds() -> None:
    check_documents((manifest("Deployment", ONE_POD), manifest("CronJob", ONE_POD)), ALLOWED)


@pytest.mark.parametrize("kind", ["ClusterRole", "PersistentVolume", "StorageClass"])
def test_cluster_scoped_kinds_are_rejected_even_when_configured_as_allowed(kind: str) -> None:
    document = {"kind": kind, "apiVersion": "v1", "metadata": {"name": "x", "namespace": "n"}}
    with pytest.raises(WorkloadError) as info:
        check_documents((document,), ALLOWED | {kind})
    assert info.value.field == "workload[0].kind"
    assert "cluster-scoped" in info.value.problem
