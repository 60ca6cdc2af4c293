"""Create or update the declared streams and consumers, idempotently, and say what differs.

Declarations are files in `streams/` in the JetStream API's own JSON (durations in
nanoseconds), so `nats stream add --config streams/GSCH_EVENTS.json` reads them too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from gsch.paths import shipped


class StreamsError(Exception):
    """The server refused a declaration."""


@dataclass
class ApplyReport:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def __str__(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Declarations:
    streams: list[dict[str, Any]]
    consumers: list[dict[str, Any]]


def load_declarations(
    folder: Path | None = None, replicas: int = 1, lease_seconds: float | None = None
) -> Declarations:
    """Read the declarations; `replicas` and the lease (the consumers' ack wait) come from
    configuration so one set of files serves R1 and R3 deployments."""
    root = folder or shipped("streams")
    streams = []
    for path in sorted(root.glob("*.json")):
        config = json.loads(path.read_text())
        config["num_replicas"] = replicas
        streams.append(config)
    consumers = []
    for path in sorted((root / "consumers").glob("*.json")):
        declaration = json.loads(path.read_text())
        declaration["config"]["num_replicas"] = replicas
        if lease_seconds is not None:
            declaration["config"]["ack_wait"] = int(lease_seconds * 1e9)
        consumers.append(declaration)
    if not streams:
        raise StreamsError(f"no stream declarations in {root}")
    return Declarations(streams, consumers)


async def _api(nc: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    reply = await nc.request(f"$JS.API.{subject}", payload, timeout=10)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


def _differences(desired: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    diffs = []
    for key, want in desired.items():
        have = actual.get(key)
        if key == "stream_name":
            continue
        # The server omits false/empty fields; treat them as equal to their absence.
        if not want and not have:
            continue
        if want != have:
            diffs.append(f"{key}: {have!r} -> {want!r}")
    return diffs


async def apply_declarations(nc: Client, declarations: Declarations) -> ApplyReport:
    report = ApplyReport()
    for config in declarations.streams:
        name = config["name"]
        info = await _api(nc, f"STREAM.INFO.{name}")
        if "error" in info:
            if info["error"].get("err_code") != 10059:  # stream not found
                raise StreamsError(f"stream {name}: {info['error'].get('description')}")
            created = await _api(nc, f"STREAM.CREATE.{name}", config)
            _raise_on_error(created, f"create stream {name}")
            report.add(f"stream {name}: created")
            continue
        diffs = _differences(config, info["config"])
        if not diffs:
            report.add(f"stream {name}: unchanged")
            continue
        updated = await _api(nc, f"STREAM.UPDATE.{name}", config)
        _raise_on_error(updated, f"update stream {name}")
        report.add(f"stream {name}: updated ({'; '.join(diffs)})")
    for declaration in declarations.consumers:
        stream = declaration["stream_name"]
        durable = declaration["config"]["durable_name"]
        info = await _api(nc, f"CONSUMER.INFO.{stream}.{durable}")
        if "error" in info:
            if info["error"].get("err_code") != 10014:  # consumer not found
                raise StreamsError(f"consumer {durable}: {info['error'].get('description')}")
            created = await _api(nc, f"CONSUMER.CREATE.{stream}.{durable}", declaration)
            _raise_on_error(created, f"create consumer {stream}/{durable}")
            report.add(f"consumer {stream}/{durable}: created")
            continue
        diffs = _differences(declaration["config"], info["config"])
        if not diffs:
            report.add(f"consumer {stream}/{durable}: unchanged")
            continue
        updated = await _api(
            nc, f"CONSUMER.CREATE.{stream}.{durable}", {**declaration, "action": "update"}
        )
        _raise_on_error(updated, f"update consumer {stream}/{durable}")
        report.add(f"consumer {stream}/{durable}: updated ({'; '.join(diffs)})")
    return report


def _raise_on_error(answer: dict[str, Any], what: str) -> None:
    if "error" in answer:
        raise StreamsError(f"{what}: {answer['error'].get('description')}")
