"""The one loader for request bodies: JSON or YAML, one document or several, bounded."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gsch.model.documents import (
    DocumentError,
    DocumentLimits,
    load_documents,
    load_request_body,
    may_nest_deeper,
    read_request_body,
    request_body,
)

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}


def test_json_and_yaml_mean_the_same() -> None:
    body = {"policy": "GSelectedCluster", "select_clusters": ["c1"], "workload": POD}
    assert load_request_body(json.dumps(body).encode()) == body
    assert load_request_body(yaml.safe_dump(body).encode()) == body


def test_a_request_document_takes_the_manifests_after_it() -> None:
    text = (
        b"policy: GSelectedCluster\nselect_clusters: [c1]\n---\n"
        + yaml.safe_dump(POD).encode()
        + b"---\n"
        + yaml.safe_dump(SERVICE).encode()
    )
    assert load_request_body(text)["workload"] == [POD, SERVICE]
    # ...after the ones it already has.
    body = request_body([{"policy": "x", "workload": SERVICE}, POD])
    assert body["workload"] == [SERVICE, POD]


def test_several_manifests_become_a_list() -> None:
    body = request_body([SERVICE, POD])
    assert body == {"apiVersion": "v1", "kind": "List", "items": [SERVICE, POD]}


def test_only_manifests_may_follow_the_first_document() -> None:
    with pytest.raises(DocumentError, match="document 2 is not a Kubernetes manifest"):
        request_body([{"policy": "x"}, {"policy": "y"}])


def test_kubectl_reading_of_values() -> None:
    (doc,) = load_documents(b"created: 2024-05-28\n1: one\ntrue: yes\n")
    assert doc == {"created": "2024-05-28", "1": "one", "true": True}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"a: !!binary aGVsbG8=", "bytes value cannot be written as JSON"),
        (b"a: .nan", "cannot be written as JSON"),
        (b"!!python/object/apply:os.system ['true']", "could not determine a constructor"),
        (b"a: [1\n", "not valid YAML"),
        (b'{"a": 1,,}', "not valid JSON"),
        (b"", "holds no document"),
        (b"\xff\xfe", "not UTF-8"),
        (b"&a [*a]", "refers to itself"),
        (b"- " * 70 + b"x", "nested too deeply"),
    ],
)
def test_what_cannot_be_read_is_said(text: bytes, words: str) -> None:
    with pytest.raises(DocumentError, match=words):
        load_request_body(text)


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    started = time.perf_counter()
    with pytest.raises(DocumentError, match="expands to more than 100000 values"):
        load_documents("\n".join(lines).encode())
    # The graph is counted, never expanded (9^10 values would take minutes and gigabytes).
    assert time.perf_counter() - started < 5


def test_aliases_that_stay_small_are_fine() -> None:
    text = b"base: &base {cpu: 100m}\nrequests: *base\nlimits: *base\n"
    (doc,) = load_documents(text)
    assert doc["requests"] == doc["limits"] == {"cpu": "100m"}


def test_limits_are_the_callers() -> None:
    limits = DocumentLimits(max_documents=2, max_nodes=10)
    with pytest.raises(DocumentError, match="more than 2 documents"):
        load_documents(b"a: 1\n---\nb: 2\n---\nc: 3\n", limits)
    with pytest.raises(DocumentError, match="more than 10 values"):
        load_documents(b"a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n", limits)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_any_json_object_reads_the_same_as_json_and_as_yaml(value: dict[str, Any]) -> None:
    assert load_request_body(json.dumps(value).encode()) == value
    assert load_request_body(yaml.safe_dump(value).encode()) == value


def depth(value: Any) -> int:
    """How deep a value nests (itself at depth 1, what it holds one deeper)."""
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    return 1 + max((depth(child) for child in children), default=0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='{[]}ab"\\', max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


@given(json_values, st.integers(min_value=1, max_value=12))
def test_a_json_body_with_few_brackets_is_known_shallow_without_a_walk(
    value: Any, limit: int
) -> None:
    data = json.dumps([value]).encode()  # a body starts as JSON does: with a bracket
    body, read_as_json = read_request_body(data)
    assert read_as_json
    assert body == [value]
    if not may_nest_deeper(data, read_as_json, limit):
        assert depth(body) <= limit


def test_only_a_json_body_is_known_shallow_by_its_brackets() -> None:
    # YAML nests by indentation, also after a first document in flow style (which starts
    # like JSON): it is always walked.
    data = b"{a: 1}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    a: b\n"
    _, read_as_json = read_request_body(data)
    assert not read_as_json
    assert may_nest_deeper(data, read_as_json, 64)
    nested = json.dumps([[[1]]]).encode()
    assert may_nest_deeper(nested, True, 3)  # three brackets: it may sit at depth 4
    assert not may_nest_deeper(nested, True, 4)
