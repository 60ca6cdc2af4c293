"""Reading the request file of `gsch submit` and `gsch plan`: JSON, or YAML as manifests
usually are, within bounds.

The file is read up to `MAX_FILE_BYTES`. YAML anchors and aliases are allowed (manifests use
them for shared blocks), but what they expand to is counted before anything is built: a few
hundred bytes of nested aliases can stand for a billion values ("billion laughs"), which
would take gigabytes once encoded as the JSON that goes on the wire. Such a file is refused
at once, with what it would have expanded to. Only YAML's safe types are constructed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from gsch.cli.endpoints import CliError

MAX_FILE_BYTES = 1024 * 1024  # api.max_body_bytes' default; the intake's limit is lower still
MAX_VALUES = 100_000  # scalars, lists and maps after expanding aliases; manifests hold hundreds


def load_request_file(path: str) -> Any:
    """The request in `path` (`-`: standard input), decoded; `CliError` says what is wrong."""
    name = "standard input" if path == "-" else path
    data = _read_bounded(path, name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # YAML's flow style looks like JSON too: let the YAML reader have a go
        except RecursionError:
            raise CliError(f"{name}: nested too deeply") from None
    return _load_yaml(text, name)


def _read_bounded(path: str, name: str) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with Path(path).open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CliError(f"{name}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise CliError(f"{name}: larger than {MAX_FILE_BYTES} bytes; a request is far smaller")
    return data


def _load_yaml(text: str, name: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise CliError(f"{name}: empty")
        try:
            values = expanded_size(node, MAX_VALUES)
        except CycleError as exc:
            line = exc.args[0].line + 1
            problem = "an alias refers to a node that contains it"
            raise CliError(f"{name}: line {line}: {problem}") from None
        if values > MAX_VALUES:
            raise CliError(
                f"{name}: its YAML aliases expand to more than {MAX_VALUES:,} values (an alias"
                " bomb?); a request is far smaller: write it out without nested aliases"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise CliError(f"{name}: neither JSON nor valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise CliError(f"{name}: nested too deeply") from None
    finally:
        loader.dispose()


def expanded_size(root: yaml.Node, limit: int) -> int:
    """How many values `root` stands for once every alias is expanded (each alias is the very
    node it refers to, so a shared node is counted once per reference). Stops counting past
    `limit`, so a bomb costs as little as a file within bounds. A node that contains itself
    (`&a [*a]`) has no JSON form: `CycleError`."""
    sizes: dict[int, int] = {}  # id(node) -> expanded size, for nodes fully counted
    open_nodes: set[int] = set()  # nodes whose children are being counted
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done or not children:
            total = 1 + sum(sizes[id(child)] for child in children)
            sizes[id(node)] = min(total, limit + 1)
            open_nodes.discard(id(node))
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise CycleError(node.start_mark)
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


class CycleError(Exception):
    """A YAML node that contains itself through an alias."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())
