"""The wire forms of a request, and their translation into one set of common `Fields`.

Forms (DESIGN.md §3): native snake_case JSON; GEdge v4 option form (`scope`/`priority`/`option`);
GEdge v2 embedded form (a manifest whose first container has a `gschConfig` env var). This module
knows how each form spells things and where; what the fields must mean is `gsch.model.intake`'s
job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import msgspec

from gsch.model.ids import REQUEST_ID_KEY
from gsch.model.request import Source
from gsch.model.workload import pod_spec

FormName = Literal["native", "gedge-v4", "gedge-v2"]
LevelsInput = list[str | list[str]] | str
Workload = dict[str, Any] | list[dict[str, Any]]

# The embedded form has no request_id field: the sender's id rides as this annotation.


class Invalid(Exception):
    """A request field is wrong; `field` is the path as the sender wrote it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class FieldPaths:
    """Where a form keeps each field that validation may complain about, so that a rejection
    names the field in the sender's own spelling."""

    levels: str = "select_clusters"
    select_cluster: str = "select_cluster"
    select_node: str = "select_node"
    source: str = "source"
    source_node: str = "source.node"
    source_pod: str = "source.pod"


_V4_PATHS = FieldPaths(
    levels="option.parameters.select_clusters",
    select_cluster="option.parameters.select_cluster",
    select_node="option.parameters.select_node",
    source="option.parameters.source_cluster",
    source_node="option.parameters.source_node",
    source_pod="option.parameters.pod_name",
)

_V2_PATHS = FieldPaths(
    levels="env.gschConfig.targetClusters",
    select_cluster="env.gschConfig.option.selectCluster",
    select_node="env.gschConfig.option.selectNode",
    source="env.gschConfig.option.sourceCluster",
    source_node="env.gschConfig.option.sourceNode",
    source_pod="env.gschConfig.option.sourcePod",
)


@dataclass(frozen=True)
class Fields:
    """The fields common to all forms, before validation."""

    form: FormName
    policy: str
    workload: tuple[dict[str, Any], ...]
    paths: FieldPaths = FieldPaths()
    request_id: str | None = None
    mode: str | None = None
    levels: LevelsInput | None = None
    select_cluster: str | None = None
    select_node: str | None = None
    source: Source | None = None
    user_name: str | None = None
    workspace_name: str | None = None
    workspace_uid: str | None = None
    project_name: str | None = None
    namespace: str | None = None
    fast: bool = False
    callback_url: str | None = None


# --- wire structs ------------------------------------------------------------------------


class _NativeSource(msgspec.Struct, forbid_unknown_fields=True):
    cluster: str
    node: str | None = None
    pod: str | None = None


class _Native(msgspec.Struct, forbid_unknown_fields=True):
    policy: str
    workload: Workload
    request_id: str | None = None
    mode: str | None = None
    select_clusters: LevelsInput | None = None
    select_cluster: str | None = None
    select_node: str | None = None
    source: _NativeSource | None = None
    user_name: str | None = None
    workspace_name: str | None = None
    workspace_uid: str | None = None
    project_name: str | None = None
    namespace: str | None = None
    fast: bool = False
    callback_url: str | None = None


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
    workspace_uid: str | None = None  # GEdge's UI sends it: its namespaces are <project>-<uid>
    project_name: str | None = None
    mode: str | None = None
    parameters: _V4Parameters = msgspec.field(default_factory=_V4Parameters)


class _V4(msgspec.Struct, forbid_unknown_fields=True):
    priority: str
    workload: Workload
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


class _SnakeOption(_V4Parameters, forbid_unknown_fields=True):
    """v3.5+ options: the v4 parameters flat in the option, or under `parameters`."""

    user_name: str | None = None
    workspace_name: str | None = None
    workspace_uid: str | None = None
    project_name: str | None = None
    mode: str | None = None
    parameters: _V4Parameters = msgspec.field(default_factory=_V4Parameters)


class _SnakeConfig(msgspec.Struct, forbid_unknown_fields=True):
    """gschConfig as GEdge wrote it from v3.5 on (7th deck p.12): `scope` for `type`,
    `select_clusters` for `targetClusters`, snake_case options, flat or under `parameters`."""

    priority: str
    scope: str = "global"
    select_clusters: LevelsInput | None = None
    mode: str | None = None
    option: _SnakeOption = msgspec.field(default_factory=_SnakeOption)
    fast: bool = False


_SNAKE_PATHS = FieldPaths(
    levels="env.gschConfig.select_clusters",
    select_cluster="env.gschConfig.option.select_cluster",
    select_node="env.gschConfig.option.select_node",
    source="env.gschConfig.option.source_cluster",
    source_node="env.gschConfig.option.source_node",
    source_pod="env.gschConfig.option.pod_name",
)


# --- msgspec's errors, in the sender's terms ---------------------------------------------

_MSGSPEC_PATH = re.compile(r"^(.*?)(?: - at `\$\.?(.*)`)?$", re.DOTALL)


def _from_validation(exc: msgspec.ValidationError, prefix: str = "") -> Invalid:
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
    return Invalid(field, problem[0].lower() + problem[1:])


# --- one reader per form -----------------------------------------------------------------


def _documents(workload: Workload) -> tuple[dict[str, Any], ...]:
    return tuple(workload) if isinstance(workload, list) else (workload,)


def _native(body: dict[str, Any]) -> Fields:
    try:
        wire = msgspec.convert(body, _Native)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    source = None
    if wire.source is not None:
        source = Source(wire.source.cluster, wire.source.node, wire.source.pod)
    return Fields(
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
        workspace_uid=wire.workspace_uid,
        project_name=wire.project_name,
        namespace=wire.namespace,
        fast=wire.fast,
        callback_url=wire.callback_url,
    )


def _gedge_v4(body: dict[str, Any]) -> Fields:
    try:
        wire = msgspec.convert(body, _V4)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    if wire.scope not in ("global", "##global"):
        raise Invalid("scope", f"must be 'global', got {wire.scope!r}")
    params = wire.option.parameters
    source = None
    if params.source_cluster is not None:
        source = Source(params.source_cluster, params.source_node, params.pod_name)
    levels = params.select_clusters if params.select_clusters is not None else wire.select_clusters
    return Fields(
        form="gedge-v4",
        policy=wire.priority,
        workload=_documents(wire.workload),
        paths=_V4_PATHS,
        request_id=wire.request_id,
        mode=wire.option.mode,
        levels=levels,
        select_cluster=params.select_cluster,
        select_node=params.select_node,
        source=source,
        user_name=wire.option.user_name,
        workspace_name=wire.option.workspace_name,
        workspace_uid=wire.option.workspace_uid,
        project_name=wire.option.project_name,
        fast=wire.fast or wire.fast_option == "fast",
        callback_url=wire.callback_url,
    )


def _manifests(body: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The manifests of an embedded-form body: itself, or the items of a `v1/List` (what a
    multi-document YAML becomes, `gsch.model.documents`)."""
    if body.get("kind") != "List":
        return (body,)
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise Invalid("items", "a List needs its manifests in items")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise Invalid(f"items[{index}]", f"must be a manifest, got {type(item).__name__}")
    return tuple(items)


def _first_container_env(manifest: dict[str, Any]) -> list[Any] | None:
    spec = pod_spec(manifest)
    containers = spec.get("containers") if spec else None
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        return None
    env = containers[0].get("env") or []
    if not isinstance(env, list):
        raise Invalid("spec.containers[0].env", "must be a list")
    return env


def _gsch_config(manifests: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], str]:
    """The manifest carrying `gschConfig` in its first container, and the raw value."""
    for manifest in manifests:
        env = _first_container_env(manifest)
        raw = next(
            (
                e.get("value")
                for e in env or ()
                if isinstance(e, dict) and e.get("name") == "gschConfig"
            ),
            None,
        )
        if isinstance(raw, str):
            return manifest, raw
    if len(manifests) == 1:
        if pod_spec(manifests[0]) is None or _first_container_env(manifests[0]) is None:
            raise Invalid("spec.containers[0]", "the embedded form needs a first container")
        raise Invalid("env.gschConfig", "the first container has no gschConfig string value")
    raise Invalid(
        "env.gschConfig",
        "no manifest's first container has a gschConfig string value (these manifests need"
        " scheduling options: a gschConfig, or a request document before them)",
    )


def _gedge_v2(body: dict[str, Any]) -> Fields:
    manifests = _manifests(body)
    manifest, raw = _gsch_config(manifests)
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise Invalid("env.gschConfig", f"not valid JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise Invalid("env.gschConfig", f"must be a JSON object, got {type(decoded).__name__}")
    fields = _snake_config(decoded) if "scope" in decoded or "select_clusters" in decoded else None
    if fields is None:
        fields = _camel_config(decoded)
    metadata = manifest.get("metadata") or {}
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    if namespace is not None and not isinstance(namespace, str):
        raise Invalid("metadata.namespace", f"must be a string, got {type(namespace).__name__}")
    return replace(fields, workload=manifests, request_id=_v2_request_id(body), namespace=namespace)


def _camel_config(decoded: dict[str, Any]) -> Fields:
    try:
        config = msgspec.convert(decoded, _V2Config)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc, "env.gschConfig") from exc
    if config.type != "global":
        raise Invalid("env.gschConfig.type", f"must be 'global', got {config.type!r}")
    option = config.option
    source = None
    if option.sourceCluster is not None:
        source = Source(option.sourceCluster, option.sourceNode, option.sourcePod)
    return Fields(
        form="gedge-v2",
        policy=config.priority,
        workload=(),
        paths=_V2_PATHS,
        mode=config.mode,
        levels=config.targetClusters,
        select_cluster=option.selectCluster,
        select_node=option.selectNode,
        source=source,
        fast=config.fast,
    )


def _snake_config(decoded: dict[str, Any]) -> Fields:
    try:
        config = msgspec.convert(decoded, _SnakeConfig)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc, "env.gschConfig") from exc
    if config.scope not in ("global", "##global"):
        raise Invalid("env.gschConfig.scope", f"must be 'global', got {config.scope!r}")
    option, nested = config.option, config.option.parameters

    def pick(name: str) -> Any:
        value = getattr(nested, name)
        return value if value is not None else getattr(option, name)

    source = None
    if pick("source_cluster") is not None:
        source = Source(pick("source_cluster"), pick("source_node"), pick("pod_name"))
    levels = pick("select_clusters")
    return Fields(
        form="gedge-v2",
        policy=config.priority,
        workload=(),
        paths=_SNAKE_PATHS,
        mode=option.mode if option.mode is not None else config.mode,
        levels=levels if levels is not None else config.select_clusters,
        select_cluster=pick("select_cluster"),
        select_node=pick("select_node"),
        source=source,
        user_name=option.user_name,
        workspace_name=option.workspace_name,
        workspace_uid=option.workspace_uid,
        project_name=option.project_name,
        fast=config.fast,
    )


def _v2_request_id(body: dict[str, Any]) -> str | None:
    """The id in the annotation `gsch.io/request-id` of the manifest (of a List: of the
    first item that has one)."""
    manifests = (
        tuple(item for item in body.get("items") or () if isinstance(item, dict))
        if body.get("kind") == "List"
        else (body,)
    )
    for manifest in manifests:
        metadata = manifest.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        value = annotations.get(REQUEST_ID_KEY) if isinstance(annotations, dict) else None
        if isinstance(value, str):
            return value
    return None


_READERS: Mapping[FormName, Callable[[dict[str, Any]], Fields]] = {
    "native": _native,
    "gedge-v4": _gedge_v4,
    "gedge-v2": _gedge_v2,
}


def detect_form(body: dict[str, Any]) -> FormName:
    if "apiVersion" in body and "kind" in body:
        return "gedge-v2"
    if "priority" in body or "option" in body or "scope" in body:
        return "gedge-v4"
    return "native"


def claimed_request_id(form: FormName, body: dict[str, Any]) -> str | None:
    """The id the sender gave, read without decoding the form (it may not decode): a request
    rejected for another field is still recorded under the id its sender knows."""
    value = _v2_request_id(body) if form == "gedge-v2" else body.get("request_id")
    return value if isinstance(value, str) else None


def set_request_id(form: FormName, body: dict[str, Any], request_id: str) -> None:
    """Write `request_id` into `body` where the intake reads it: `request_id`, or in the
    embedded form the annotation `gsch.io/request-id` (of a List: on its first manifest)."""
    if form != "gedge-v2":
        body["request_id"] = request_id
        return
    holder = body
    if body.get("kind") == "List":
        items = body.get("items")
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise Invalid("items", "a List needs its manifests in items")
        holder = items[0]
    metadata = holder.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {}) if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        raise Invalid("metadata.annotations", "must be an object")
    annotations[REQUEST_ID_KEY] = request_id


def read_fields(form: FormName, body: dict[str, Any]) -> Fields:
    """The common fields of `body`, written in `form`. Raises `Invalid`."""
    return _READERS[form](body)
