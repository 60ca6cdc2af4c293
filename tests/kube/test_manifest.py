"""Preparing a workload for a cluster (pure): namespace, labels, pin in the right field."""

from __future__ import annotations

from typing import Any

import pytest

from gsch.kube.manifest import label_value, owned_by, prepare, target_namespace
from gsch.model.request import Policy, Request

CONTAINER = {"name": "c", "image": "x"}


def request(*documents: dict[str, Any], **fields: Any) -> Request:
    return Request(request_id="r-1", policy=Policy.MOST_REQUESTED, mode="default",
                   workload=documents, **fields)  # fmt: skip


def template(kind: str, api: str = "apps/v1") -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": "w"},
            "spec": {"template": {"spec": {"containers": [CONTAINER],
                                           "nodeSelector": {"disk": "ssd"}}}}}  # fmt: skip


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_controllers_are_pinned_on_the_pod_template(kind: str) -> None:
    [doc] = prepare("r-1", request(template(kind)), "host-7", "n7")
    pod_spec = doc["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"disk": "ssd", "kubernetes.io/hostname": "host-7"}
    assert "nodeSelector" not in doc["spec"]  # GEdge's mistake: the controller's own spec
    assert doc["spec"]["template"]["metadata"]["labels"]["gsch.io/request-id"] == "r-1"


def test_job_cronjob_and_pod() -> None:
    job = template("Job", "batch/v1")
    del job["spec"]["template"]["spec"]["nodeSelector"]
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": job["spec"]}}}  # fmt: skip
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [CONTAINER]}}  # fmt: skip
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {}}
    prepared = prepare("r-1", request(job, cron, bare, config), "h", "n")
    pin = {"kubernetes.io/hostname": "h"}
    assert prepared[0]["spec"]["template"]["spec"]["nodeSelector"] == pin
    assert prepared[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["nodeSelector"] == pin
    assert prepared[2]["spec"]["nodeSelector"] == pin
    assert "nodeName" not in prepared[2]["spec"]
    assert "spec" not in prepared[3]
    for doc in prepared:
        metadata = doc["metadata"]
        assert metadata["namespace"] == "default"
        assert metadata["labels"]["gsch.io/request-id"] == "r-1"
        assert metadata["annotations"] == {
            "gsch.io/request-id": "r-1", "gsch.io/policy": "GMostRequestedPriority",
            "gsch.io/node": "n",
        }  # fmt: skip
        assert owned_by(doc, "r-1")
        assert not owned_by(doc, "r-2")


def test_the_original_workload_is_not_changed() -> None:
    original = template("Deployment")
    prepare("r-1", request(original), "h", "n")
    assert original == template("Deployment")


def test_namespace_from_project_and_workspace() -> None:
    assert target_namespace(request(project_name="p1", workspace_name="w1")) == "p1-w1"
    assert target_namespace(request(project_name="p1")) == "p1"
    assert target_namespace(request(namespace="team")) == "team"
    assert target_namespace(request()) == "default"


def test_request_ids_that_are_not_label_values_are_hashed() -> None:
    assert label_value("req-42") == "req-42"
    hashed = label_value("a:b")
    assert hashed.startswith("h-")
    assert ":" not in hashed
    assert len(hashed) <= 63
    assert label_value("x" * 100) != label_value("x" * 101)
