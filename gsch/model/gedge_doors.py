"""GEdge's two HTTP request shapes, translated into the GEdge v4 option form every door of
gsch reads (`gsch.model.forms`). No I/O: the HTTP side is `gsch.api.gedge`.

1. **The v4 front server** (`gs-scheduler/global_scheduler_server/GE_GSCH_server.py`):
   `POST /GEP/GSCH/test/{low,most,select}`, multipart, the workload YAML as the file
   `yaml_file` and the options as form fields (`user_name`, `workspace_name`, `project_name`,
   `callback_url`, `mode`, `source_cluster`, `source_node` or `pod_name`, `select_clusters`,
   `select_cluster`, `select_node`, `fast_option`). Earlier versions (v3) and the server's
   own HTML forms spell `select_clusters` as `selected_clusters`. The cluster list is Python
   literal text (`['c1',['c2','c3']]`), which GEdge `eval()`ed; gsch parses it as bracket
   notation, never evaluates it.
2. **The gm-center forwarding shape** (`gm-center/gmc_api_gateway`, fed by `gm-tool`):
   `POST <GS_SCHEDULER>?requestId=…&callbackUrl=…&priority=…&options=<JSON>` with the YAML
   as the body (sent as `application/json`). `options` is the v4 `option` object, with the
   UI's `workspace_uid`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from gsch.model.documents import (
    DEFAULT_LIMITS,
    DocumentError,
    DocumentLimits,
    is_manifest,
    load_documents,
)

# The v4 server's policy per route.
FRONT_SERVER_POLICIES: Mapping[str, str] = {
    "low": "GLowLatencyPriority",
    "most": "GMostRequestedPriority",
    "select": "GSelectedCluster",
}
_OPTION_FIELDS = ("user_name", "workspace_name", "workspace_uid", "project_name", "mode")
_PARAMETER_FIELDS = (
    "select_clusters",
    "select_cluster",
    "select_node",
    "source_cluster",
    "source_node",
    "pod_name",
)
_ALIASES = {"selected_clusters": "select_clusters"}  # v3 and the HTML forms
FRONT_SERVER_FIELDS = frozenset(
    {*_OPTION_FIELDS, *_PARAMETER_FIELDS, *_ALIASES, "callback_url", "fast_option"}
)
GATEWAY_PARAMETERS = frozenset({"requestId", "callbackUrl", "priority", "options"})


class DoorError(ValueError):
    """The HTTP request does not have GEdge's shape; `field` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Translated:
    """A GEdge request as a gsch request body, and the id its client gave (if any)."""

    body: dict[str, Any]
    client_request_id: str | None = None


def _manifests(yaml_text: bytes, where: str, limits: DocumentLimits) -> list[dict[str, Any]]:
    try:
        documents = load_documents(yaml_text, limits)
    except DocumentError as exc:
        raise DoorError(where, str(exc)) from None
    if not documents:
        raise DoorError(where, "holds no manifest")
    for index, document in enumerate(documents, start=1):
        if not is_manifest(document):
            raise DoorError(where, f"document {index} is not a Kubernetes manifest")
    return documents


def _present(value: str | None) -> str | None:
    # An HTML form sends an empty text field as "": GEdge's server read it as absent.
    return value if value not in (None, "") else None


def front_server_request(
    route: str,
    fields: Mapping[str, str],
    yaml_text: bytes,
    limits: DocumentLimits = DEFAULT_LIMITS,
) -> Translated:
    """A v4 front-server upload as a gsch request body. Raises `DoorError`."""
    policy = FRONT_SERVER_POLICIES.get(route)
    if policy is None:
        known = ", ".join(sorted(FRONT_SERVER_POLICIES))
        raise DoorError("route", f"{route!r} is not one of GEdge's routes ({known})")
    unknown = sorted(set(fields) - FRONT_SERVER_FIELDS)
    if unknown:
        raise DoorError(unknown[0], f"is not a field of GEdge's front server (known: "
                        f"{', '.join(sorted(FRONT_SERVER_FIELDS))})")  # fmt: skip
    values = {_ALIASES.get(name, name): _present(value) for name, value in fields.items()}
    if "select_clusters" in fields and "selected_clusters" in fields:
        raise DoorError("selected_clusters", "is select_clusters spelled as before v4: give one")
    option: dict[str, Any] = {k: values[k] for k in _OPTION_FIELDS if values.get(k) is not None}
    parameters = {k: values[k] for k in _PARAMETER_FIELDS if values.get(k) is not None}
    option["parameters"] = parameters
    fast = values.get("fast_option")
    if fast not in (None, "fast"):
        raise DoorError("fast_option", f"must be 'fast' or absent, got {fast!r}")
    workload = _manifests(yaml_text, "yaml_file", limits)
    body = _v4_body(policy, option, workload, values.get("callback_url"))
    return Translated(dict(body, fast=fast == "fast"))


def gateway_request(
    query: Mapping[str, str], yaml_text: bytes, limits: DocumentLimits = DEFAULT_LIMITS
) -> Translated:
    """A request as gm-center forwards it (query string + YAML body). Raises `DoorError`."""
    unknown = sorted(set(query) - GATEWAY_PARAMETERS)
    if unknown:
        known = ", ".join(sorted(GATEWAY_PARAMETERS))
        raise DoorError(unknown[0], f"is not a parameter of GEdge's API (known: {known})")
    priority = _present(query.get("priority"))
    if priority is None:
        raise DoorError("priority", "is required (GLowLatencyPriority, GMostRequestPriority, …)")
    option: Any = {}
    raw_options = _present(query.get("options"))
    if raw_options is not None:
        try:
            option = msgspec.json.decode(raw_options)
        except msgspec.DecodeError as exc:
            raise DoorError("options", f"not valid JSON: {exc}") from None
        if not isinstance(option, dict):
            raise DoorError("options", f"must be a JSON object, got {type(option).__name__}")
    workload = _manifests(yaml_text, "body", limits)
    body = _v4_body(priority, option, workload, _present(query.get("callbackUrl")))
    return Translated(body, _present(query.get("requestId")))


def _v4_body(
    priority: str, option: dict[str, Any], workload: list[dict[str, Any]], callback: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "scope": "global",
        "priority": priority,
        "option": option,
        "workload": workload,
    }
    if callback is not None:
        body["callback_url"] = callback
    return body
