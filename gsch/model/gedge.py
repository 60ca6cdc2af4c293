"""What GEdge's clients write that gsch reads differently, translated once at intake, for
every form. No I/O.

- **Cluster names.** GEdge's dashboard names clusters like `mec(ilsan)`, which is no
  Kubernetes name and no subject token gsch would accept from a sender. An operator maps
  each such name to the member cluster's gsch name (`[gedge] cluster_aliases`); a request's
  levels, `select_cluster` and source cluster are read through the map before validation.
  An unmapped name is refused with the option to set. A map, not an escape: the mapping is
  written down and reviewed, two spellings cannot silently become one cluster, and every
  event, metric and API answer keeps one name per cluster.
- **Resource names.** GEdge's UI writes GPU limits as `NVIDIAGPU`, which Kubernetes rejects
  and gsch's demand would ignore (the workload would ask for no GPU): renamed per
  `[gedge] resource_aliases` (`NVIDIAGPU` → `nvidia.com/gpu`), and an empty value (the UI's
  "no GPU") dropped.
- **Scheduler names.** GEdge's YAMLs carry `schedulerName: griffin_scheduler`, GEdge's own
  local scheduler; on a cluster without it the pod stays Pending. `[gedge] scheduler_names`
  maps each such name to another scheduler, or to "" (removed: kube-scheduler places the pod
  on the node gsch chose).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gsch.model.brackets import BracketError, parse_levels
from gsch.model.forms import Fields, Invalid, LevelsInput
from gsch.model.limits import shown
from gsch.model.request import Source
from gsch.model.workload import pod_spec

DEFAULT_RESOURCE_ALIASES: Mapping[str, str] = {"NVIDIAGPU": "nvidia.com/gpu"}
DEFAULT_SCHEDULER_NAMES: Mapping[str, str] = {"griffin_scheduler": ""}


@dataclass(frozen=True)
class GedgeCompat:
    cluster_aliases: Mapping[str, str] = field(default_factory=dict)
    resource_aliases: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_RESOURCE_ALIASES)
    )
    scheduler_names: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_SCHEDULER_NAMES)
    )


DEFAULT_COMPAT = GedgeCompat()


# --- cluster names ---------------------------------------------------------------------


def _cluster(name: str, aliases: Mapping[str, str]) -> str:
    return aliases.get(name, name)


def _levels(levels: LevelsInput | None, aliases: Mapping[str, str]) -> LevelsInput | None:
    if levels is None or not aliases:
        return levels
    if isinstance(levels, str):
        try:
            parsed = parse_levels(levels)
        except BracketError:
            return levels  # the intake reports it, in the sender's terms
        return [
            _cluster(level[0], aliases)
            if len(level) == 1
            else [_cluster(n, aliases) for n in level]
            for level in parsed
        ]
    return [
        _cluster(item, aliases) if isinstance(item, str) else [_cluster(n, aliases) for n in item]
        for item in levels
    ]


def _source(source: Source | None, aliases: Mapping[str, str]) -> Source | None:
    if source is None or source.cluster not in aliases:
        return source
    return Source(aliases[source.cluster], source.node, source.pod)


# --- workload --------------------------------------------------------------------------


def _resources(container: dict[str, Any], where: str, aliases: Mapping[str, str]) -> None:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        return
    for part in ("limits", "requests"):
        amounts = resources.get(part)
        if not isinstance(amounts, dict):
            continue
        renamed: dict[str, Any] = {}
        for name, amount in amounts.items():
            target = aliases.get(name, name)
            if target != name and amount in ("", None):
                continue  # GEdge's UI writes NVIDIAGPU: "" for "no GPU"
            if target != name and target in amounts:
                raise Invalid(
                    f"{where}.resources.{part}.{name}",
                    f"names the same resource as {target!r}, which is also given",
                )
            renamed[target] = amount
        resources[part] = renamed


def _renames_any(spec: dict[str, Any], compat: GedgeCompat) -> bool:
    """Whether `_pod` would change anything in `spec` (a GEdge scheduler or resource name)."""
    scheduler = spec.get("schedulerName")
    if isinstance(scheduler, str) and scheduler in compat.scheduler_names:
        return True
    aliases = compat.resource_aliases.keys()
    for group in ("initContainers", "containers"):
        containers = spec.get(group)
        for container in containers if isinstance(containers, list) else ():
            resources = container.get("resources") if isinstance(container, dict) else None
            if not isinstance(resources, dict):
                continue
            for part in ("limits", "requests"):
                amounts = resources.get(part)
                if isinstance(amounts, dict) and not aliases.isdisjoint(amounts):
                    return True
    return False


def _pod(spec: dict[str, Any], where: str, compat: GedgeCompat) -> None:
    scheduler = spec.get("schedulerName")
    if isinstance(scheduler, str) and scheduler in compat.scheduler_names:
        target = compat.scheduler_names[scheduler]
        if target:
            spec["schedulerName"] = target
        else:
            del spec["schedulerName"]
    for group in ("initContainers", "containers"):
        containers = spec.get(group)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            if isinstance(container, dict):
                _resources(container, f"{where}.{group}[{index}]", compat.resource_aliases)


def _workload(
    documents: tuple[dict[str, Any], ...], compat: GedgeCompat
) -> tuple[dict[str, Any], ...]:
    if not compat.resource_aliases and not compat.scheduler_names:
        return documents
    adapted = []
    for index, document in enumerate(documents):
        spec = pod_spec(document) if isinstance(document, dict) else None
        if spec is None or not _renames_any(spec, compat):
            adapted.append(document)  # nothing of GEdge's in it: no copy to make
            continue
        copy = _deep_copy(document)
        spec = pod_spec(copy)
        assert spec is not None  # the copy has the original's shape
        _pod(spec, f"workload[{index}]", compat)
        adapted.append(copy)
    return tuple(adapted)


def _deep_copy(value: Any) -> Any:
    # Intake values are JSON (dicts, lists, scalars): a plain copy, no `copy.deepcopy` magic.
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


# --- the whole request -----------------------------------------------------------------


def adapt(fields: Fields, compat: GedgeCompat) -> Fields:
    """`fields` with GEdge's names translated (see the module's docstring)."""
    aliases = compat.cluster_aliases
    levels = _levels(fields.levels, aliases)
    select_cluster = _cluster(fields.select_cluster, aliases) if fields.select_cluster else None
    source = _source(fields.source, aliases)
    workload = _workload(fields.workload, compat)
    if (levels, select_cluster, source, workload) == (
        fields.levels,
        fields.select_cluster,
        fields.source,
        fields.workload,
    ):
        return fields  # nothing of GEdge's in it (most requests): no copy to make
    return replace(
        fields, levels=levels, select_cluster=select_cluster, source=source, workload=workload
    )


def unmapped_cluster_hint(name: str) -> str:
    """Said of a cluster name gsch cannot use, so the operator knows what to configure."""
    return (
        f"{shown(name)} is not a valid cluster name (map a GEdge cluster name to a gsch"
        " cluster in [gedge] cluster_aliases)"
    )
