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

from gsch.eventstore.subjects import EVENTS_STREAM
from gsch.paths import shipped

_STREAM_NOT_FOUND = 10059
_CONSUMER_NOT_FOUND = 10014


class StreamsError(Exception):
    """The server refused a declaration."""


class StreamMissingError(StreamsError):
    """A declared stream does not exist, and this process may not create it: a stream,
    the event log above all, is created once by `gsch streams apply`, never on the side."""

    def __init__(self, stream: str) -> None:
        upgrade = ""
        if stream != EVENTS_STREAM:
            upgrade = (
                "; an installation of an earlier gsch gets it, with everything else this "
                "version needs, from `gsch streams migrate` (with gsch stopped: it starts the "
                "embedded server itself)"
            )
        super().__init__(
            f"stream {stream} does not exist. gsch never creates it on its own, so that a "
            "deleted log is noticed instead of silently replaced by an empty one: creating "
            f"it is a first-time step, `gsch streams apply` (with admin credentials){upgrade}"
        )
        self.stream = stream


@dataclass(frozen=True)
class Outdated:
    """How the server's event log differs from the declaration, and whether the server can
    change it in place (`gsch streams apply`) or only a migration can."""

    differences: tuple[str, ...]
    in_place: bool

    def advice(self) -> str:
        what = "; ".join(self.differences)
        if self.in_place:
            return (
                f"the event log {EVENTS_STREAM} differs from this version's declaration ({what}):"
                " run `gsch streams apply` (admin credentials) to update it in place"
            )
        return (
            f"the event log {EVENTS_STREAM} differs from this version's declaration ({what}) in"
            " a way the server cannot change in place (an earlier gsch declared it so, or a"
            " migration was interrupted): stop every gsch process and run `gsch streams"
            " migrate` (admin credentials; README: History, upgrading). Until then the"
            " housekeeper cannot compact the log or expire requests"
        )


# Settings nats-server refuses to change on an existing stream (it answers "can not cancel
# deny purge", "can not change storage type", ...): only a copy takes them.
_FIXED = ("deny_purge", "deny_delete", "storage", "retention")


def outdated(declared: dict[str, Any], actual: dict[str, Any]) -> Outdated | None:
    """The differences that matter between the declared and the actual log config."""
    differences, in_place = [], True
    for moving in ("sealed", "mirror"):  # what only an interrupted migration leaves
        if actual.get(moving):
            differences.append(f"{moving}: {actual[moving]!r}")
            in_place = False
    for key, want in declared.items():
        have = actual.get(key)
        if key in ("name", "description", "num_replicas") or (not want and not have):
            continue
        if want != have:
            differences.append(f"{key}: {have!r}, this version declares {want!r}")
            # Denials may be added in place, only lifting one needs the copy.
            lifting = key.startswith("deny_") and have and not want
            if lifting or (key in _FIXED and not key.startswith("deny_")):
                in_place = False
    return Outdated(tuple(differences), in_place) if differences else None


@dataclass
class ApplyReport:
    lines: list[str] = field(default_factory=list)
    # The event log, declared by an earlier gsch in a way the server cannot change in place
    # (left as it is: `gsch streams migrate` moves it).
    outdated_log: Outdated | None = None

    def add(self, line: str) -> None:
        self.lines.append(line)

    def __str__(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Declarations:
    streams: list[dict[str, Any]]
    consumers: list[dict[str, Any]]
    # The lease of every work queue: the consumers' ack wait on the server, and what the
    # processes that hold messages renew (a third of it at a time). One value, owned here:
    # every consumer and every lease keeper of a process reads it from its store.
    lease_seconds: float = 30.0


def load_declarations(
    folder: Path | None = None, replicas: int = 1, lease_seconds: float | None = None
) -> Declarations:
    """Read the declarations; `replicas` and the lease (the consumers' ack wait) come from
    configuration so one set of files serves R1 and R3 deployments. Without a lease, the
    files' own ack wait is the lease (they must agree)."""
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
    waits = {c["config"].get("ack_wait") for c in consumers}
    if len(waits) > 1:
        raise StreamsError(f"the consumers in {root} disagree on their ack wait (the lease)")
    lease = lease_seconds
    if lease is None:
        lease = (waits.pop() or 30_000_000_000) / 1e9 if waits else 30.0
    return Declarations(streams, consumers, lease)


async def _api(nc: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    reply = await nc.request(f"$JS.API.{subject}", payload, timeout=10)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


# Where a consumer started: fixed at creation (the server refuses to change it), and after a
# migration (`eventstore/migration.py`) rightly not what the declaration says.
_START = ("deliver_policy", "opt_start_seq", "opt_start_time")


def _differences(desired: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    diffs = []
    for key, want in desired.items():
        have = actual.get(key)
        if key == "stream_name" or key in _START:
            continue
        # The server omits false/empty fields; treat them as equal to their absence.
        if not want and not have:
            continue
        if want != have:
            diffs.append(f"{key}: {have!r} -> {want!r}")
    return diffs


@dataclass(frozen=True)
class _Target:
    """How to read, create and update one declared stream or consumer."""

    label: str
    info: str
    create: str
    update: str
    not_found: int
    create_body: dict[str, Any]
    update_body: dict[str, Any]
    desired: dict[str, Any]


def _targets(declarations: Declarations) -> list[_Target]:
    targets = []
    for config in declarations.streams:
        name = config["name"]
        target = _Target(
            label=f"stream {name}",
            info=f"STREAM.INFO.{name}",
            create=f"STREAM.CREATE.{name}",
            update=f"STREAM.UPDATE.{name}",
            not_found=_STREAM_NOT_FOUND,
            create_body=config,
            update_body=config,
            desired=config,
        )
        targets.append(target)
    for declaration in declarations.consumers:
        stream, durable = declaration["stream_name"], declaration["config"]["durable_name"]
        path = f"{stream}.{durable}"
        target = _Target(
            label=f"consumer {stream}/{durable}",
            info=f"CONSUMER.INFO.{path}",
            create=f"CONSUMER.CREATE.{path}",
            update=f"CONSUMER.CREATE.{path}",  # the same call, with action "update"
            not_found=_CONSUMER_NOT_FOUND,
            create_body=declaration,
            update_body={**declaration, "action": "update"},
            desired=declaration["config"],
        )
        targets.append(target)
    return targets


async def apply_declarations(
    nc: Client, declarations: Declarations, *, create_streams: bool = True
) -> ApplyReport:
    """Bring the server to the declarations. Existing consumers are updated before missing
    ones are created: on a work-queue stream a new consumer's filter may only be accepted
    once an existing consumer has narrowed its own. Without `create_streams`, a missing
    stream raises StreamMissingError (a running process re-declaring what was deleted)."""
    report = ApplyReport()
    missing: list[_Target] = []
    for target in _targets(declarations):
        info = await _api(nc, target.info)
        if "error" in info:
            if info["error"].get("err_code") != target.not_found:
                raise StreamsError(f"{target.label}: {info['error'].get('description')}")
            if target.not_found == _CONSUMER_NOT_FOUND:
                missing.append(target)
                continue
            if not create_streams:
                raise StreamMissingError(target.create_body["name"])
            _raise_on_error(await _api(nc, target.create, target.create_body), target.label)
            report.add(f"{target.label}: created")
            continue
        if target.create_body.get("name") == EVENTS_STREAM:
            found = outdated(target.desired, info["config"])
            if found is not None and not found.in_place:
                report.outdated_log = found
                report.add(f"{target.label}: NOT updated: {found.advice()}")
                continue
        diffs = _differences(target.desired, info["config"])
        if not diffs:
            report.add(f"{target.label}: unchanged")
            continue
        body = target.update_body
        if target.not_found == _CONSUMER_NOT_FOUND:
            started = {k: info["config"][k] for k in _START if k in info["config"]}
            body = {**body, "config": {**body["config"], **started}}
        _raise_on_error(await _api(nc, target.update, body), target.label)
        report.add(f"{target.label}: updated ({'; '.join(diffs)})")
    for target in missing:
        _raise_on_error(await _api(nc, target.create, target.create_body), target.label)
        report.add(f"{target.label}: created")
    return report


def _raise_on_error(answer: dict[str, Any], what: str) -> None:
    if "error" in answer:
        raise StreamsError(f"{what}: {answer['error'].get('description')}")
