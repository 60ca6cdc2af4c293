"""Read a request body that is JSON or YAML — one document or several — safely, and make one
request body of it. No I/O.

`load_documents` is the one loader every door uses (the bus intake, `POST /v1/requests`,
`POST /v1/plan`, the GEdge door, `gsch submit`): JSON first (the wire's own form), else YAML
with PyYAML's safe loader, bounded before anything is built:

- the text's size is the caller's limit (`intake.max_request_bytes` on the bus);
- aliases are allowed (manifests use anchors) but the tree they expand to is counted, shared
  subtrees as often as they are referenced, and refused over `max_nodes`: an "alias bomb"
  (a billion laughs) is refused while it is a few hundred bytes of graph, before it is ever
  expanded; a recursive alias is refused;
- nesting deeper than `max_depth` is refused;
- values become what Kubernetes' own YAML-to-JSON reading makes of them: timestamps stay
  text, keys are text, and what JSON cannot hold (binary, NaN, infinities, sets) is refused.

`request_body` turns the documents into one body: a single document is the body itself; a
request document (native or GEdge v4 form) followed by manifests takes them as its workload;
several manifests (GEdge's multi-document YAMLs) become a Kubernetes `v1/List` of them, which
the GEdge v2 embedded form reads (its `gschConfig` may sit in any of them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
import yaml

MAX_DOCUMENTS = 33  # a request document and up to intake.max_documents (32) manifests
MAX_NODES = 100_000  # scalars, mappings and sequences, aliases expanded
MAX_DEPTH = 64  # Kubernetes manifests nest about 15 levels deep


class DocumentError(ValueError):
    """The body cannot be read; the message says what and where (line, column)."""


@dataclass(frozen=True)
class DocumentLimits:
    max_documents: int = MAX_DOCUMENTS
    max_nodes: int = MAX_NODES
    max_depth: int = MAX_DEPTH


DEFAULT_LIMITS = DocumentLimits()

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _check_graph(root: yaml.Node, limits: DocumentLimits, budget: list[int]) -> None:
    """Count the nodes `root` expands to (aliases included, each time it is referenced) and
    its depth, without expanding it: a subtree's size is computed once and reused."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, depth)
    on_path: set[int] = set()
    # An explicit stack, not recursion (libyaml itself stops at 1,000 levels).
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            size, depth = 1, 1
            for child in _children(node):
                child_size, child_depth = sizes[id(child)]
                size += child_size
                depth = max(depth, child_depth + 1)
                if size > limits.max_nodes:
                    break
            if depth > limits.max_depth:
                raise DocumentError(
                    f"nested too deeply (more than {limits.max_depth} levels, at {_where(node)})"
                )
            if size > limits.max_nodes:
                raise DocumentError(
                    f"expands to more than {limits.max_nodes} values (aliases counted each time"
                    f" they are used; at {_where(node)})"
                )
            sizes[key] = (size, depth)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise DocumentError(f"an alias refers to itself (at {_where(node)})")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    budget[0] -= sizes[id(root)][0]
    if budget[0] < 0:
        raise DocumentError(f"the documents hold more than {limits.max_nodes} values in all")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _json_value(value: Any, where: str) -> Any:
    """What Kubernetes' YAML-to-JSON conversion makes of a constructed value."""
    if isinstance(value, dict):
        return {_json_key(key, where): _json_value(item, where) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item, where) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise DocumentError(f"{value!r} cannot be written as JSON ({where})")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise DocumentError(f"a {type(value).__name__} value cannot be written as JSON ({where})")


def _json_key(key: Any, where: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    raise DocumentError(f"a {type(key).__name__} cannot be a mapping key ({where})")


class _TextTimestamps(_Loader):  # type: ignore[misc]
    """The safe loader, with timestamps left as text and mapping keys made text as they are
    read (as kubectl reads them: `1` and `true` stay two keys), and a key given twice refused
    (which of the two would count is not for gsch to guess)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
        own = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        self.flatten_mapping(node)  # merge keys (`<<: *base`) first, then the node's own
        merged = len(node.value) - own
        mapping: dict[str, Any] = {}
        given: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = _json_key(self.construct_object(key_node, deep=deep), _where(key_node))
            if index >= merged:  # a merged key may be overridden; an own key only once
                if key in given:
                    where = _where(key_node)
                    raise DocumentError(f"the key {key[:64]!r} is given twice ({where})")
                given.add(key)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


_TextTimestamps.yaml_constructors = dict(_Loader.yaml_constructors)
_TextTimestamps.yaml_constructors["tag:yaml.org,2002:timestamp"] = _Loader.construct_yaml_str


def _yaml_documents(text: bytes, limits: DocumentLimits) -> list[Any]:
    loader = _TextTimestamps(text)
    documents: list[Any] = []
    budget = [limits.max_nodes]
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if len(documents) >= limits.max_documents:
                raise DocumentError(f"more than {limits.max_documents} documents")
            _check_graph(node, limits, budget)
            value = loader.construct_document(node)
            documents.append(_json_value(value, f"document {len(documents) + 1}"))
    except yaml.YAMLError as exc:
        raise DocumentError(f"not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise DocumentError(f"nested too deeply (more than {limits.max_depth} levels)") from None
    finally:
        loader.dispose()
    if len(documents) > 1:  # "---" between manifests, with nothing in between
        return [document for document in documents if document is not None]
    return documents


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _looks_like_json(data: bytes) -> bool:
    return data.lstrip()[:1] in (b"{", b"[")


def load_documents(data: bytes, limits: DocumentLimits = DEFAULT_LIMITS) -> list[Any]:
    """The documents of a JSON or YAML body, as JSON values. Raises `DocumentError`."""
    return _read_documents(data, limits)[0]


def _read_documents(data: bytes, limits: DocumentLimits) -> tuple[list[Any], bool]:
    """The documents, and whether they were read as JSON (else YAML)."""
    if _looks_like_json(data):
        try:
            return [msgspec.json.decode(data)], True
        except msgspec.DecodeError as json_error:
            # JSON that is broken may still be YAML (flow style, comments); if it is not,
            # the JSON error is the one its sender needs.
            try:
                return _yaml_documents(data, limits), False
            except DocumentError:
                raise DocumentError(f"not valid JSON: {json_error}") from None
        except RecursionError:
            raise DocumentError(
                f"nested too deeply (more than {limits.max_depth} levels)"
            ) from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not valid JSON or YAML: not UTF-8 text (byte {exc.start})") from None
    return _yaml_documents(data, limits), False


def is_manifest(document: Any) -> bool:
    return isinstance(document, dict) and "apiVersion" in document and "kind" in document


def request_body(documents: list[Any]) -> Any:
    """One request body from a body's documents (see the module's docstring). The result may
    still be no object (a list, a number): the intake says so in the sender's terms."""
    if not documents:
        raise DocumentError("not valid JSON or YAML: the body holds no document")
    if len(documents) == 1:
        return documents[0]
    first, rest = documents[0], documents[1:]
    for index, document in enumerate(rest, start=2):
        if not is_manifest(document):
            raise DocumentError(
                f"document {index} is not a Kubernetes manifest (apiVersion and kind):"
                " after the first document come only the workload's manifests"
            )
    if is_manifest(first):
        return {"apiVersion": "v1", "kind": "List", "items": documents}
    if not isinstance(first, dict):
        raise DocumentError("document 1 must be a request or a manifest")
    workload = first.get("workload")
    combined = dict(first)
    if workload is None:
        combined["workload"] = rest
    elif isinstance(workload, list):
        combined["workload"] = [*workload, *rest]
    else:
        combined["workload"] = [workload, *rest]
    return combined


def load_request_body(data: bytes, limits: DocumentLimits = DEFAULT_LIMITS) -> Any:
    """`request_body(load_documents(data))`. Raises `DocumentError`."""
    return request_body(load_documents(data, limits))


def read_request_body(data: bytes, limits: DocumentLimits = DEFAULT_LIMITS) -> tuple[Any, bool]:
    """`load_request_body`, and whether the body was read as one JSON document: then it
    nests no deeper than its brackets allow (see `may_nest_deeper`)."""
    documents, from_json = _read_documents(data, limits)
    return request_body(documents), from_json


def may_nest_deeper(data: bytes, read_as_json: bool, limit: int) -> bool:
    """Whether the body read from `data` may hold anything deeper than `limit` (itself at
    depth 1). JSON nests only inside brackets: every container on a path opens with a
    bracket of its own, so a JSON text with fewer than `limit` of them cannot (brackets in
    strings only make the count larger). A YAML body nests by indentation: it may."""
    return not read_as_json or data.count(b"{") + data.count(b"[") >= limit
