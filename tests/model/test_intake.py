"""Every accepted request form decodes into the same typed Request; bad input is a Rejection
that names the field and the problem."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsch.model.admission.rules import AdmissionRules
from gsch.model.forms import detect_form
from gsch.model.intake import IntakeRules, Rejection, decode_request
from gsch.model.request import POLICY_MODES, Policy, Request, Source
from gsch.model.resources import Resources
from tests.support.intake import FALLBACK, RULES, accepted, decode, native, pod, rejected

MI = 2**20

LEVELS_LIST: list[Any] = ["c1", ["c2", "c3"], "c4"]
LEVELS_TEXT = "[c1,[c2,c3],c4]"
LEVELS = (("c1",), ("c2", "c3"), ("c4",))


def deployment(
    gsch_config: dict[str, Any] | None = None,
    request_id: str | None = None,
    replicas: int = 2,
) -> dict[str, Any]:
    env = [{"name": "LOG", "value": "1"}]
    if gsch_config is not None:
        env.append({"name": "gschConfig", "value": json.dumps(gsch_config)})
    metadata: dict[str, Any] = {"name": "web"}
    if request_id is not None:
        metadata["annotations"] = {"gsch.io/request-id": request_id}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"disk": "ssd"},
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx",
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "256Mi"},
                                "limits": {"nvidia.com/gpu": 1},
                            },
                        }
                    ],
                },
            },
        },
    }


# --- three forms, one request ------------------------------------------------------------

# What a request says, independent of the form it is written in.
CASES: list[dict[str, Any]] = []
for _policy, _modes in POLICY_MODES.items():
    for _mode in _modes:
        _case: dict[str, Any] = {"policy": _policy.value, "mode": _mode, "levels": LEVELS_LIST}
        if _policy is Policy.LOW_LATENCY:
            _case["source_cluster"] = "c1"
            _case["source_node" if _mode == "fromnode" else "source_pod"] = "c1-w1"
        if _policy is Policy.SELECTED_CLUSTER and _mode == "node":
            _case.update(levels=None, select_cluster="c2", select_node="c2-w3")
        CASES.append(_case)


def as_native(case: dict[str, Any], workload: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": "req-42",
        "policy": case["policy"],
        "mode": case["mode"],
        "user_name": "u1",
        "workspace_name": "w1",
        "project_name": "p1",
        "fast": True,
        "workload": workload,
    }
    if case["levels"] is not None:
        body["select_clusters"] = case["levels"]
    if "source_cluster" in case:
        body["source"] = {
            "cluster": case["source_cluster"],
            "node": case.get("source_node"),
            "pod": case.get("source_pod"),
        }
        body["source"] = {k: v for k, v in body["source"].items() if v is not None}
    if "select_cluster" in case:
        body["select_cluster"] = case["select_cluster"]
        body["select_node"] = case["select_node"]
    return body


def as_gedge_v4(
    case: dict[str, Any], workload: dict[str, Any], levels_as_text: bool
) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    if case["levels"] is not None:
        parameters["select_clusters"] = LEVELS_TEXT if levels_as_text else case["levels"]
    if "source_cluster" in case:
        parameters["source_cluster"] = case["source_cluster"]
        if "source_node" in case:
            parameters["source_node"] = case["source_node"]
        if "source_pod" in case:
            parameters["pod_name"] = case["source_pod"]
    if "select_cluster" in case:
        parameters["select_cluster"] = case["select_cluster"]
        parameters["select_node"] = case["select_node"]
    return {
        "request_id": "req-42",
        "scope": "global",
        "priority": case["policy"],
        "option": {
            "user_name": "u1",
            "workspace_name": "w1",
            "project_name": "p1",
            "mode": case["mode"],
            "parameters": parameters,
        },
        "fast_option": "fast",
        "workload": workload,
    }


def gsch_config(case: dict[str, Any]) -> dict[str, Any]:
    option: dict[str, Any] = {}
    if "source_cluster" in case:
        option["sourceCluster"] = case["source_cluster"]
        if "source_node" in case:
            option["sourceNode"] = case["source_node"]
        if "source_pod" in case:
            option["sourcePod"] = case["source_pod"]
    if "select_cluster" in case:
        option["selectCluster"] = case["select_cluster"]
        option["selectNode"] = case["select_node"]
    config: dict[str, Any] = {
        "type": "global",
        "priority": case["policy"],
        "mode": case["mode"],
        "option": option,
        "fast": True,
    }
    if case["levels"] is not None:
        config["targetClusters"] = LEVELS_TEXT
    return config


def comparable(request: Request) -> Request:
    """Drop what is legitimately form-specific: the form itself, and the user, workspace and
    project, which the embedded form does not carry."""
    return msgspec.structs.replace(
        request, form="-", user_name=None, workspace_name=None, project_name=None
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['policy']}-{c['mode']}")
def test_three_forms_decode_to_the_same_request(case: dict[str, Any]) -> None:
    workload = deployment(gsch_config(case), request_id="req-42")
    from_native = accepted(as_native(case, workload))
    from_v4_list = accepted(as_gedge_v4(case, workload, levels_as_text=False))
    from_v4_text = accepted(as_gedge_v4(case, workload, levels_as_text=True))
    from_v2 = accepted(workload)

    assert (from_native.form, from_v4_list.form, from_v2.form) == ("native", "gedge-v4", "gedge-v2")
    assert comparable(from_native) == comparable(from_v4_list)
    assert comparable(from_native) == comparable(from_v4_text)
    assert comparable(from_native) == comparable(from_v2)
    # The forms that carry them agree on the user, workspace and project.
    assert (from_v4_list.user_name, from_v4_list.workspace_name, from_v4_list.project_name) == (
        "u1",
        "w1",
        "p1",
    )
    assert from_native == msgspec.structs.replace(from_v4_list, form="native")

    # And the common content is what was asked for.
    request = from_native
    assert request.request_id == "req-42"
    assert request.policy == Policy(case["policy"])
    assert request.mode == case["mode"]
    assert request.fast is True
    assert request.demand == Resources(cpu_m=1000, memory=512 * MI, gpu=2, pods=2)
    assert request.node_selector == {"disk": "ssd"}
    assert request.workload == (workload,)
    if "select_cluster" in case:
        assert request.levels == (("c2",),)
        assert request.select_node == "c2-w3"
    else:
        assert request.levels == LEVELS
        assert request.select_node is None
    if "source_cluster" in case:
        assert request.source == Source("c1", case.get("source_node"), case.get("source_pod"))
    else:
        assert request.source is None


def test_gedge_test_most_form_with_top_level_clusters() -> None:
    """GEdge's /test/most endpoint: scope '##global', select_clusters at the top level."""
    request = accepted(
        {
            "scope": "##global",
            "select_clusters": [["c1", "c2"], "c3"],
            "priority": "GMostRequestedPriority",
            "workload": pod(),
        }
    )
    assert request.levels == (("c1", "c2"), ("c3",))
    assert request.mode == "default"
    assert request.request_id == FALLBACK
    assert request.form == "gedge-v4"


def test_mode_default_and_missing_mode_pick_the_first_mode() -> None:
    for mode in (None, "default", ""):
        assert accepted(native(mode=mode, policy="GSelectedCluster")).mode == "cluster"
        request = accepted(
            native(mode=mode, policy="GLowLatencyPriority", source={"cluster": "c1", "node": "n"})
        )
        assert request.mode == "fromnode"


@pytest.mark.parametrize(
    ("given_policy", "given_mode", "policy", "mode"),
    [
        ("GMostRequestPriority", "gpu", Policy.MOST_REQUESTED, "gpu"),
        ("GSetCluster", None, Policy.SET_CLUSTERS, "default"),
        ("GLowLatencyPriority", "from_node", Policy.LOW_LATENCY, "fromnode"),
        ("GLowLatencyPriority", "from_pod", Policy.LOW_LATENCY, "frompod"),
    ],
)
def test_aliases_are_accepted_and_normalised(
    given_policy: str, given_mode: str | None, policy: Policy, mode: str
) -> None:
    source = {"cluster": "c1", "node": "n1", "pod": "p1"}
    for body in (
        native(policy=given_policy, mode=given_mode, source=source),
        {
            "priority": given_policy,
            "option": {
                "mode": given_mode,
                "parameters": {
                    "select_clusters": "[c1,[c2,c3]]",
                    "source_cluster": "c1",
                    "source_node": "n1",
                    "pod_name": "p1",
                },
            },
            "workload": pod(),
        },
    ):
        request = accepted(body)
        assert (request.policy, request.mode) == (policy, mode)
        assert request.policy.value == policy.value


def test_request_without_id_gets_the_fallback() -> None:
    assert accepted(native(request_id=None)).request_id == FALLBACK
    v2 = deployment({"priority": "GMostRequestedPriority", "targetClusters": "[c1]"})
    assert accepted(v2).request_id == FALLBACK


# A request without a project may name a namespace the operator shares (admission).
SHARED = dataclasses.replace(
    RULES, admission=AdmissionRules(shared_namespaces=frozenset({"default", "team-a"}))
)


def test_native_namespace_is_kept() -> None:
    assert accepted(native(namespace="team-a"), SHARED).namespace == "team-a"
    assert accepted(native()).namespace is None


def test_v2_namespace_comes_from_the_manifest() -> None:
    manifest = deployment({"priority": "GMostRequestedPriority", "targetClusters": "[c1]"})
    manifest["metadata"]["namespace"] = "team-a"
    assert accepted(manifest, SHARED).namespace == "team-a"
    manifest["metadata"]["namespace"] = 7
    rejection = rejected(manifest)
    assert (rejection.field, rejection.form) == ("metadata.namespace", "gedge-v2")


def test_multi_document_workload_sums_demand() -> None:
    request = accepted(native(workload=[deployment(), pod("a"), pod("b")]))
    assert request.demand == Resources(cpu_m=1000, memory=512 * MI, gpu=2, pods=4)
    assert len(request.workload) == 3


def test_detect_form() -> None:
    assert detect_form({"policy": "x"}) == "native"
    assert detect_form({"priority": "x"}) == "gedge-v4"
    assert detect_form({"scope": "global"}) == "gedge-v4"
    assert detect_form({"apiVersion": "v1", "kind": "Pod"}) == "gedge-v2"


# --- rejections --------------------------------------------------------------------------

V2_GOOD = {"type": "global", "priority": "GMostRequestedPriority", "targetClusters": "[c1]"}


def v2(config: Any, request_id: str | None = "req-v2") -> dict[str, Any]:
    manifest = deployment(None, request_id)
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    env.append(
        {"name": "gschConfig", "value": config if isinstance(config, str) else json.dumps(config)}
    )
    return manifest


def v4(parameters: dict[str, Any], **top: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": "req-v4",
        "scope": "global",
        "priority": "GMostRequestedPriority",
        "option": {"mode": "default", "parameters": parameters},
        "workload": pod(),
    }
    body.update(top)
    return body


REJECTIONS: list[tuple[str, Any, str, str]] = [
    # (id, body, field, a phrase of the problem)
    ("non-json", b"{not json", "body", "not valid JSON"),
    ("empty", b"", "body", "not valid JSON"),
    ("binary", b"\xff\xfe\x00", "body", "not valid JSON"),
    ("array", [1, 2], "body", "must be a JSON object, got list"),
    ("string", "hello", "body", "must be a JSON object, got str"),
    ("null", None, "body", "must be a JSON object, got NoneType"),
    ("deep", b"[" * 50_000, "body", "nested too deeply"),
    ("deep-object", b'{"a":' * 10_000, "body", "nested too deeply"),
    (
        "deep-workload",
        native(workload=pod(deep=json.loads("[" * 70 + "]" * 70))),
        "body",
        "more than 64 levels",
    ),
    ("policy-int", native(policy=3), "policy", "expected `str`, got `int`"),
    ("fast-string", native(fast="yes"), "fast", "expected `bool`, got `str`"),
    ("levels-int", native(select_clusters=5), "select_clusters", "expected"),
    ("unknown-field", native(colour="blue"), "colour", "is not a known field"),
    ("empty-field-name", native() | {"": 1}, "body", "a field with an empty name"),
    (
        "unknown-source-field",
        native(source={"cluster": "c1", "rack": "r1"}),
        "source.rack",
        "is not a known field",
    ),
    ("missing-source-cluster", native(source={"node": "n"}), "source.cluster", "is required"),
    ("unknown-policy", native(policy="GFastest"), "policy", "unknown policy 'GFastest'"),
    ("unknown-mode", native(mode="fastest"), "mode", "'fastest' is not a mode of"),
    (
        "mode-of-another-policy",
        native(policy="GSelectedCluster", mode="fromnode"),
        "mode",
        "is not a mode of GSelectedCluster",
    ),
    (
        "latency-no-source",
        native(policy="GLowLatencyPriority"),
        "source",
        "needs the source cluster",
    ),
    (
        "fromnode-without-node",
        native(policy="GLowLatencyPriority", mode="fromnode", source={"cluster": "c1", "pod": "p"}),
        "source.node",
        "fromnode needs the source node",
    ),
    (
        "frompod-without-pod",
        native(policy="GLowLatencyPriority", mode="frompod", source={"cluster": "c1", "node": "n"}),
        "source.pod",
        "frompod needs the source pod",
    ),
    ("no-levels", native(select_clusters=None), "select_clusters", "at least one level"),
    ("empty-levels", native(select_clusters=[]), "select_clusters", "at least one level"),
    ("empty-group", native(select_clusters=[[]]), "select_clusters[0]", "empty group"),
    ("empty-later-group", native(select_clusters=["c1", []]), "select_clusters[1]", "empty group"),
    ("empty-levels-text", native(select_clusters="[]"), "select_clusters", "at least one level"),
    ("empty-group-text", native(select_clusters="[[]]"), "select_clusters", "a cluster name"),
    ("open-bracket", native(select_clusters="[c1,[c2"), "select_clusters", "position 7"),
    ("extra-bracket", native(select_clusters="[c1]]"), "select_clusters", "position 4"),
    ("python", native(select_clusters="__import__('os')"), "select_clusters", "position 0"),
    (
        "duplicate",
        native(select_clusters=["c1", ["c2", "c1"]]),
        "select_clusters",
        "'c1' appears more than once",
    ),
    (
        "duplicate-text",
        native(select_clusters="[[c2,c2]]"),
        "select_clusters",
        "'c2' appears more than once",
    ),
    ("bad-cluster-name", native(select_clusters=["C_1"]), "select_clusters", "not a valid"),
    (
        "kind-not-allowed",
        native(workload=pod() | {"kind": "ReplicaSet"}),
        "workload[0].kind",
        "not an allowed kind",
    ),
    (
        "cluster-role-binding",
        native(
            workload={
                "apiVersion": "rbac/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "x"},
            }
        ),
        "workload[0].kind",
        "cluster-scoped",
    ),
    (
        "namespace-kind",
        native(
            workload=[pod(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]
        ),
        "workload[1].kind",
        "cluster-scoped",
    ),
    (
        "persistent-volume",
        native(
            workload={"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "x"}}
        ),
        "workload[0].kind",
        "cluster-scoped",
    ),
    ("missing-workload", native(workload=None), "workload", "is required"),
    ("empty-workload", native(workload=[]), "workload", "is required"),
    ("workload-not-object", native(workload=[1]), "workload[0]", "expected `object`"),
    ("id-dot", native(request_id="a.b"), "request_id", "'a.b' must be"),
    ("id-space", native(request_id="a b"), "request_id", "must be"),
    ("id-star", native(request_id="a*"), "request_id", "must be"),
    ("id-gt", native(request_id="a>"), "request_id", "must be"),
    ("id-empty", native(request_id=""), "request_id", "must be"),
    ("id-newline", native(request_id="req-1\n"), "request_id", "must be"),
    ("cluster-newline", native(select_clusters=["c1\n"]), "select_clusters", "not a valid"),
    (
        "node-newline",
        native(policy="GSelectedCluster", mode="node", select_cluster="c1", select_node="n1\n"),
        "select_node",
        "is not a valid name",
    ),
    ("id-too-long", native(request_id="a" * 129), "request_id", "must be"),
    (
        "quantity-12x",
        native(workload=pod(containers=[{"name": "c", "resources": {"requests": {"cpu": "12x"}}}])),
        "workload[0].spec.containers[0].resources",
        "'12x' is not a Kubernetes quantity",
    ),
    (
        "quantity-negative",
        native(workload=pod(containers=[{"name": "c", "resources": {"limits": {"memory": "-1"}}}])),
        "workload[0].spec.containers[0].resources",
        "'-1' is negative",
    ),
    (
        "quantity-huge",
        native(
            workload=pod(
                containers=[{"name": "c", "resources": {"limits": {"cpu": "1e999999999"}}}]
            )
        ),
        "workload[0].spec.containers[0].resources",
        "too large",
    ),
    (
        "demand-out-of-range",
        native(workload=deployment(replicas=2**40)),
        "workload",
        "out of range",
    ),
    (
        "node-mode-without-cluster",
        native(policy="GSelectedCluster", mode="node", select_node="n1"),
        "select_cluster",
        "is required",
    ),
    (
        "node-mode-without-node",
        native(policy="GSelectedCluster", mode="node", select_cluster="c1"),
        "select_node",
        "is required",
    ),
    (
        "node-mode-bad-node",
        native(policy="GSelectedCluster", mode="node", select_cluster="c1", select_node="N 1"),
        "select_node",
        "is not a valid name",
    ),
    # GEdge v4 names its own fields.
    ("v4-scope", v4({"select_clusters": ["c1"]}, scope="local"), "scope", "must be 'global'"),
    (
        "v4-unknown-parameter",
        v4({"clusters": ["c1"]}),
        "option.parameters.clusters",
        "is not a known field",
    ),
    ("v4-no-levels", v4({}), "option.parameters.select_clusters", "at least one level"),
    (
        "v4-bad-brackets",
        v4({"select_clusters": "[c1,"}),
        "option.parameters.select_clusters",
        "position 4",
    ),
    ("v4-missing-priority", {"scope": "global", "workload": pod()}, "priority", "is required"),
    ("v4-fast-string", v4({"select_clusters": ["c1"]}, fast="1"), "fast", "expected `bool`"),
    (
        "v4-latency-no-source",
        v4({"select_clusters": ["c1"]}, priority="GLowLatencyPriority"),
        "option.parameters.source_cluster",
        "needs the source cluster",
    ),
    (
        "v4-frompod-no-pod",
        v4({"select_clusters": ["c1"], "source_cluster": "c1"}, priority="GLowLatencyPriority")
        | {
            "option": {
                "mode": "from_pod",
                "parameters": {"select_clusters": ["c1"], "source_cluster": "c1"},
            }
        },
        "option.parameters.pod_name",
        "frompod needs the source pod",
    ),
    (
        "v4-node-mode-no-node",
        v4({"select_cluster": "c1"}, priority="GSelectedCluster")
        | {"option": {"mode": "node", "parameters": {"select_cluster": "c1"}}},
        "option.parameters.select_node",
        "is required",
    ),
    # GEdge v2 names the gschConfig fields.
    ("v2-no-config", deployment(None, "req-v2"), "env.gschConfig", "no gschConfig"),
    ("v2-config-not-json", v2("{'type': 'global'}"), "env.gschConfig", "not valid JSON"),
    (
        "v2-config-unknown",
        v2(V2_GOOD | {"extra": 1}),
        "env.gschConfig.extra",
        "is not a known field",
    ),
    (
        "v2-config-priority-int",
        v2(V2_GOOD | {"priority": 1}),
        "env.gschConfig.priority",
        "expected `str`",
    ),
    (
        "v2-config-no-priority",
        v2({"targetClusters": "[c1]"}),
        "env.gschConfig.priority",
        "is required",
    ),
    ("v2-type-local", v2(V2_GOOD | {"type": "local"}), "env.gschConfig.type", "must be 'global'"),
    (
        "v2-brackets",
        v2(V2_GOOD | {"targetClusters": "[c1,[c2"}),
        "env.gschConfig.targetClusters",
        "position 7",
    ),
    (
        "v2-python",
        v2(V2_GOOD | {"targetClusters": "__import__('os')"}),
        "env.gschConfig.targetClusters",
        "position 0",
    ),
    (
        "v2-fromnode-no-node",
        v2(V2_GOOD | {"priority": "GLowLatencyPriority", "option": {"sourceCluster": "c1"}}),
        "env.gschConfig.option.sourceNode",
        "fromnode needs the source node",
    ),
    (
        "v2-node-mode-no-cluster",
        v2(
            V2_GOOD
            | {"priority": "GSelectedCluster", "mode": "node", "option": {"selectNode": "n"}}
        ),
        "env.gschConfig.option.selectCluster",
        "is required",
    ),
    (
        "v2-service",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}},
        "spec.containers[0]",
        "first container",
    ),
    (
        "v2-env-not-list",
        v2(V2_GOOD) | {"spec": {"containers": [{"name": "c", "env": 5}]}, "kind": "Pod"},
        "spec.containers[0].env",
        "must be a list",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [pytest.param(body, field, problem, id=name) for name, body, field, problem in REJECTIONS],
)
def test_rejections_name_the_field_and_the_problem(body: Any, field: str, problem: str) -> None:
    rejection = rejected(body)
    assert rejection.field == field
    assert problem in rejection.problem
    assert rejection.reason == f"{field}: {rejection.problem}"


def test_oversize_message_is_rejected_before_decoding() -> None:
    rules = IntakeRules(max_request_bytes=100, allowed_kinds=RULES.allowed_kinds)
    body = json.dumps(native(request_id="req-big", user_name="x" * 200)).encode()
    rejection = rejected(body, rules)
    assert (rejection.request_id, rejection.field) == (FALLBACK, "body")
    assert f"request is {len(body)} bytes, over the limit of 100" == rejection.problem
    # Exactly at the limit is fine.
    small = json.dumps(native()).encode()
    exact = IntakeRules(max_request_bytes=len(small), allowed_kinds=RULES.allowed_kinds)
    assert isinstance(decode_request(small, exact, FALLBACK), Request)


@pytest.mark.parametrize(
    ("body", "request_id"),
    [
        (native(request_id="req-7", policy="GFastest"), "req-7"),
        (native(request_id="req-7", fast="yes"), "req-7"),
        (native(request_id="req-7", select_clusters="[c1"), "req-7"),
        (v4({}, request_id="req-8"), "req-8"),
        (v2(V2_GOOD | {"targetClusters": "[c1,"}, request_id="req-9"), "req-9"),
        # Rejected while reading gschConfig itself: the annotation still names the request.
        (v2("not json", request_id="req-9"), "req-9"),
        (v2(V2_GOOD | {"extra": 1}, request_id="req-9"), "req-9"),
        # An invalid id cannot be used: the fallback is.
        (native(request_id="a.b"), FALLBACK),
        (native(request_id=5), FALLBACK),
        (v2(V2_GOOD, request_id="a b"), FALLBACK),
    ],
)
def test_a_rejected_request_keeps_the_senders_valid_id(body: Any, request_id: str) -> None:
    assert rejected(body).request_id == request_id


def test_rejections_record_the_form() -> None:
    assert rejected(native(policy="x")).form == "native"
    assert rejected(v4({})).form == "gedge-v4"
    assert rejected(v2("x")).form == "gedge-v2"
    assert rejected(b"[]").form is None


# --- fuzzing -----------------------------------------------------------------------------

ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:-")


@settings(max_examples=200)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.from_regex(r"[a-z-]{1,8}\s?")
)
def test_accepted_request_ids_are_safe_subject_tokens(request_id: str) -> None:
    result = decode(native(request_id=request_id))
    if isinstance(result, Request):
        assert result.request_id == request_id
        assert set(request_id) <= ID_CHARS
        assert request_id[0] not in "_:-"
        assert len(request_id) <= 128
    else:
        assert (result.field, result.request_id) == ("request_id", FALLBACK)


@settings(max_examples=200)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.from_regex(r"[a-z.-]{1,8}\s?")
)
def test_accepted_cluster_names_are_dns_names(name: str) -> None:
    result = decode(native(select_clusters=[name]))
    if isinstance(result, Request):
        assert result.levels == ((name,),)
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        assert name[0] not in ".-"
        assert name[-1] not in ".-"
    else:
        assert result.field == "select_clusters"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def never_raises(data: bytes) -> Request | Rejection:
    result = decode_request(data, RULES, FALLBACK)
    assert isinstance(result, Request | Rejection)
    if isinstance(result, Rejection):
        assert result.field
        assert result.problem
        assert result.request_id
    return result


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    never_raises(data)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    never_raises(msgspec.json.encode(value))


KNOWN_KEYS = [
    "request_id", "policy", "mode", "select_clusters", "select_cluster", "select_node",
    "source", "fast", "workload", "priority", "scope", "option", "parameters", "apiVersion",
    "kind", "metadata", "spec", "containers", "resources", "requests", "limits", "cpu",
    "memory", "replicas", "env", "name", "value", "template", "initContainers", "cluster",
    "node", "pod", "namespace", "annotations", "nodeSelector", "jobTemplate", "parallelism",
]  # fmt: skip


@settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-3, max_value=2**64 - 1)
        | st.sampled_from(
            [
                "GMostRequestedPriority",
                "GLowLatencyPriority",
                "GSelectedCluster",
                "node",
                "frompod",
                "Pod",
                "Deployment",
                "CronJob",
                "v1",
                "[c1,[c2]]",
                "c1",
                "12x",
                "1e99",
                "100m",
                "global",
                '{"priority":"GSelectedCluster","targetClusters":"[c1]"}',
                "gschConfig",
            ]
        ),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.sampled_from(KNOWN_KEYS), children, max_size=5)
        ),
        max_leaves=25,
    )
)
def test_request_shaped_json_never_raises(value: Any) -> None:
    never_raises(msgspec.json.encode(value))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_valid_requests_never_raise(data: st.DataObject) -> None:
    """Replace one node somewhere inside a valid request of each form with an arbitrary value."""
    case = data.draw(st.sampled_from(CASES))
    workload = deployment(gsch_config(case), request_id="req-42")
    forms = [as_native(case, workload), as_gedge_v4(case, workload, False), workload]
    # A deep copy: the bodies share module-level lists that must not change between examples.
    body = copy.deepcopy(data.draw(st.sampled_from(forms)))
    node: Any = body
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and data.draw(st.booleans()):
            node = child
            continue
        node[key] = data.draw(json_values)
        break
    never_raises(msgspec.json.encode(body))
