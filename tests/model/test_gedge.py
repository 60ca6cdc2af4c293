"""GEdge's spellings at intake (every form), and its two HTTP shapes translated."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from gsch.model.admission.rules import AdmissionRules
from gsch.model.gedge import GedgeCompat
from gsch.model.gedge_doors import DoorError, front_server_request, gateway_request
from gsch.model.intake import IntakeRules, Rejection, decode_request
from gsch.model.request import Policy, Request
from gsch.runtime.config import DEFAULT_ALLOWED_KINDS

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {
        "schedulerName": "griffin_scheduler",
        "containers": [
            {"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "NVIDIAGPU": "2"}}}
        ],
    },
}
YAML_POD = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c}]\n"


def rules(**changes: Any) -> IntakeRules:
    base = IntakeRules(
        max_request_bytes=1 << 20,
        allowed_kinds=frozenset(DEFAULT_ALLOWED_KINDS),
        compat=GedgeCompat(cluster_aliases={"mec(ilsan)": "mec-ilsan"}),
        callback_hosts=frozenset({"gm-center.gedge:8010", "*.example.org"}),
    )
    return replace(base, **changes)


def decode(body: dict[str, Any], **changes: Any) -> Request | Rejection:
    return decode_request(json.dumps(body).encode(), rules(**changes), "fallback")


def v4(option: dict[str, Any], priority: str = "GMostRequestPriority", **extra: Any) -> Any:
    return {"scope": "global", "priority": priority, "option": option, "workload": POD, **extra}


def test_dashboard_names_nvidiagpu_and_griffin_scheduler() -> None:
    request = decode(v4({"parameters": {"select_clusters": "['mec(ilsan)', ['c1', 'c2']]"}}))
    assert isinstance(request, Request), request
    assert request.levels == (("mec-ilsan",), ("c1", "c2"))
    container = request.workload[0]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "1", "nvidia.com/gpu": "2"}
    assert "schedulerName" not in request.workload[0]["spec"]
    assert request.demand.gpu == 2


def test_an_unmapped_dashboard_name_says_what_to_configure() -> None:
    found = decode(v4({"parameters": {"select_clusters": ["seoul(gangnam)"]}}))
    assert isinstance(found, Rejection)
    assert "[gedge] cluster_aliases" in found.problem


def test_a_scheduler_name_may_be_mapped_instead() -> None:
    compat = GedgeCompat(scheduler_names={"griffin_scheduler": "volcano"})
    request = decode(v4({"parameters": {"select_clusters": ["c1"]}}), compat=compat)
    assert isinstance(request, Request)
    assert request.workload[0]["spec"]["schedulerName"] == "volcano"


def test_an_empty_nvidiagpu_is_no_gpu_and_a_double_name_is_refused() -> None:
    pod = json.loads(json.dumps(POD))
    pod["spec"]["containers"][0]["resources"]["limits"]["NVIDIAGPU"] = ""
    request = decode({**v4({"parameters": {"select_clusters": ["c1"]}}), "workload": pod})
    assert isinstance(request, Request)
    assert request.demand.gpu == 0
    pod["spec"]["containers"][0]["resources"]["limits"] |= {"NVIDIAGPU": "1",
                                                            "nvidia.com/gpu": "1"}  # fmt: skip
    found = decode({**v4({"parameters": {"select_clusters": ["c1"]}}), "workload": pod})
    assert isinstance(found, Rejection)
    assert found.field.endswith("limits.NVIDIAGPU")


@pytest.mark.parametrize(
    ("priority", "policy"),
    [
        ("GMostRequestPriority", Policy.MOST_REQUESTED),
        ("GSelectedClusterPriority", Policy.SELECTED_CLUSTER),
        ("GSelectClusterPriority", Policy.SELECTED_CLUSTER),
        ("GSelectCluster", Policy.SELECTED_CLUSTER),
        ("GSetCluster", Policy.SET_CLUSTERS),
        ("GSetClusterPriority", Policy.SET_CLUSTERS),
    ],
)
def test_every_policy_spelling(priority: str, policy: Policy) -> None:
    request = decode(v4({"parameters": {"select_clusters": ["c1"]}}, priority))
    assert isinstance(request, Request), request
    assert request.policy is policy


def test_workspace_uid_names_the_namespace_under_the_uid_rule() -> None:
    option = {"user_name": "u", "workspace_name": "w1", "workspace_uid": "6f1c-9a",
              "project_name": "p1", "parameters": {"select_clusters": ["c1"]}}  # fmt: skip
    by_uid = AdmissionRules(workspace_namespace="uid")
    request = decode(v4(option), admission=by_uid)
    assert isinstance(request, Request), request
    assert request.namespace == "p1-6f1c-9a"
    # The default rule keeps gsch's <project>-<workspace_name>.
    request = decode(v4(option))
    assert isinstance(request, Request)
    assert request.namespace is None
    assert request.workspace_uid == "6f1c-9a"
    # A declared workspace supplies the uid; without one the rule cannot be met.
    del option["workspace_uid"]
    request = decode(v4(option), admission=by_uid, workspace_uids={"w1": "0a0b"})
    assert isinstance(request, Request)
    assert request.namespace == "p1-0a0b"
    found = decode(v4(option), admission=by_uid)
    assert isinstance(found, Rejection)
    assert found.field == "workspace_uid"
    assert "not declared with a uid" in found.problem


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://gm-center.gedge:8010/callback-scheduler", True),
        ("http://gm-center.gedge/callback-scheduler", False),  # port 80, not 8010
        ("https://hooks.example.org/x", True),
        ("https://example.org/x", False),  # *.example.org: subdomains only
        ("http://169.254.169.254/latest/meta-data", False),
        ("file:///etc/passwd", False),
        ("http://user:pw@hooks.example.org/", False),
    ],
)
def test_callback_hosts_are_allow_listed(url: str, allowed: bool) -> None:
    found = decode(v4({"parameters": {"select_clusters": ["c1"]}}, callback_url=url))
    assert isinstance(found, Request) is allowed, found
    if allowed:
        assert isinstance(found, Request)
        assert found.callback_url == url
    else:
        assert isinstance(found, Rejection)
        assert found.field == "callback_url"


def test_a_rejected_request_keeps_its_allowed_callback() -> None:
    url = "https://hooks.example.org/x"
    found = decode(v4({"mode": "bogus", "parameters": {"select_clusters": ["c1"]}},
                      callback_url=url))  # fmt: skip
    assert isinstance(found, Rejection)
    assert found.callback_url == url


def test_snake_case_gsch_config_in_any_manifest_of_a_list() -> None:
    config = {"scope": "global", "priority": "GLowLatencyPriority",
              "option": {"mode": "from_node", "source_cluster": "c1", "source_node": "n1",
                         "select_clusters": [["c1", "c2"], "c3"]}}  # fmt: skip
    pod = {**POD, "spec": {"containers": [
        {"name": "c", "env": [{"name": "gschConfig", "value": json.dumps(config)}]}]}}  # fmt: skip
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    request = decode({"apiVersion": "v1", "kind": "List", "items": [service, pod]})
    assert isinstance(request, Request), request
    assert request.mode == "fromnode"
    assert request.levels == (("c1", "c2"), ("c3",))
    assert [d["kind"] for d in request.workload] == ["Service", "Pod"]


# --- the two HTTP shapes -------------------------------------------------------------------


def test_front_server_fields_become_the_v4_form() -> None:
    translated = front_server_request(
        "low",
        {"user_name": "u", "workspace_name": "w", "project_name": "p", "mode": "frompod",
         "source_cluster": "c1", "pod_name": "cam", "select_clusters": "['c1',['c2','c3']]",
         "callback_url": "http://cb/x", "fast_option": "fast", "source_node": ""},
        YAML_POD,
    )  # fmt: skip
    body = translated.body
    assert body["priority"] == "GLowLatencyPriority"
    assert body["fast"] is True
    assert body["callback_url"] == "http://cb/x"
    assert body["option"]["parameters"] == {
        "source_cluster": "c1", "pod_name": "cam", "select_clusters": "['c1',['c2','c3']]"
    }  # fmt: skip
    assert translated.client_request_id is None


def test_the_v3_spelling_and_its_ambiguity() -> None:
    body = front_server_request("most", {"selected_clusters": "[c1]"}, YAML_POD).body
    assert body["option"]["parameters"]["select_clusters"] == "[c1]"
    with pytest.raises(DoorError, match="give one"):
        front_server_request("most", {"selected_clusters": "[c1]", "select_clusters": "[c2]"},
                             YAML_POD)  # fmt: skip


def test_gateway_query_and_yaml_body() -> None:
    options = {"user_name": "u", "workspace_uid": "abc", "mode": "gpu",
               "parameters": {"select_clusters": [["c1", "c2"]]}}  # fmt: skip
    translated = gateway_request(
        {"requestId": "requestId77", "callbackUrl": "http://cb/x",
         "priority": "GMostRequestPriority", "options": json.dumps(options)},
        YAML_POD + b"---\n" + YAML_POD,
    )  # fmt: skip
    assert translated.client_request_id == "requestId77"
    assert translated.body["option"] == options
    assert len(translated.body["workload"]) == 2


@pytest.mark.parametrize(
    ("query", "text", "field"),
    [
        ({"priority": "GSetCluster", "extra": "1"}, YAML_POD, "extra"),
        ({}, YAML_POD, "priority"),
        ({"priority": "GSetCluster", "options": "[1]"}, YAML_POD, "options"),
        ({"priority": "GSetCluster"}, b"just: data\n", "body"),
        ({"priority": "GSetCluster"}, b"", "body"),
    ],
)
def test_gateway_shape_errors(query: dict[str, str], text: bytes, field: str) -> None:
    with pytest.raises(DoorError) as info:
        gateway_request(query, text)
    assert info.value.field == field
