"""Required node affinity of a workload (`requiredDuringSchedulingIgnoredDuringExecution`),
read once at intake into plain terms the node filter can match without touching the manifest.

As in Kubernetes: the node selector terms are ORed, the requirements of one term are ANDed;
`matchExpressions` test node labels, `matchFields` the node's `metadata.name`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from gsch.model.workload import WorkloadError as AffinityError
from gsch.model.workload import pod_spec

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


class NodeRequirement(msgspec.Struct, frozen=True, omit_defaults=True):
    key: str
    operator: str
    values: tuple[str, ...] = ()
    field: bool = False  # a matchFields requirement: `key` is metadata.name


Terms = tuple[tuple[NodeRequirement, ...], ...]


def node_affinity_of(documents: tuple[dict[str, Any], ...]) -> Terms:
    """The required terms of the first pod-bearing document (as for its node selector)."""
    for index, document in enumerate(documents):
        spec = pod_spec(document)
        if spec is not None:
            return required_terms(spec, f"workload[{index}]")
    return ()


def required_terms(spec: dict[str, Any], where: str) -> Terms:
    """The required node selector terms of one pod spec; () when it has none."""
    where = f"{where}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    affinity = spec.get("affinity")
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, dict) else None
    required = (
        node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(node_affinity, dict)
        else None
    )
    if required is None:
        return ()
    terms = required.get("nodeSelectorTerms") if isinstance(required, dict) else None
    if not isinstance(terms, list) or not terms:
        raise AffinityError(f"{where}.nodeSelectorTerms", "must be a non-empty list")
    parsed = []
    for t, term in enumerate(terms):
        at = f"{where}.nodeSelectorTerms[{t}]"
        if not isinstance(term, dict):
            raise AffinityError(at, "must be an object")
        requirements = [
            _requirement(item, f"{at}.{kind}[{i}]", kind == "matchFields")
            for kind in ("matchExpressions", "matchFields")
            for i, item in enumerate(_list(term.get(kind), f"{at}.{kind}"))
        ]
        parsed.append(tuple(requirements))
    return tuple(parsed)


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise AffinityError(where, "must be a list")
    return value


def _requirement(item: object, where: str, field: bool) -> NodeRequirement:
    if not isinstance(item, dict) or not isinstance(item.get("key"), str):
        raise AffinityError(f"{where}.key", "is required")
    operator = item.get("operator")
    if operator not in OPERATORS:
        raise AffinityError(f"{where}.operator", f"must be one of {', '.join(OPERATORS)}")
    values = _list(item.get("values"), f"{where}.values")
    if operator in ("Gt", "Lt") and (len(values) != 1 or not _is_int(values[0])):
        raise AffinityError(f"{where}.values", f"{operator} needs exactly one integer")
    return NodeRequirement(item["key"], operator, tuple(str(v) for v in values), field)


def _is_int(value: object) -> bool:
    try:
        int(str(value))
    except ValueError:
        return False
    return True


def term_matches(term: tuple[NodeRequirement, ...], node: str, labels: Mapping[str, str]) -> bool:
    # An empty term matches no node, as in Kubernetes.
    return bool(term) and all(_holds(r, node, labels) for r in term)


def _holds(requirement: NodeRequirement, node: str, labels: Mapping[str, str]) -> bool:
    value = node if requirement.field else labels.get(requirement.key)
    match requirement.operator:
        case "In":
            return value in requirement.values
        case "NotIn":
            return value not in requirement.values
        case "Exists":
            return value is not None
        case "DoesNotExist":
            return value is None
        case "Gt" | "Lt" if value is not None and _is_int(value):
            wanted = int(requirement.values[0])
            return int(value) > wanted if requirement.operator == "Gt" else int(value) < wanted
        case _:
            return False
