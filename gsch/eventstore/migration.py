"""Bring an event log declared by an earlier gsch to this version's declaration when the
server cannot change it in place.

nats-server refuses to lift `deny_purge` on an existing stream ("can not cancel deny purge"),
and a log created before compaction existed denies purges, so the housekeeper could never
compact it or expire a request. The log is therefore copied, server-side and sequence for
sequence, into a stream of the new declaration, with every gsch process stopped:

1. the old log is sealed: no append can land in it any more (a publisher still running, an
   agent say, gets an error and retries, instead of writing into a stream about to go);
2. it is mirrored into `GSCH_EVENTS_MIGRATION`; the mirror keeps every message at its
   sequence, with its subject, headers and timestamp. The durable consumers' positions (what
   each acknowledged) are recorded in the copy's metadata;
3. once the copy holds exactly the old log's messages up to its last sequence, the old log is
   deleted, and the copy mirrored back into `GSCH_EVENTS` under the new declaration, which is
   then promoted (the mirror removed, the subjects taken);
4. the durable consumers are created again from their declarations, each starting after the
   last message it had acknowledged; then the copy is deleted.

Preserved, because every sequence is: the conditions of conditional appends
(`Nats-Expected-Last-Subject-Sequence`), `last(subject)`, each request id's history (a
re-published id still finds it), the sequences snapshots, read models and the compaction
watermark refer to, and the work queues' progress (what was delivered but not acknowledged
is delivered again: harmless, DESIGN principle 5). Not preserved: the stream's creation time
and the two-minute window of `Nats-Msg-Id` de-duplication, which nothing needs once every
process is stopped. Reports an older log holds on `gsch.events.cluster.*.latency|pods.*` are
copied like every message; the first compaction removes them.

Every step looks at what the previous ones left, so a migration killed anywhere is finished
by running it again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client

from gsch.eventstore.streams import (
    Declarations,
    Outdated,
    StreamMissingError,
    StreamsError,
    outdated,
)
from gsch.eventstore.subjects import EVENTS_STREAM

COPY_STREAM = f"{EVENTS_STREAM}_MIGRATION"
_FLOOR = "gsch.consumer."  # metadata key prefix: a durable consumer's acknowledged floor
_LAST_SEQ = "gsch.last_seq"
_MESSAGES = "gsch.messages"
_NOT_FOUND = (10059, 10014)  # stream, consumer not found


class MigrationRefused(StreamsError):
    """The migration cannot proceed safely now; the message says why and what to do."""


def log_declaration(declarations: Declarations) -> dict[str, Any]:
    return next(c for c in declarations.streams if c["name"] == EVENTS_STREAM)


async def _api(nc: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    reply = await nc.request(f"$JS.API.{subject}", payload, timeout=30)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def _info(nc: Client, stream: str) -> dict[str, Any] | None:
    answer = await _api(nc, f"STREAM.INFO.{stream}")
    error = answer.get("error")
    if error is None:
        return answer
    if error.get("err_code") in _NOT_FOUND:
        return None
    raise StreamsError(f"stream {stream}: {error.get('description')}")


async def _call(nc: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = await _api(nc, subject, body)
    if "error" in answer:
        raise StreamsError(f"{subject}: {answer['error'].get('description')}")
    return answer


async def _consumers(nc: Client, stream: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    while True:
        page = await _call(nc, f"CONSUMER.LIST.{stream}", {"offset": len(listed)})
        listed += page.get("consumers") or []
        if not page.get("consumers") or len(listed) >= page.get("total", 0):
            return listed


async def log_outdated(nc: Client, declarations: Declarations) -> Outdated | None:
    """How the server's event log differs from this version's declaration (None: it does
    not, or there is no log: that is for the start-up checks to say)."""
    log = await _info(nc, EVENTS_STREAM)
    return None if log is None else outdated(log_declaration(declarations), log["config"])


async def processes_following(nc: Client, declarations: Declarations) -> list[str]:
    """Signs of gsch processes still running against the log: consumers nobody declared
    (the ordered consumers every process follows the log with) and pulls waiting on the
    declared work queues."""
    durable = {(d["stream_name"], d["config"]["durable_name"]) for d in declarations.consumers}
    signs = []
    for stream in sorted({stream for stream, _ in durable} | {EVENTS_STREAM}):
        if await _info(nc, stream) is None:
            continue
        for consumer in await _consumers(nc, stream):
            name = consumer["name"]
            if (stream, name) not in durable:
                signs.append(f"{stream} is followed by consumer {name}")
            elif consumer.get("num_waiting"):
                signs.append(f"{stream}/{name} has {consumer['num_waiting']} pulls waiting")
    return signs


async def wait_until_stopped(nc: Client, declarations: Declarations, patience: float) -> None:
    """Return once no gsch process follows or pulls the log (a stopped process's consumers
    go within seconds); MigrationRefused naming what still runs after `patience`."""
    deadline = time.monotonic() + patience
    while signs := await processes_following(nc, declarations):
        if time.monotonic() > deadline:
            raise MigrationRefused(
                "gsch processes still use the log, so it cannot be migrated now ("
                + "; ".join(signs[:5])
                + (f"; and {len(signs) - 5} more" if len(signs) > 5 else "")
                + "): stop every worker, binder, API, housekeeper and notifier, then run "
                "`gsch streams migrate` again. Nothing was changed"
            )
        await asyncio.sleep(1.0)


@dataclass
class MigrationReport:
    steps: list[str]
    last_seq: int = 0
    messages: int = 0

    def __str__(self) -> str:
        return "\n".join(self.steps)


async def _wait_for(
    nc: Client, stream: str, last_seq: int, messages: int, patience: float
) -> dict[str, Any]:
    """The stream's info once it holds `messages` messages up to `last_seq`."""
    deadline = time.monotonic() + patience
    while True:
        info = await _info(nc, stream)
        state = (info or {}).get("state", {})
        if state.get("last_seq", 0) >= last_seq and state.get("messages", 0) >= messages:
            return info or {}
        if time.monotonic() > deadline:
            raise StreamsError(
                f"the copy {stream} holds {state.get('messages', 0)} of {messages} messages "
                f"(up to sequence {state.get('last_seq', 0)} of {last_seq}) after {patience:g} s;"
                " run the migration again to go on waiting"
            )
        await asyncio.sleep(0.2)


def _floors(consumers: list[dict[str, Any]]) -> dict[str, str]:
    """Each durable consumer's acknowledged floor, as metadata of the copy."""
    return {
        f"{_FLOOR}{c['config']['durable_name']}": str(c["ack_floor"]["stream_seq"])
        for c in consumers
        if c["config"].get("durable_name")
    }


async def migrate_log(
    nc: Client,
    declarations: Declarations,
    *,
    patience: float = 600.0,
    stopped_within: float = 30.0,
    say: Callable[[str], None] = lambda _: None,
) -> MigrationReport | None:
    """Move the log into a stream of its declaration (see the module's docstring); None when
    the log needs no migration. Refused (MigrationRefused) unless every gsch process has
    stopped using the log within `stopped_within` seconds."""
    declared = log_declaration(declarations)
    report = MigrationReport([])

    def step(line: str) -> None:
        report.steps.append(line)
        say(line)

    log = await _info(nc, EVENTS_STREAM)
    copy = await _info(nc, COPY_STREAM)
    if log is None and copy is None:
        raise StreamMissingError(EVENTS_STREAM)
    mirrored_back = log is not None and log["config"].get("mirror") is not None
    if copy is None:
        assert log is not None
        found = outdated(declared, log["config"])
        if found is None or found.in_place:
            return None
    await wait_until_stopped(nc, declarations, stopped_within)
    if copy is None:
        assert log is not None
        copy = await _copy(nc, log, patience, step)
        log = await _info(nc, EVENTS_STREAM)
    metadata = copy["config"].get("metadata") or {}
    last_seq, messages = int(metadata[_LAST_SEQ]), int(metadata[_MESSAGES])
    report.last_seq, report.messages = last_seq, messages
    if log is not None and not mirrored_back and copy["config"].get("mirror") is not None:
        # The old log, sealed, still there: the copy must be complete before it goes.
        await _wait_for(nc, COPY_STREAM, last_seq, messages, patience)
        await _call(nc, f"STREAM.DELETE.{EVENTS_STREAM}")
        step(f"deleted the old {EVENTS_STREAM} (sealed; its copy is complete)")
        log = None
    if copy["config"].get("mirror") is not None:
        # A mirror cannot be the origin of a mirror of its own origin's name: promote it.
        promoted = {**copy["config"]}
        promoted.pop("mirror")
        await _call(nc, f"STREAM.UPDATE.{COPY_STREAM}", promoted)
    if log is None:
        mirror = {k: v for k, v in declared.items() if k not in ("subjects", "allow_atomic")}
        mirror["mirror"] = {"name": COPY_STREAM}
        await _call(nc, f"STREAM.CREATE.{EVENTS_STREAM}", mirror)
        step(f"created {EVENTS_STREAM} with this version's declaration, mirroring the copy")
        mirrored_back = True
    if mirrored_back:
        await _wait_for(nc, EVENTS_STREAM, last_seq, messages, patience)
        await _call(nc, f"STREAM.UPDATE.{EVENTS_STREAM}", declared)
        step(f"{EVENTS_STREAM} holds {messages} messages up to sequence {last_seq}; it takes"
             f" appends on {', '.join(declared['subjects'])} again")  # fmt: skip
    await _recreate_consumers(nc, declarations, metadata, step)
    await _call(nc, f"STREAM.DELETE.{COPY_STREAM}")
    step(f"deleted the copy {COPY_STREAM}")
    return report


async def _copy(
    nc: Client, log: dict[str, Any], patience: float, step: Callable[[str], None]
) -> dict[str, Any]:
    config = log["config"]
    if not config.get("sealed"):
        await _call(nc, f"STREAM.UPDATE.{EVENTS_STREAM}", {**config, "sealed": True})
        step(f"sealed {EVENTS_STREAM}: nothing can be appended to it any more")
    sealed = await _info(nc, EVENTS_STREAM)
    assert sealed is not None
    state = sealed["state"]
    consumers = [c for c in await _consumers(nc, EVENTS_STREAM) if c["config"].get("durable_name")]
    copy_config = {
        "name": COPY_STREAM,
        "description": f"{EVENTS_STREAM} being migrated (`gsch streams migrate`)",
        "storage": config.get("storage", "file"),
        "num_replicas": config.get("num_replicas", 1),
        "max_msg_size": config.get("max_msg_size", -1),
        "mirror": {"name": EVENTS_STREAM},
        "metadata": {
            _LAST_SEQ: str(state["last_seq"]),
            _MESSAGES: str(state["messages"]),
            **_floors(consumers),
        },
    }
    await _call(nc, f"STREAM.CREATE.{COPY_STREAM}", copy_config)
    positions = ", ".join(f"{c['name']} after {c['ack_floor']['stream_seq']}" for c in consumers)
    step(
        f"copying {state['messages']} messages up to sequence {state['last_seq']} into"
        f" {COPY_STREAM} (a mirror: same sequences); consumers' positions recorded:"
        f" {positions or 'none'}"
    )
    info = await _info(nc, COPY_STREAM)
    assert info is not None
    return info


async def _recreate_consumers(
    nc: Client,
    declarations: Declarations,
    metadata: dict[str, str],
    step: Callable[[str], None],
) -> None:
    """The log's durable consumers, as declared, each starting after what it acknowledged
    on the old log (a consumer the old log did not have starts as declared)."""
    existing = {c["name"] for c in await _consumers(nc, EVENTS_STREAM)}
    for declaration in declarations.consumers:
        if declaration["stream_name"] != EVENTS_STREAM:
            continue
        config = dict(declaration["config"])
        durable = config["durable_name"]
        if durable in existing:
            continue
        floor = metadata.get(f"{_FLOOR}{durable}")
        if floor is not None:
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = int(floor) + 1
        body = {"stream_name": EVENTS_STREAM, "config": config}
        await _call(nc, f"CONSUMER.CREATE.{EVENTS_STREAM}.{durable}", body)
        where = f"after sequence {floor}" if floor is not None else "as declared"
        step(f"consumer {EVENTS_STREAM}/{durable} created again, {where}")
