"""Validate a request, whatever form it came in, into one typed `Request`, or a `Rejection`
that names the field and the problem. `decode_request` is the entry point and never raises on
bad input; reading the wire forms is `gsch.model.forms`' job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from gsch.model.admission.admit import AdmissionRefused, Scope, admit
from gsch.model.admission.rules import DEFAULT_ADMISSION, AdmissionRules
from gsch.model.affinity import node_affinity_of
from gsch.model.brackets import BracketError, parse_levels
from gsch.model.callbacks import callback_problem
from gsch.model.documents import (
    DocumentError,
    DocumentLimits,
    may_nest_deeper,
    read_request_body,
)
from gsch.model.forms import Fields, Invalid, claimed_request_id, detect_form, read_fields
from gsch.model.gedge import DEFAULT_COMPAT, GedgeCompat, adapt, unmapped_cluster_hint
from gsch.model.limits import (
    MAX_FIELD_CHARS,
    MAX_PROBLEM_CHARS,
    CountLimits,
    bounded,
    check_field_limits,
    check_level_counts,
    shown,
)
from gsch.model.request import (
    MODE_ALIASES,
    NAME_PATTERN,
    POLICY_ALIASES,
    POLICY_MODES,
    REQUEST_ID_PATTERN,
    SELECTOR_PATTERN,
    Policy,
    Request,
    is_selector,
)
from gsch.model.workload import WorkloadError, check_documents, demand_of, node_selector_of

Levels = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Rejection:
    """Why a request was refused. Field and problem are held to a length a listing can
    carry, whatever the sender wrote (an unknown field's name is the sender's text)."""

    request_id: str
    field: str
    problem: str
    form: str | None = None
    callback_url: str | None = None  # an allowed one the sender named: told of the rejection

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", bounded(self.field, MAX_FIELD_CHARS))
        object.__setattr__(self, "problem", bounded(self.problem, MAX_PROBLEM_CHARS))

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.problem}"


@dataclass(frozen=True)
class IntakeRules:
    max_request_bytes: int
    allowed_kinds: frozenset[str]
    admission: AdmissionRules = DEFAULT_ADMISSION
    limits: CountLimits = CountLimits()
    compat: GedgeCompat = DEFAULT_COMPAT
    callback_hosts: frozenset[str] = frozenset()  # [callbacks] allowed_hosts
    # Declared workspaces' uids by name: a request naming only its workspace's name still
    # lands in `<project>-<workspace_uid>` under the uid namespace rule.
    workspace_uids: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def document_limits(self) -> DocumentLimits:
        # A request document and its manifests; the manifests' own count is checked later,
        # with a reason that names the workload.
        return DocumentLimits(max_documents=self.limits.max_documents + 1, max_depth=MAX_NESTING)


# --- levels, policy and mode --------------------------------------------------------------


def _levels(fields: Fields, limits: CountLimits) -> Levels:
    raw = fields.levels
    where = fields.paths.levels
    if raw is None:
        return ()
    if isinstance(raw, str):
        try:
            levels = parse_levels(raw)
        except BracketError as exc:
            raise Invalid(where, str(exc)) from exc
    else:
        levels = tuple((item,) if isinstance(item, str) else tuple(item) for item in raw)
    check_level_counts(levels, where, limits)
    seen: set[str] = set()
    for index, level in enumerate(levels):
        if not level:
            raise Invalid(f"{where}[{index}]", "an empty group names no cluster")
        for name in level:
            if is_selector(name):
                if not SELECTOR_PATTERN.match(name):
                    raise Invalid(
                        where,
                        f"{shown(name)} is not a valid label selector (key=value, joined by '&')",
                    )
            elif not NAME_PATTERN.match(name):
                raise Invalid(where, unmapped_cluster_hint(name))
            if name in seen:
                raise Invalid(where, f"cluster {shown(name)} appears more than once")
            seen.add(name)
    return levels


def _policy_and_mode(fields: Fields) -> tuple[Policy, str]:
    policy = POLICY_ALIASES.get(fields.policy)
    if policy is None:
        known = ", ".join(p.value for p in Policy)
        raise Invalid("policy", f"unknown policy {shown(fields.policy)} (known: {known})")
    modes = POLICY_MODES[policy]
    mode = fields.mode or "default"
    mode = MODE_ALIASES.get(mode, mode)
    if mode == "default":
        mode = modes[0]
    if mode not in modes:
        raise Invalid(
            "mode", f"{shown(fields.mode)} is not a mode of {policy} ({', '.join(modes)})"
        )
    return policy, mode


# --- what each policy needs besides levels -----------------------------------------------


@dataclass(frozen=True)
class _Target:
    """Where a request asks to be placed, once its policy's own requirements hold."""

    levels: Levels
    select_node: str | None = None


# (fields, mode, parsed levels) -> target; raises `Invalid`.
_PolicyCheck = Callable[[Fields, str, Levels], _Target]


def _needs_levels(fields: Fields, levels: Levels) -> Levels:
    if not levels:
        raise Invalid(fields.paths.levels, "needs at least one level of clusters")
    return levels


def _any_policy(fields: Fields, mode: str, levels: Levels) -> _Target:
    return _Target(_needs_levels(fields, levels))


def _selected_cluster(fields: Fields, mode: str, levels: Levels) -> _Target:
    if mode != "node":
        return _any_policy(fields, mode, levels)
    # Mode node names one cluster and one node instead of levels.
    paths = fields.paths
    if not fields.select_cluster:
        raise Invalid(paths.select_cluster, "is required for GSelectedCluster mode node")
    if not fields.select_node:
        raise Invalid(paths.select_node, "is required for GSelectedCluster mode node")
    for name, where in (
        (fields.select_cluster, paths.select_cluster),
        (fields.select_node, paths.select_node),
    ):
        if not NAME_PATTERN.match(name):
            raise Invalid(where, f"{shown(name)} is not a valid name")
    return _Target(((fields.select_cluster,),), fields.select_node)


def _set_clusters(fields: Fields, mode: str, levels: Levels) -> _Target:
    levels = _needs_levels(fields, levels)
    if all(len(level) == 1 for level in levels):
        # GSetClusters places on every cluster of a set; a flat list of names is one set
        # (nest lists, [[c1,c2],[c3,c4]], for a set with a fallback set).
        levels = (tuple(name for level in levels for name in level),)
    return _Target(levels)


def _low_latency(fields: Fields, mode: str, levels: Levels) -> _Target:
    levels = _needs_levels(fields, levels)
    policy, source, paths = Policy.LOW_LATENCY, fields.source, fields.paths
    if source is None or not source.cluster:
        raise Invalid(paths.source, f"{policy} needs the source cluster")
    if mode == "fromnode" and not source.node:
        raise Invalid(paths.source_node, f"{policy} mode fromnode needs the source node")
    if mode == "frompod" and not source.pod:
        raise Invalid(paths.source_pod, f"{policy} mode frompod needs the source pod")
    return _Target(levels)


# Policies not named here need only a non-empty list of levels.
_POLICY_CHECKS: Mapping[Policy, _PolicyCheck] = {
    Policy.SELECTED_CLUSTER: _selected_cluster,
    Policy.SET_CLUSTERS: _set_clusters,
    Policy.LOW_LATENCY: _low_latency,
}


# --- the whole request -------------------------------------------------------------------

_INT64_MAX = 2**63 - 1


def _validate(fields: Fields, request_id: str, rules: IntakeRules) -> Request:
    check_field_limits(fields, rules.limits)
    policy, mode = _policy_and_mode(fields)
    levels = _levels(fields, rules.limits)
    target = _POLICY_CHECKS.get(policy, _any_policy)(fields, mode, levels)
    try:
        check_documents(fields.workload, rules.allowed_kinds)
        demand = demand_of(fields.workload)
        affinity = node_affinity_of(fields.workload)
    except WorkloadError as exc:
        raise Invalid(exc.field, exc.problem) from exc
    if max(demand.cpu_m, demand.memory, demand.gpu, demand.pods) > _INT64_MAX:
        # Events must decode again: msgspec reads integers only up to 64 bits.
        raise Invalid("workload", "its total resource demand is out of range")
    if fields.callback_url is not None:
        problem = callback_problem(fields.callback_url, rules.callback_hosts)
        if problem is not None:
            raise Invalid("callback_url", problem)
    workspace_uid = _workspace_uid(fields, rules)
    scope = Scope.of(
        fields.project_name, fields.workspace_name, workspace_uid, fields.namespace,
        rules.admission,
    )  # fmt: skip
    try:
        workload = admit(fields.workload, scope, rules.admission)
    except AdmissionRefused as exc:
        raise Invalid(exc.violation.field, exc.violation.problem) from exc
    by_uid = rules.admission.workspace_namespace == "uid" and fields.project_name is not None
    return Request(
        request_id=request_id,
        policy=policy,
        mode=mode,
        levels=target.levels,
        select_node=target.select_node,
        source=fields.source,
        user_name=fields.user_name,
        workspace_name=fields.workspace_name,
        workspace_uid=workspace_uid,
        project_name=fields.project_name,
        # Under the uid rule the namespace is written down: every reader (binder, frompod)
        # then finds it without knowing the rule.
        namespace=scope.target if by_uid else fields.namespace,
        fast=fields.fast,
        form=fields.form,
        callback_url=fields.callback_url,
        workload=workload,
        demand=demand,
        node_selector=node_selector_of(fields.workload),
        node_affinity=affinity,
    )


def _workspace_uid(fields: Fields, rules: IntakeRules) -> str | None:
    """The request's workspace uid: its own, else its declared workspace's. Under the uid
    namespace rule a request with a project and no namespace of its own needs one."""
    uid = fields.workspace_uid
    if uid is None and fields.workspace_name is not None:
        uid = rules.workspace_uids.get(fields.workspace_name)
    if uid is not None and not _UID_PATTERN.match(uid):
        raise Invalid("workspace_uid", f"{shown(uid)} must be 1-63 of a-z, 0-9 and '-'")
    needs_uid = (
        rules.admission.workspace_namespace == "uid"
        and fields.project_name is not None
        and fields.namespace is None
    )
    if needs_uid and uid is None:
        known = (
            f"workspace {shown(fields.workspace_name)} is not declared with a uid"
            if fields.workspace_name
            else "the request names no workspace"
        )
        raise Invalid(
            "workspace_uid",
            "is required: namespaces here are <project>-<workspace_uid>"
            f' ([admission] workspace_namespace = "uid"), and {known}',
        )
    return uid


_UID_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")

MAX_NESTING = 64  # Kubernetes manifests nest about 15 levels deep


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether anything in `value` (itself at depth 1) sits deeper than `limit`. Recursion
    is bounded by `limit`: it stops one level below it."""
    if limit < 1:
        return True
    if isinstance(value, dict):
        children: Iterable[Any] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    for child in children:
        if isinstance(child, dict | list):
            if _depth_exceeds(child, limit - 1):
                return True
        elif limit < 2:
            return True  # a scalar one level below the limit
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
        body, read_as_json = read_request_body(data, rules.document_limits)
    except DocumentError as exc:
        return Rejection(fallback_id, "body", str(exc))
    except RecursionError:
        # Reachable well under the size limit ("[[[[..."); msgspec raises it while decoding.
        return Rejection(fallback_id, "body", "nested too deeply")
    if not isinstance(body, dict):
        return Rejection(fallback_id, "body", f"must be a JSON object, got {type(body).__name__}")
    form = detect_form(body)
    request_id = fallback_id
    claimed_id = claimed_request_id(form, body)
    if claimed_id is not None and REQUEST_ID_PATTERN.match(claimed_id):
        # Even a request rejected for another field is recorded under the id its sender knows.
        request_id = claimed_id
    if may_nest_deeper(data, read_as_json, MAX_NESTING) and _depth_exceeds(body, MAX_NESTING):
        # Bounded here, not by the interpreter's stack: the accepted request is encoded again
        # inside an event, deeper in some other call stack.
        problem = f"nested too deeply (more than {MAX_NESTING} levels)"
        return Rejection(request_id, "body", problem, form)
    fields: Fields | None = None
    try:
        fields = adapt(read_fields(form, body), rules.compat)
        if fields.request_id is not None:
            if not REQUEST_ID_PATTERN.match(fields.request_id):
                raise Invalid(
                    "request_id",
                    f"{shown(fields.request_id)} must be 1-128 letters, digits, '_', ':' or '-'"
                    " starting with a letter or digit",
                )
            request_id = fields.request_id
        return _validate(fields, request_id, rules)
    except Invalid as exc:
        callback = _allowed_callback(fields, rules) if exc.field != "callback_url" else None
        return Rejection(request_id, exc.field, exc.problem, form, callback)
    except RecursionError:
        return Rejection(request_id, "body", "nested too deeply", form)


def _allowed_callback(fields: Fields | None, rules: IntakeRules) -> str | None:
    url = fields.callback_url if fields is not None else None
    if url is None or callback_problem(url, rules.callback_hosts) is not None:
        return None
    return url
