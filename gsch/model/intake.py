"""Decode any accepted request form into one typed `Request`, or a `Rejection` that names the
field and the problem.

Forms (DESIGN.md §3): native snake_case JSON; GEdge v4 option form (`scope`/`priority`/`option`);
GEdge v2 embedded form (a manifest whose first container has a `gschConfig` env var).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from gsch.model.affinity import node_affinity_of
from gsch.model.brackets import BracketError, parse_levels
from gsch.model.request import (
    MODE_ALIASES,
    NAME_PATTERN,
    POLICY_ALIASES,
    POLICY_MODES,
    REQUEST_ID_PATTERN,
    SELECTOR_PATTERN,
    Policy,
    Request,
    Source,
    is_selector,
)
from gsch.model.workload import (
    WorkloadError,
    check_documents,
    demand_of,
    node_selector_of,
    pod_spec,
)

LevelsInput = list[str | list[str]] | str


@dataclass(frozen=True)
class Rejection:
    request_id: str
    field: str
    problem: str
    form: str | None = None

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.problem}"


@dataclass(frozen=True)
class IntakeRules:
    max_request_bytes: int
    allowed_kinds: frozenset[str]


# --- wire forms --------------------------------------------------------------------------


class _NativeSource(msgspec.Struct, forbid_unknown_fields=True):
    cluster: str
    node: str | None = None
    pod: str | None = None


class _Native(msgspec.Struct, forbid_unknown_fields=True):
    policy: str
    workload: dict[str, Any] | list[dict[str, Any]]
    request_id: str | None = None
    mode: str | None = None
    select_clusters: LevelsInput | None = None
    select_cluster: str | None = None
    select_node: str | None = None
    source: _NativeSource | None = None
    user_name: str | None = None
    workspace_name: str | None = None
    project_name: str | None = None
    namespace: str | None = None
    fast: bool = False


class _V4Parameters(msgspec.Struct, forbid_unknown_fields=True):
    select_clusters: LevelsInput | None = None
    select_cluster: str | None = None
    select_node: str | None = None
    source_cluster: str | None = None
    source_node: str | None = None
    pod_name: str | None = None


class _V4Option(msgspec.Struct, forbid_unknown_fields=True):
    user_name: str | None = None
    workspace_name: str | None = None
    project_name: str | None = None
    mode: str | None = None
    parameters: _V4Parameters = msgspec.field(default_factory=_V4Parameters)


class _V4(msgspec.Struct, forbid_unknown_fields=True):
    priority: str
    workload: dict[str, Any] | list[dict[str, Any]]
    scope: str = "global"
    option: _V4Option = msgspec.field(default_factory=_V4Option)
    select_clusters: LevelsInput | None = None  # GEdge's /test/most put it at the top level
    request_id: str | None = None
    fast: bool = False
    fast_option: str | None = None  # GEdge's form field: "fast" means fast
    callback_url: str | None = None


class _V2Option(msgspec.Struct, forbid_unknown_fields=True):
    sourceCluster: str | None = None
    sourceNode: str | None = None
    sourcePod: str | None = None
    selectCluster: str | None = None
    selectNode: str | None = None


class _V2Config(msgspec.Struct, forbid_unknown_fields=True):
    priority: str
    type: str = "global"
    targetClusters: LevelsInput | None = None
    mode: str | None = None
    option: _V2Option = msgspec.field(default_factory=_V2Option)
    fast: bool = False


@dataclass
class _Fields:
    """The fields common to all forms, before validation."""

    form: str
    policy: str
    workload: tuple[dict[str, Any], ...]
    request_id: str | None = None
    mode: str | None = None
    levels: LevelsInput | None = None
    levels_field: str = "select_clusters"
    select_cluster: str | None = None
    select_cluster_field: str = "select_cluster"
    select_node: str | None = None
    select_node_field: str = "select_node"
    source: Source | None = None
    source_field: str = "source"
    source_node_field: str = "source.node"
    source_pod_field: str = "source.pod"
    user_name: str | None = None
    workspace_name: str | None = None
    project_name: str | None = None
    namespace: str | None = None
    fast: bool = False


class _Invalid(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


_MSGSPEC_PATH = re.compile(r"^(.*?)(?: - at `\$\.?(.*)`)?$", re.DOTALL)


def _from_validation(exc: msgspec.ValidationError, prefix: str = "") -> _Invalid:
    match = _MSGSPEC_PATH.match(str(exc))
    problem, path = (match.group(1), match.group(2)) if match else (str(exc), None)
    field = ".".join(part for part in (prefix, path or "") if part) or "body"
    for start, named_problem in (
        ("Object contains unknown field", "is not a known field"),
        ("Object missing required field", "is required"),
    ):
        if problem.startswith(start):
            name = problem.split("`")[1]
            if name:
                field = ".".join(part for part in (prefix, path or "", name) if part)
                problem = named_problem
            else:  # {"": ...}: keep the object's path rather than an empty field name
                problem = "has a field with an empty name"
    return _Invalid(field, problem[0].lower() + problem[1:])


def _documents(workload: dict[str, Any] | list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple(workload) if isinstance(workload, list) else (workload,)


def _native(body: dict[str, Any]) -> _Fields:
    try:
        wire = msgspec.convert(body, _Native)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    source = None
    if wire.source is not None:
        source = Source(wire.source.cluster, wire.source.node, wire.source.pod)
    return _Fields(
        form="native",
        policy=wire.policy,
        workload=_documents(wire.workload),
        request_id=wire.request_id,
        mode=wire.mode,
        levels=wire.select_clusters,
        select_cluster=wire.select_cluster,
        select_node=wire.select_node,
        source=source,
        user_name=wire.user_name,
        workspace_name=wire.workspace_name,
        project_name=wire.project_name,
        namespace=wire.namespace,
        fast=wire.fast,
    )


def _gedge_v4(body: dict[str, Any]) -> _Fields:
    try:
        wire = msgspec.convert(body, _V4)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    if wire.scope not in ("global", "##global"):
        raise _Invalid("scope", f"must be 'global', got {wire.scope!r}")
    params = wire.option.parameters
    source = None
    if params.source_cluster is not None:
        source = Source(params.source_cluster, params.source_node, params.pod_name)
    levels = params.select_clusters if params.select_clusters is not None else wire.select_clusters
    return _Fields(
        form="gedge-v4",
        policy=wire.priority,
        workload=_documents(wire.workload),
        request_id=wire.request_id,
        mode=wire.option.mode,
        levels=levels,
        levels_field="option.parameters.select_clusters",
        select_cluster=params.select_cluster,
        select_cluster_field="option.parameters.select_cluster",
        select_node=params.select_node,
        select_node_field="option.parameters.select_node",
        source=source,
        source_field="option.parameters.source_cluster",
        source_node_field="option.parameters.source_node",
        source_pod_field="option.parameters.pod_name",
        user_name=wire.option.user_name,
        workspace_name=wire.option.workspace_name,
        project_name=wire.option.project_name,
        fast=wire.fast or wire.fast_option == "fast",
    )


def _gedge_v2(manifest: dict[str, Any]) -> _Fields:
    spec = pod_spec(manifest)
    containers = spec.get("containers") if spec else None
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise _Invalid("spec.containers[0]", "the embedded form needs a first container")
    env = containers[0].get("env") or []
    if not isinstance(env, list):
        raise _Invalid("spec.containers[0].env", "must be a list")
    raw = next(
        (e.get("value") for e in env if isinstance(e, dict) and e.get("name") == "gschConfig"),
        None,
    )
    if not isinstance(raw, str):
        raise _Invalid("env.gschConfig", "the first container has no gschConfig string value")
    try:
        config = msgspec.json.decode(raw, type=_V2Config)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc, "env.gschConfig") from exc
    except msgspec.DecodeError as exc:
        raise _Invalid("env.gschConfig", f"not valid JSON: {exc}") from exc
    if config.type != "global":
        raise _Invalid("env.gschConfig.type", f"must be 'global', got {config.type!r}")
    option = config.option
    source = None
    if option.sourceCluster is not None:
        source = Source(option.sourceCluster, option.sourceNode, option.sourcePod)
    metadata = manifest.get("metadata") or {}
    request_id = _v2_request_id(manifest)
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    if namespace is not None and not isinstance(namespace, str):
        raise _Invalid("metadata.namespace", f"must be a string, got {type(namespace).__name__}")
    return _Fields(
        form="gedge-v2",
        policy=config.priority,
        workload=(manifest,),
        request_id=request_id,
        mode=config.mode,
        levels=config.targetClusters,
        levels_field="env.gschConfig.targetClusters",
        select_cluster=option.selectCluster,
        select_cluster_field="env.gschConfig.option.selectCluster",
        select_node=option.selectNode,
        select_node_field="env.gschConfig.option.selectNode",
        source=source,
        source_field="env.gschConfig.option.sourceCluster",
        source_node_field="env.gschConfig.option.sourceNode",
        source_pod_field="env.gschConfig.option.sourcePod",
        namespace=namespace,
        fast=config.fast,
    )


def _v2_request_id(manifest: dict[str, Any]) -> str | None:
    """The embedded form carries the sender's id as the annotation `gsch.io/request-id`."""
    metadata = manifest.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    value = annotations.get("gsch.io/request-id") if isinstance(annotations, dict) else None
    return value if isinstance(value, str) else None


def detect_form(body: dict[str, Any]) -> str:
    if "apiVersion" in body and "kind" in body:
        return "gedge-v2"
    if "priority" in body or "option" in body or "scope" in body:
        return "gedge-v4"
    return "native"


# --- validation --------------------------------------------------------------------------


def _levels(fields: _Fields) -> tuple[tuple[str, ...], ...]:
    raw = fields.levels
    if raw is None:
        return ()
    if isinstance(raw, str):
        try:
            levels = parse_levels(raw)
        except BracketError as exc:
            raise _Invalid(fields.levels_field, str(exc)) from exc
    else:
        levels = tuple((item,) if isinstance(item, str) else tuple(item) for item in raw)
    seen: set[str] = set()
    for index, level in enumerate(levels):
        if not level:
            raise _Invalid(f"{fields.levels_field}[{index}]", "an empty group names no cluster")
        for name in level:
            if is_selector(name):
                if not SELECTOR_PATTERN.match(name):
                    raise _Invalid(
                        fields.levels_field,
                        f"{name!r} is not a valid label selector (key=value, joined by '&')",
                    )
            elif not NAME_PATTERN.match(name):
                raise _Invalid(fields.levels_field, f"{name!r} is not a valid cluster name")
            if name in seen:
                raise _Invalid(fields.levels_field, f"cluster {name!r} appears more than once")
            seen.add(name)
    return levels


def _policy_and_mode(fields: _Fields) -> tuple[Policy, str]:
    policy = POLICY_ALIASES.get(fields.policy)
    if policy is None:
        known = ", ".join(p.value for p in Policy)
        raise _Invalid("policy", f"unknown policy {fields.policy!r} (known: {known})")
    modes = POLICY_MODES[policy]
    mode = fields.mode or "default"
    mode = MODE_ALIASES.get(mode, mode)
    if mode == "default":
        mode = modes[0]
    if mode not in modes:
        raise _Invalid("mode", f"{fields.mode!r} is not a mode of {policy} ({', '.join(modes)})")
    return policy, mode


_INT64_MAX = 2**63 - 1


def _validate(fields: _Fields, request_id: str, rules: IntakeRules) -> Request:
    policy, mode = _policy_and_mode(fields)
    levels = _levels(fields)
    select_node = None
    source = fields.source
    if policy is Policy.SELECTED_CLUSTER and mode == "node":
        if not fields.select_cluster:
            raise _Invalid(
                fields.select_cluster_field, "is required for GSelectedCluster mode node"
            )
        if not fields.select_node:
            raise _Invalid(fields.select_node_field, "is required for GSelectedCluster mode node")
        for name, what in (
            (fields.select_cluster, fields.select_cluster_field),
            (fields.select_node, fields.select_node_field),
        ):
            if not NAME_PATTERN.match(name):
                raise _Invalid(what, f"{name!r} is not a valid name")
        levels = ((fields.select_cluster,),)
        select_node = fields.select_node
    elif not levels:
        raise _Invalid(fields.levels_field, "needs at least one level of clusters")
    if policy is Policy.SET_CLUSTERS and all(len(level) == 1 for level in levels):
        # GSetClusters places on every cluster of a set; a flat list of names is one set
        # (nest lists, [[c1,c2],[c3,c4]], for a set with a fallback set).
        levels = (tuple(name for level in levels for name in level),)
    if policy is Policy.LOW_LATENCY:
        if source is None or not source.cluster:
            raise _Invalid(fields.source_field, f"{policy} needs the source cluster")
        if mode == "fromnode" and not source.node:
            raise _Invalid(
                fields.source_node_field, f"{policy} mode fromnode needs the source node"
            )
        if mode == "frompod" and not source.pod:
            raise _Invalid(fields.source_pod_field, f"{policy} mode frompod needs the source pod")
    try:
        check_documents(fields.workload, rules.allowed_kinds)
        demand = demand_of(fields.workload)
        affinity = node_affinity_of(fields.workload)
    except WorkloadError as exc:
        raise _Invalid(exc.field, exc.problem) from exc
    if max(demand.cpu_m, demand.memory, demand.gpu, demand.pods) > _INT64_MAX:
        # Events must decode again: msgspec reads integers only up to 64 bits.
        raise _Invalid("workload", "its total resource demand is out of range")
    return Request(
        request_id=request_id,
        policy=policy,
        mode=mode,
        levels=levels,
        select_node=select_node,
        source=source,
        user_name=fields.user_name,
        workspace_name=fields.workspace_name,
        project_name=fields.project_name,
        namespace=fields.namespace,
        fast=fields.fast,
        form=fields.form,
        workload=fields.workload,
        demand=demand,
        node_selector=node_selector_of(fields.workload),
        node_affinity=affinity,
    )


def generated_request_id(intake_seq: int, published_ns: int) -> str:
    """A stable id for a request that came without one: the same message gets the same id."""
    digest = hashlib.sha256(f"{intake_seq}:{published_ns}".encode()).hexdigest()
    return f"req-{digest[:24]}"


MAX_NESTING = 64  # Kubernetes manifests nest about 15 levels deep


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def decode_request(data: bytes, rules: IntakeRules, fallback_id: str) -> Request | Rejection:
    """Decode one message from `gsch.requests`. Never raises on bad input."""
    if len(data) > rules.max_request_bytes:
        return Rejection(
            fallback_id,
            "body",
            f"request is {len(data)} bytes, over the limit of {rules.max_request_bytes}",
        )
    try:
        body = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        return Rejection(fallback_id, "body", f"not valid JSON: {exc}")
    except RecursionError:
        # Reachable well under the size limit ("[[[[..."); msgspec raises it while decoding.
        return Rejection(fallback_id, "body", "nested too deeply")
    if not isinstance(body, dict):
        return Rejection(fallback_id, "body", f"must be a JSON object, got {type(body).__name__}")
    form = detect_form(body)
    request_id = fallback_id
    claimed_id = _v2_request_id(body) if form == "gedge-v2" else body.get("request_id")
    if isinstance(claimed_id, str) and REQUEST_ID_PATTERN.match(claimed_id):
        # Even a request rejected for another field is recorded under the id its sender knows.
        request_id = claimed_id
    if _depth_exceeds(body, MAX_NESTING):
        # Bounded here, not by the interpreter's stack: the accepted request is encoded again
        # inside an event, deeper in some other call stack.
        problem = f"nested too deeply (more than {MAX_NESTING} levels)"
        return Rejection(request_id, "body", problem, form)
    try:
        fields = {"native": _native, "gedge-v4": _gedge_v4, "gedge-v2": _gedge_v2}[form](body)
        if fields.request_id is not None:
            if not REQUEST_ID_PATTERN.match(fields.request_id):
                raise _Invalid(
                    "request_id",
                    f"{fields.request_id!r} must be 1-128 letters, digits, '_', ':' or '-'"
                    " starting with a letter or digit",
                )
            request_id = fields.request_id
        return _validate(fields, request_id, rules)
    except _Invalid as exc:
        return Rejection(request_id, exc.field, exc.problem, form)
    except RecursionError:
        return Rejection(request_id, "body", "nested too deeply", form)
